"""Sessions end after a configurable idle time and when the browser closes."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import time_machine
from django.conf import settings
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


def test_session_settings_expire_idle_sessions_and_at_browser_close():
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True
    assert settings.ACCOUNT_SESSION_REMEMBER is False


def test_idle_minutes_come_from_the_environment(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DEBUG": "1",
        "TELECONSULT_DATA_DIR": str(tmp_path),
        "TELECONSULT_SESSION_IDLE_MINUTES": "5",
        "DJANGO_SETTINGS_MODULE": "teleconsult.settings",
    }
    out = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.SESSION_COOKIE_AGE)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "300"


def test_session_cookie_has_no_expiry_so_it_ends_with_the_browser(client, patient_user, password):
    response = client.post(reverse("account_login"), {"login": patient_user.email, "password": password})
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["expires"] == ""
    assert cookie["max-age"] == ""


def test_login_form_offers_no_remember_me(client, db):
    assert b'name="remember"' not in client.get(reverse("account_login")).content


def test_idle_session_expires_and_leads_to_login(client, patient_user, password):
    start = dt.datetime(2026, 11, 28, 8, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as traveller:
        client.post(reverse("account_login"), {"login": patient_user.email, "password": password})
        traveller.shift(dt.timedelta(minutes=29))
        assert client.get(reverse("home")).status_code == 200  # activity renews the session
        traveller.shift(dt.timedelta(minutes=29))
        assert client.get(reverse("home")).status_code == 200
        traveller.shift(dt.timedelta(minutes=31))
        response = client.get(reverse("home"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))


def test_expired_session_on_the_api_is_401(client, patient_user, password):
    start = dt.datetime(2026, 11, 28, 8, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as traveller:
        client.post(reverse("account_login"), {"login": patient_user.email, "password": password})
        assert client.get("/api/v1/me/").status_code == 200
        traveller.shift(dt.timedelta(minutes=31))
        assert client.get("/api/v1/me/").status_code in (401, 403)

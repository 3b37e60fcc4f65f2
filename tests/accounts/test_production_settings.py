"""With DEBUG off, settings refuse to load without secrets and turn the security settings on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SETUP = "import django; django.setup(); "
DUMP = (
    "from django.conf import settings as s; import json; print(json.dumps({k: getattr(s, k, None) for k in ["
    "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', "
    "'CSRF_TRUSTED_ORIGINS', 'TELECONSULT_MFA_REQUIRED', 'SESSION_EXPIRE_AT_BROWSER_CLOSE', 'DEBUG', "
    "'SECURE_CONTENT_TYPE_NOSNIFF', 'X_FRAME_OPTIONS']}))"
)


def run_python(code: str, tmp_path: Path, **env_vars: str) -> subprocess.CompletedProcess:
    """A fresh interpreter with a clean environment: only what a bare production host would have."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "teleconsult.settings",
        "TELECONSULT_DATA_DIR": str(tmp_path),
        **env_vars,
    }
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_without_secret_key_and_allowed_hosts_settings_refuse_to_load(tmp_path):
    result = run_python(SETUP, tmp_path, DEBUG="0")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY and ALLOWED_HOSTS must be set" in result.stderr


def test_debug_unset_means_production_and_also_refuses(tmp_path):
    result = run_python(SETUP, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_missing_allowed_hosts_alone_is_named(tmp_path):
    result = run_python(SETUP, tmp_path, DEBUG="0", SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS must be set" in result.stderr
    assert "SECRET_KEY and" not in result.stderr


def test_secret_key_can_come_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s" * 50 + "\n")
    code = SETUP + "from django.conf import settings; print(settings.SECRET_KEY)"
    result = run_python(code, tmp_path, DEBUG="0", SECRET_KEY_FILE=str(secret), ALLOWED_HOSTS="portal.example.org")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "s" * 50


def test_production_turns_on_secure_cookies_hsts_and_mfa(tmp_path):
    result = run_python(
        SETUP + DUMP,
        tmp_path,
        DEBUG="0",
        SECRET_KEY="k" * 50,
        ALLOWED_HOSTS="portal.example.org",
        CSRF_TRUSTED_ORIGINS="https://portal.example.org",
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://portal.example.org"]
    assert values["TELECONSULT_MFA_REQUIRED"] is True
    assert values["SESSION_EXPIRE_AT_BROWSER_CLOSE"] is True
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["X_FRAME_OPTIONS"] == "DENY"


def test_development_defaults_leave_mfa_off(tmp_path):
    result = run_python(SETUP + DUMP, tmp_path, DEBUG="1")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["TELECONSULT_MFA_REQUIRED"] is False
    assert not values["SESSION_COOKIE_SECURE"]


def test_bad_boolean_is_a_clear_error(tmp_path):
    result = run_python(SETUP, tmp_path, DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def test_production_response_sends_hsts_and_csp(tmp_path):
    # An API answer, so no template needs the collected static manifest.
    code = SETUP + (
        "from django.test import Client; "
        "r = Client(HTTP_HOST='portal.example.org').get('/api/v1/me/', secure=True); "
        "import json; print(json.dumps({'status': r.status_code, 'hsts': r.get('Strict-Transport-Security'), "
        "'csp': r.get('Content-Security-Policy')}))"
    )
    env = {"DEBUG": "0", "SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": "portal.example.org"}
    migrate = run_python("import django; django.setup(); from django.core.management import call_command; "
                         "call_command('migrate', verbosity=0)", tmp_path, **env)  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    result = run_python(code, tmp_path, **env)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["status"] == 401
    assert "max-age=31536000" in values["hsts"]
    assert "script-src 'self'" in values["csp"]
    assert "unsafe-inline" not in values["csp"]

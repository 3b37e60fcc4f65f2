"""Consult and study pages show instants in the reader's zone and calendar dates as they are."""

from __future__ import annotations

import datetime as dt

import pytest

from accounts.models import SpecialistProfile
from consultations.models import ConsultRequest

pytestmark = pytest.mark.django_db

DUE = dt.datetime(2026, 12, 7, 13, 30, tzinfo=dt.UTC)


def test_consult_page_shows_the_due_time_in_the_browsers_zone(client, consult, physician):
    ConsultRequest.objects.filter(pk=consult.pk).update(due_at=DUE)
    client.force_login(physician)
    client.cookies["tz"] = "America/New_York"
    html = client.get(f"/consults/{consult.pk}/").content.decode()
    assert '<dt>Due</dt><dd><time datetime="2026-12-07T08:30:00-05:00">7 Dec 2026, 08:30 EST</time></dd>' in html


def test_worklist_shows_the_due_time_in_the_specialists_profile_zone(client, consult, specialist):
    SpecialistProfile.objects.filter(user=specialist).update(time_zone="Europe/Berlin")
    ConsultRequest.objects.filter(pk=consult.pk).update(due_at=DUE)
    client.force_login(specialist)
    client.cookies["tz"] = "America/New_York"  # the profile's zone wins
    html = client.get("/worklist/").content.decode()
    assert 'title="Due 7 Dec 2026, 14:30 CET"' in html
    assert "EST" not in html


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"])
def test_study_date_and_time_are_the_sites_and_never_shifted(client, study, physician, zone):
    type(study).objects.filter(pk=study.pk).update(study_date=dt.date(2026, 12, 7), study_time=dt.time(23, 30))
    client.force_login(physician)
    client.cookies["tz"] = zone
    html = client.get(f"/studies/{study.study_instance_uid}/").content.decode()
    assert "<dd>7 Dec 2026 23:30</dd>" in html

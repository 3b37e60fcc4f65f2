"""In a real browser against the live server: a physician requests a consult, the specialist
accepts it from the worklist, writes the report (autosaved), signs it with their password, and
the physician reads the signed report."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from consultations.models import ConsultRequest, State
from tests.browser import browser_fixture, playwright_driver_fixture  # noqa: F401 - the shared browser fixtures
from tests.e2e.conftest import (  # noqa: F401 - the browser fixtures of tests/e2e, used here too
    _e2e_database,
    browser_context,
    login,
)
from tests.factories import make_study

pytestmark = pytest.mark.e2e


def test_request_accept_report_sign_and_read(browser_context, live_user):  # noqa: F811
    physician = live_user("physician", email="e2e-doc@example.com", name="Dr Referrer")
    specialist = live_user("specialist", email="e2e-spec@example.com", name="Dr Reader")
    patient = live_user("patient", email="e2e-pat@example.com", name="Pat E2E")
    study = make_study(uploader=physician, patient_account=patient)

    doctor = browser_context().new_page()
    login(doctor, physician)
    doctor.goto(f"/studies/{study.study_instance_uid}/consult/new/")
    doctor.get_by_role("button", name="Request the consult").click()
    expect(doctor.locator(".errorlist").first).to_be_visible()
    expect(doctor.get_by_text("Choose a specialty or name a specialist.")).to_be_visible()
    doctor.fill("textarea[name=question]", "Acute subdural haematoma?")
    doctor.select_option("select[name=priority]", "stat")
    doctor.select_option("select[name=specialty]", "neuroradiology")
    doctor.fill("input[name=jurisdiction]", "US-CA")
    doctor.get_by_role("button", name="Request the consult").click()
    doctor.wait_for_url(re.compile(r"/consults/\d+/$"))
    consult = ConsultRequest.objects.get()
    expect(doctor.locator("h1")).to_contain_text(f"Consult #{consult.pk}")

    reader = browser_context().new_page()
    login(reader, specialist)
    reader.goto("/worklist/")
    expect(reader.locator('[data-nav-count="worklist"]')).to_have_text("1")
    expect(reader.locator("table.worklist .badge[data-due]")).to_contain_text("left")
    reader.get_by_role("link", name=re.compile("Acute subdural")).click()
    reader.get_by_role("button", name="Accept").click()
    expect(reader.locator("h1")).to_contain_text("Accepted")
    reader.get_by_role("link", name="Write the report").click()
    reader.fill("textarea[name=findings]", "Thin left subdural collection, no mass effect.")
    reader.fill("textarea[name=impression]", "Small acute left subdural haematoma.")
    reader.select_option("select[name=agreement]", "major")
    expect(reader.locator("[data-autosave-status]")).to_contain_text("Saved at", timeout=10_000)
    assert "Small acute" in consult.reports.get().impression
    reader.fill("input[name=password]", "correct-horse-battery-staple")
    reader.get_by_role("button", name="Sign the report").click()
    reader.wait_for_url(re.compile(rf"/consults/{consult.pk}/$"))
    expect(reader.locator("h1")).to_contain_text("Reported")

    consult.refresh_from_db()
    assert consult.state == State.REPORTED
    doctor.reload()
    expect(doctor.get_by_text("Small acute left subdural haematoma.")).to_be_visible()
    expect(doctor.get_by_text("Major discrepancy")).to_be_visible()
    expect(doctor.get_by_role("link", name="Download the PDF")).to_be_visible()
    doctor.goto("/notifications/")
    expect(doctor.locator("[data-notification-list]")).to_contain_text("is signed")

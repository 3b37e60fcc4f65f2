"""In a browser against the live server: the specialist signs a report and the patient, on a phone,
is told live and reads it in the portal; the patient asks about it, the question shows up live on
the specialist's consult page, the specialist answers, and the answer is on the patient's page.
The changed portal page fits a 390 px screen at each step."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from studies.models import Patient
from tests.conftest import PASSWORD
from tests.e2e.conftest import login
from tests.e2e.journeys import DESK, PHONE, accepted_consult_on_new_study, assert_fits, shoot, watch_console

pytestmark = pytest.mark.e2e

STUDY_UID = "2.25.7345118203369440155102398815237764"
IMPRESSION = "Small old lacunar infarct; nothing acute."
SUMMARY = "An old, small scar was found; nothing needs doing now."
QUESTION = "Do I need another scan later?"
ANSWER = "No further scan is needed; your doctor will see you as planned."


@pytest.fixture
def consult_with_patient(live_user, tmp_path):
    consult, physician, specialist = accepted_consult_on_new_study(
        live_user, tmp_path, prefix="results", study_uid=STUDY_UID, slices=2
    )
    patient = live_user("patient", email="results-patient@example.com", name="Polly Patient")
    Patient.objects.filter(pk=consult.study.patient_id).update(account=patient)
    return consult, specialist, patient


def test_report_signed_then_question_and_answer_between_patient_and_specialist(browser_context, consult_with_patient):
    consult, specialist, patient = consult_with_patient
    portal_study = f"/portal/studies/{STUDY_UID}/"

    # The patient waits on their notifications page, on a phone.
    phone = browser_context(**PHONE).new_page()
    phone_problems = watch_console(phone)
    login(phone, patient)
    phone.goto("/notifications/")
    expect(phone.locator("[data-notification-list] [data-empty]")).to_be_visible()

    # The specialist writes and signs the report.
    desk = browser_context(**DESK).new_page()
    desk_problems = watch_console(desk)
    login(desk, specialist)
    desk.goto(f"/consults/{consult.pk}/report/")
    desk.fill("textarea[name=findings]", "Old lacunar infarct in the left basal ganglia.")
    desk.fill("textarea[name=impression]", IMPRESSION)
    desk.fill("textarea[name=patient_summary]", SUMMARY)
    desk.fill("input[name=password]", PASSWORD)
    desk.get_by_role("button", name="Sign the report").click()
    desk.wait_for_url(re.compile(rf"/consults/{consult.pk}/$"))

    # Told live, without clinical words; the notification leads to the report in the portal.
    item = phone.locator("[data-notification-list] li").first
    expect(item).to_contain_text("Your result is ready")
    expect(phone.locator('[data-nav-count="notifications"]')).to_have_text("1")
    assert "infarct" not in item.inner_text()
    item.get_by_role("link").click()
    phone.wait_for_url(f"**{portal_study}")
    expect(phone.locator(".portal-report")).to_contain_text(IMPRESSION)
    expect(phone.locator(".portal-summary")).to_contain_text(SUMMARY)
    assert_fits(phone)
    shoot(phone, "patient-report-ready-390x844")

    # The specialist is on the consult page; the patient asks.
    desk.goto(f"/consults/{consult.pk}/")
    expect(desk.locator("[data-room-state]")).to_have_text("Live")
    expect(desk.locator("[data-patient-questions]")).to_be_hidden()
    phone.fill("textarea[name=text]", QUESTION)
    phone.get_by_role("button", name="Send my question").click()
    phone.wait_for_url(f"**{portal_study}#questions")
    expect(phone.locator("[data-question]")).to_contain_text(QUESTION)
    expect(phone.locator("[data-waiting-answer]")).to_be_visible()
    assert_fits(phone)

    # Live in the specialist's chat, marked as the patient's, and in the questions panel.
    message = desk.locator("[data-room-messages] li").last
    expect(message).to_contain_text(QUESTION)
    expect(message.locator(".role-patient")).to_have_text("patient")
    panel = desk.locator("[data-patient-questions]")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text(QUESTION)
    panel.locator("textarea[name=text]").fill(ANSWER)
    panel.get_by_role("button", name="Send the answer to the patient").click()
    desk.wait_for_url(re.compile(rf"/consults/{consult.pk}/#patient-questions$"))
    expect(desk.locator("[data-patient-questions] [data-answer]")).to_contain_text(ANSWER)
    expect(desk.locator("[data-patient-questions] [data-answer]")).to_contain_text("visible to the patient")
    # The chat keeps both, the answer marked as the patient's to read.
    expect(desk.locator("[data-room-messages] li")).to_have_count(2)
    expect(desk.locator("[data-room-messages] li").last).to_contain_text(
        "Answer to the patient (visible to the patient)"
    )
    shoot(desk, "specialist-answered-patient-1366x850")

    # The answer is on the patient's page, and they were told.
    phone.goto(portal_study)
    expect(phone.locator("[data-question] [data-answer]")).to_contain_text(ANSWER)
    expect(phone.locator("[data-question] [data-answer]")).to_contain_text("Dr Reader answered")
    expect(phone.locator('[data-nav-count="notifications"]')).to_have_text("1")
    assert_fits(phone)
    shoot(phone, "patient-question-answered-390x844")
    phone.goto("/notifications/")
    expect(phone.locator("[data-notification-list] li").first).to_contain_text("Your care team answered your question")
    assert phone_problems == [] and desk_problems == []

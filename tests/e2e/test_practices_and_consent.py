"""In a browser against the live server: a physician asks a patient to link their account from
the patient page; the patient, on a phone, sees the request on "My records", accepts, sees the
images, then unlinks; a physician of another practice never reaches the record; a practice admin
invites a clinician, who joins from the link in the email."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import Membership
from studies.models import Patient
from tests.e2e.conftest import login, logout
from tests.e2e.journeys import PHONE, assert_fits
from tests.e2e.test_portal_and_sharing import store_ct

pytestmark = pytest.mark.e2e


def test_patient_on_a_phone_accepts_a_link_request_then_unlinks(browser_context, live_user, tmp_path):
    physician = live_user("physician", email="e2e.consent.physician@example.com", name="Dr Asker")
    patient = live_user("patient", email="e2e.consent.patient@example.com", name="Jane Doe")
    stranger = live_user("physician", email="e2e.consent.stranger@example.com", name="Dr Stranger")
    study = store_ct(physician, tmp_path)
    record = study.patient

    desk = browser_context().new_page()
    login(desk, physician)
    desk.get_by_role("link", name="Studies").first.click()
    desk.locator(f"a[href='/studies/{study.study_instance_uid}/']").first.click()
    desk.locator(f"a[href='/patients/{record.pk}/']").first.click()
    desk.fill("#invite-email", patient.email)
    desk.get_by_role("button", name="Ask to link").click()
    expect(desk.locator(".messages")).to_contain_text("linked only if its owner accepts")
    assert Patient.objects.get(pk=record.pk).account_id is None

    phone = browser_context(**PHONE).new_page()
    login(phone, patient)
    phone.get_by_role("link", name="Open my images and reports").click()
    expect(phone.locator("[data-link-request-banner]")).to_contain_text(physician.default_practice.name)
    expect(phone.locator("[data-portal-study]")).to_have_count(0)
    phone.get_by_role("link", name="Review").click()
    expect(phone.locator("[data-link-request]")).to_contain_text("asks to link its record")
    assert_fits(phone)
    phone.get_by_role("button", name="Yes, this is me: link it").click()
    expect(phone.locator(".messages")).to_contain_text("Linked")
    expect(phone.locator("[data-linked-record]")).to_contain_text(physician.default_practice.name)
    phone.get_by_role("link", name="Back to my images").click()
    expect(phone.locator(f"[data-portal-study='{study.study_instance_uid}']")).to_be_visible()
    assert_fits(phone)

    phone.goto("/portal/records/")
    phone.locator("[data-linked-record] button", has_text="Unlink").click()
    expect(phone.locator(".messages")).to_contain_text("no longer linked")
    assert Patient.objects.get(pk=record.pk).account_id is None
    phone.goto("/portal/")
    expect(phone.locator("[data-portal-study]")).to_have_count(0)

    logout(desk)
    login(desk, stranger)
    response = desk.goto(f"/patients/{record.pk}/")
    assert response.status == 404


def test_practice_admin_invites_a_clinician_who_joins_from_the_email(browser_context, live_user, server_outbox):
    admin = live_user("physician", email="e2e.practice.admin@example.com", name="Dr Admin")
    newcomer = live_user("physician", email="e2e.practice.new@example.com", name="Dr New", practice=False)
    practice = admin.default_practice

    page = browser_context().new_page()
    login(page, newcomer)
    expect(page.locator("[data-awaiting-practice]")).to_contain_text("Join your practice first")
    logout(page)

    login(page, admin)
    page.get_by_role("link", name="My practice").click()
    page.get_by_role("link", name="Members and invitations").click()
    page.fill("input[name=email]", newcomer.email)
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator(".messages")).to_contain_text(f"Invitation sent to {newcomer.email}")
    logout(page)

    message = server_outbox.wait_for(newcomer.email, subject="Join")
    link = next(link for link in server_outbox.links(message) if "/practices/join/" in link)
    phone = browser_context(**PHONE).new_page()
    login(phone, newcomer)
    phone.goto(link)
    phone.get_by_role("button", name=f"Join {practice.name}").click()
    expect(phone.locator(".messages")).to_contain_text(f"Welcome to {practice.name}")
    expect(phone.locator("[data-awaiting-practice]")).to_have_count(0)
    assert_fits(phone)
    assert Membership.objects.filter(practice=practice, user=newcomer).exists()

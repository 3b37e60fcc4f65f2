"""In a browser against the live server: a patient on a phone sees their study, the signed report
and who looked at it; a share link with a passcode opens for someone without an account, shows
the images of that one study, and stops working when revoked."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from playwright.sync_api import expect

from consultations import actions, reports
from studies import sharing
from studies.ingest import ingest_file
from studies.models import Patient, ShareLink, Study
from tests.e2e.conftest import login
from tests.e2e.journeys import PHONE, assert_fits, in_own_thread
from tests.factories import ConsultFactory
from tests.servers import server_password_hash
from tests.viewer import dicom

pytestmark = pytest.mark.e2e


def store_ct(uploader, tmp_path, *, patient_account=None) -> Study:
    uid = f"2.25.{uuid.uuid4().int}"
    for path in dicom.write(dicom.ct_slices(uid, count=2, size=64), tmp_path / uid[-8:]):
        result = ingest_file(path, filename=path.name, user=uploader)
        assert result.status == "stored", result.reason
    study = Study.objects.get(study_instance_uid=uid)
    if patient_account is not None:
        Patient.objects.filter(pk=study.patient_id).update(account=patient_account)
    return study


def signed_consult(physician, specialist, study):
    consult = ConsultFactory(requester=physician, study=study, target_specialist=specialist)
    actions.submit_consult(consult, by=physician)
    actions.accept_consult(consult, by=specialist)
    report = reports.save_draft(
        consult,
        by=specialist,
        findings="Small old lacunar infarct.",
        impression="No acute findings.",
        patient_summary="Nothing urgent was found on your scan.",
    )
    report.sign(by=specialist)
    return consult


def test_patient_on_a_phone_sees_study_signed_report_and_who_looked(browser_context, live_user, tmp_path):
    physician = live_user("physician", email="e2e.portal.physician@example.com", name="Dr Referrer")
    specialist = live_user("specialist", email="e2e.portal.specialist@example.com", name="Dr Reader")
    patient = live_user("patient", email="e2e.portal.patient@example.com", name="Polly Patient")
    study = store_ct(physician, tmp_path, patient_account=patient)
    in_own_thread(signed_consult, physician, specialist, study)
    looker = Client()
    looker.force_login(specialist)
    assert looker.get(f"/studies/{study.study_instance_uid}/").status_code == 200

    page = browser_context(**PHONE).new_page()
    login(page, patient)
    page.get_by_role("link", name="Open my images and reports").click()
    page.wait_for_url("**/portal/")
    card = page.locator(f"[data-portal-study='{study.study_instance_uid}']")
    expect(card).to_contain_text("Report ready")
    card.get_by_role("link").click()
    page.wait_for_url(f"**/portal/studies/{study.study_instance_uid}/")
    expect(page.locator(".portal-summary")).to_contain_text("Nothing urgent was found on your scan.")
    expect(page.locator(".portal-report")).to_contain_text("No acute findings.")
    expect(page.locator(".portal-events")).to_contain_text("Dr Reader")
    assert_fits(page)
    expect(page.locator(".portal-thumbs img").first).to_be_visible()

    page.get_by_role("link", name="Look at the images").click()
    expect(page.locator("[data-viewer]")).to_have_attribute("data-read-only", "true")


def test_share_link_with_passcode_for_someone_without_an_account_until_revoked(browser_context, live_user, tmp_path):
    physician = live_user("physician", email="e2e.share.physician@example.com", name="Dr Sharer")
    study = store_ct(physician, tmp_path)
    other = store_ct(physician, tmp_path)
    new = sharing.create_share(study=study, by=physician, passcode="e2e-pass-42", allow_download=True)
    # Hashed with a hasher the live server knows (the unit tests' fast one is not in its list).
    ShareLink.objects.filter(pk=new.link.pk).update(passcode_hash=server_password_hash("e2e-pass-42"))
    token = new.token

    page = browser_context(**PHONE).new_page()
    page.goto(f"/s/{token}")
    expect(page.get_by_role("heading", name="Enter the passcode")).to_be_visible()
    page.fill("input[name=passcode]", "wrong-guess")
    page.get_by_role("button", name="Open the images").click()
    expect(page.locator(".errorlist")).to_contain_text("That passcode is wrong. 4 more wrong tries lock the link.")

    page.fill("input[name=passcode]", "e2e-pass-42")
    with page.expect_response(lambda r: f"/s/{token}/dicomweb/" in r.url and "/frames/" in r.url) as first_frame:
        page.get_by_role("button", name="Open the images").click()
    assert first_frame.value.status == 200
    expect(page.locator("[data-viewer]")).to_have_attribute("data-read-only", "true")
    expect(page.get_by_role("link", name="Download all images (zip)")).to_be_visible()
    statuses = page.evaluate(
        """async ([root, mine, other]) => [
            (await fetch(`${root}/studies/${mine}/metadata`)).status,
            (await fetch(`${root}/studies/${other}/metadata`)).status,
            (await fetch(`/dicomweb/studies/${mine}/metadata`)).status,
        ]""",
        [f"/s/{token}/dicomweb", study.study_instance_uid, other.study_instance_uid],
    )
    assert statuses == [200, 404, 401]

    ShareLink.objects.get(study=study).revoke(by=physician)
    page.reload()
    expect(page.get_by_role("heading", name="This link does not work")).to_be_visible()
    assert study.description not in page.content()
    assert (
        page.evaluate(f"fetch('/s/{token}/dicomweb/studies/{study.study_instance_uid}/metadata').then(r => r.status)")
        == 404
    )

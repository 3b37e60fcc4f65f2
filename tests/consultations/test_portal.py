"""The patient portal: my studies with a plain-language timeline, signed reports (never drafts),
the report PDF and the study zip; what the patient controls on the access page; 404 for anyone
else's data; report reads anywhere write their access event."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from consultations import reports
from studies.models import AccessEvent, AccessGrant, ShareLink
from studies.permissions import can_view_study
from tests.factories import UserFactory, make_study

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def sign(consult, specialist, password):
    reports.save_draft(
        consult,
        by=specialist,
        findings="No intracranial haemorrhage.",
        impression="Normal CT head.",
        patient_summary="Your scan looks normal.",
    )
    return reports.sign_report(consult, by=specialist, password=password)


@pytest.fixture
def stranger(db):
    return UserFactory(role="patient", email="stranger@example.com", name="Stan Stranger")


def test_portal_lists_my_studies_with_plain_status(patient_user, study, stranger):
    make_study(patient_account=stranger)
    page = signed_in(patient_user).get(reverse("portal:home"))
    assert page.status_code == 200
    assert page.content.count(b"data-portal-study=") == 1
    assert study.study_instance_uid.encode() in page.content
    assert b"Your images were stored." in page.content


def test_patient_pages_name_modalities_in_words_not_dicom_codes(physician, patient_user):
    study = make_study(uploader=physician, patient_account=patient_user, modalities="MR\\DOC\\XC")
    client = signed_in(patient_user)
    for url in (reverse("portal:home"), reverse("portal:study", args=[study.study_instance_uid])):
        page = client.get(url).content.decode()
        assert "MRI, Document (PDF), Photo" in page, url
        assert "DOC" not in page and "DICOM" not in page, url


def test_clinicians_are_sent_to_their_study_list(physician):
    response = signed_in(physician).get(reverse("portal:home"))
    assert response.status_code == 302 and response["Location"] == reverse("studies:list")


def test_timeline_follows_the_consult_in_plain_words(patient_user, study, accepted):
    page = signed_in(patient_user).get(reverse("portal:study", args=[study.study_instance_uid]))
    text = page.content.decode()
    assert "Your images were sent to a specialist" in text
    assert "A specialist is reviewing your images." in text
    assert "The report is not ready yet." in text
    assert "Report ready" not in text


def test_patient_never_sees_a_draft(patient_user, study, accepted, specialist):
    reports.save_draft(accepted, by=specialist, findings="DRAFT-FINDINGS", impression="x")
    page = signed_in(patient_user).get(reverse("portal:study", args=[study.study_instance_uid]))
    assert b"DRAFT-FINDINGS" not in page.content
    assert not AccessEvent.objects.filter(action="report_view").exists()
    assert signed_in(patient_user).get(reverse("portal:report-pdf", args=[accepted.pk])).status_code == 404


def test_signed_report_summary_and_pdf(patient_user, study, accepted, specialist, password):
    report = sign(accepted, specialist, password)
    client = signed_in(patient_user)
    page = client.get(reverse("portal:study", args=[study.study_instance_uid]))
    text = page.content.decode()
    assert "Report ready" in text and "Your scan looks normal." in text and "Normal CT head." in text
    assert AccessEvent.objects.filter(action="study_view", user=patient_user).count() == 1
    assert AccessEvent.objects.get(action="report_view").object_id == f"report:{report.pk}"
    pdf = client.get(reverse("portal:report-pdf", args=[accepted.pk]))
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert AccessEvent.objects.filter(action="report_pdf", user=patient_user).count() == 1


def test_another_patient_gets_404_for_study_report_events_and_download(
    stranger, study, accepted, specialist, password, auth_client
):
    sign(accepted, specialist, password)
    client = signed_in(stranger)
    uid = study.study_instance_uid
    assert client.get(reverse("portal:study", args=[uid])).status_code == 404
    assert client.get(reverse("portal:report-pdf", args=[accepted.pk])).status_code == 404
    assert client.get(reverse("studies:download", args=[uid])).status_code == 404
    assert client.get(reverse("studies:access", args=[uid])).status_code == 404
    assert client.get(reverse("consultations:detail", args=[accepted.pk])).status_code == 404
    assert auth_client(stranger).get("/api/v1/access-events/", {"study_uid": uid}).status_code == 404
    assert auth_client(stranger).get(f"/api/v1/consults/{accepted.pk}/report/").status_code == 404
    assert not AccessEvent.objects.filter(user=stranger).exists()


def test_report_reads_on_consult_pages_and_api_write_events(physician, accepted, specialist, password, auth_client):
    sign(accepted, specialist, password)
    signed_in(physician).get(reverse("consultations:detail", args=[accepted.pk]))
    assert AccessEvent.objects.filter(action="report_view", user=physician).count() == 1
    assert signed_in(physician).get(reverse("consultations:report-pdf", args=[accepted.pk])).status_code == 200
    api = auth_client(physician)
    assert api.get(f"/api/v1/consults/{accepted.pk}/report/").status_code == 200
    assert api.get(f"/api/v1/consults/{accepted.pk}/report/pdf/").status_code == 200
    assert AccessEvent.objects.filter(action="report_view", user=physician).count() == 2
    assert AccessEvent.objects.filter(action="report_pdf", user=physician).count() == 2


# --- who has access, controlled by the patient ------------------------------------------------


def test_patient_sees_everyone_with_access(patient_user, physician, study, accepted, specialist):
    from studies import sharing

    sharing.create_share(study=study, by=physician, label="For Dr Elsewhere")
    page = signed_in(patient_user).get(reverse("studies:access", args=[study.study_instance_uid]))
    text = page.content.decode()
    assert "Dr Owner" in text and "the practice that keeps this record (uploaded the study)" in text
    assert "Dr Specialist" in text and "Consult participant" in text
    assert "For Dr Elsewhere" in text


def test_patient_grants_a_named_specialist_and_withdraws_it(patient_user, study, other_specialist):
    client = signed_in(patient_user)
    url = reverse("studies:add-grant", args=[study.study_instance_uid])
    assert client.post(url, {"email": other_specialist.email}).status_code == 302
    assert can_view_study(other_specialist, study)
    grant = AccessGrant.objects.get(user=other_specialist)
    assert grant.reason == AccessGrant.Reason.PATIENT_GRANT and grant.granted_by == patient_user
    revoke = reverse("studies:revoke-grant", args=[study.study_instance_uid, grant.pk])
    assert client.post(revoke).status_code == 302
    assert not can_view_study(other_specialist, study)


def test_patient_grant_refuses_unknown_and_non_clinician_addresses(patient_user, study, stranger):
    client = signed_in(patient_user)
    url = reverse("studies:add-grant", args=[study.study_instance_uid])
    for email in ("nobody@example.com", stranger.email, "not an email"):
        response = client.post(url, {"email": email})
        assert response.status_code == 400
    assert not AccessGrant.objects.filter(reason=AccessGrant.Reason.PATIENT_GRANT).exists()


def test_patient_cannot_withdraw_access_they_did_not_give(patient_user, physician, study, other_specialist):
    from studies.permissions import grant_access

    shared = grant_access(user=other_specialist, study=study, reason=AccessGrant.Reason.SHARED, granted_by=physician)
    response = signed_in(patient_user).post(reverse("studies:revoke-grant", args=[study.study_instance_uid, shared.pk]))
    assert response.status_code == 404
    assert can_view_study(other_specialist, study)


def test_clinicians_cannot_use_the_patient_grant_form(physician, study, other_specialist):
    response = signed_in(physician).post(
        reverse("studies:add-grant", args=[study.study_instance_uid]), {"email": other_specialist.email}
    )
    assert response.status_code == 404


def test_share_link_made_on_the_page_is_shown_once_and_can_be_stopped(patient_user, study):
    client = signed_in(patient_user)
    made = client.post(
        reverse("studies:create-link", args=[study.study_instance_uid]),
        {"expires_in_days": 3, "passcode": "pass-1234", "label": "Dr Second opinion"},
    )
    assert made.status_code == 201
    link = ShareLink.objects.get()
    assert b"http://testserver/s/" in made.content and link.has_passcode
    again = client.get(reverse("studies:access", args=[study.study_instance_uid]))
    assert b"http://testserver/s/" not in again.content
    bad = client.post(reverse("studies:create-link", args=[study.study_instance_uid]), {"expires_in_days": 400})
    assert bad.status_code == 400
    stop = client.post(reverse("studies:revoke-link", args=[study.study_instance_uid, link.pk]))
    assert stop.status_code == 302
    link.refresh_from_db()
    assert link.status == "revoked"


def test_patient_home_points_to_the_portal(patient_user):
    page = signed_in(patient_user).get(reverse("home"))
    assert reverse("portal:home").encode() in page.content

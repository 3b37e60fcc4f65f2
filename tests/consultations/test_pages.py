"""Pages: request a consult with clear validation, the consult page, worklist, report editor,
PDF, and 404 for outsiders on every page."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from consultations import reports
from consultations.models import ConsultRequest, State

pytestmark = pytest.mark.django_db


def sign(consult, specialist, password, **fields):
    values = {"findings": "No intracranial haemorrhage.", "impression": "Normal CT head."}
    values.update(fields)
    reports.save_draft(consult, by=specialist, **values)
    return reports.sign_report(consult, by=specialist, password=password)


def test_request_a_consult_from_the_study_page(client, physician, study, specialist):
    client.force_login(physician)
    url = f"/studies/{study.study_instance_uid}/consult/new/"
    assert client.get(url).status_code == 200
    response = client.post(
        url,
        {
            "question": "Bleed on the left?",
            "priority": "stat",
            "specialty": "neuroradiology",
            "jurisdiction": "US-CA",
        },
    )
    consult = ConsultRequest.objects.get()
    assert response.status_code == 302 and response.url == f"/consults/{consult.pk}/"
    assert consult.state == State.SUBMITTED and consult.priority == "stat"


def test_request_form_names_each_bad_field(client, physician, study):
    client.force_login(physician)
    url = f"/studies/{study.study_instance_uid}/consult/new/"
    response = client.post(
        url,
        {
            "question": "",
            "priority": "eventually",
            "specialty": "",
            "jurisdiction": "nowhere",
            "attachment": io.BytesIO(b"not a pdf"),
        },
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) >= {"question", "priority", "specialty", "jurisdiction", "attachment"}
    assert b"Choose a specialty or name a specialist." in response.content
    assert not ConsultRequest.objects.exists()


def test_outsider_gets_404_on_the_request_page(client, outsider, study):
    client.force_login(outsider)
    assert client.get(f"/studies/{study.study_instance_uid}/consult/new/").status_code == 404


def test_patient_cannot_request(client, patient_user, study):
    client.force_login(patient_user)
    assert client.get(f"/studies/{study.study_instance_uid}/consult/new/").status_code == 403


PAGES = [
    ("get", "/consults/{pk}/"),
    ("post", "/consults/{pk}/do/accept/"),
    ("post", "/consults/{pk}/do/cancel/"),
    ("post", "/consults/{pk}/participants/"),
    ("post", "/consults/{pk}/attachments/"),
    ("get", "/consults/{pk}/report/"),
    ("post", "/consults/{pk}/report/save/"),
    ("post", "/consults/{pk}/report/sign/"),
    ("post", "/consults/{pk}/report/addendum/"),
    ("get", "/consults/{pk}/report.pdf"),
]


@pytest.mark.parametrize(("method", "path"), PAGES)
def test_outsider_gets_404_on_every_consult_page(client, outsider, accepted, method, path):
    client.force_login(outsider)
    assert getattr(client, method)(path.format(pk=accepted.pk)).status_code == 404


def test_worklist_shows_offers_with_badges(client, specialist, consult):
    client.force_login(specialist)
    page = client.get("/worklist/")
    assert page.status_code == 200
    assert f"/consults/{consult.pk}/".encode() in page.content
    assert b'class="badge ok"' in page.content and b"left" in page.content
    assert b'data-nav-count="worklist">1<' in page.content
    assert client.get("/worklist/?priority=stat").context["consults"] == []
    assert client.get("/worklist/?priority=bogus").status_code == 200  # invalid filters are ignored


def test_accept_from_the_consult_page(client, specialist, consult):
    client.force_login(specialist)
    page = client.get(f"/consults/{consult.pk}/")
    assert b"/do/accept/" in page.content
    response = client.post(f"/consults/{consult.pk}/do/accept/")
    assert response.status_code == 302
    consult.refresh_from_db()
    assert consult.assignee == specialist


def test_page_action_shows_the_reason_when_refused(client, physician, consult):
    client.force_login(physician)
    response = client.post(f"/consults/{consult.pk}/do/close/", follow=True)
    assert b"Cannot close a consult" in response.content


def test_report_editor_autosaves_signs_and_shows_pdf(client, specialist, accepted, password):
    client.force_login(specialist)
    page = client.get(f"/consults/{accepted.pk}/report/")
    assert page.status_code == 200 and b"data-report-editor" in page.content
    assert b"<script>" not in page.content  # no inline script (CSP)
    response = client.put(
        f"/api/v1/consults/{accepted.pk}/report/",
        data='{"findings": "Small subdural.", "impression": "Acute subdural haematoma."}',
        content_type="application/json",
    )
    assert response.status_code == 200
    response = client.post(f"/consults/{accepted.pk}/report/sign/", {"password": "wrong"}, follow=True)
    assert b"The password or code is wrong." in response.content
    response = client.post(f"/consults/{accepted.pk}/report/sign/", {"password": password})
    assert response.status_code == 302
    accepted.refresh_from_db()
    assert accepted.state == State.REPORTED


def test_requester_reads_the_signed_report_and_pdf(client, physician, specialist, accepted, password):
    sign(accepted, specialist, password, agreement="major", patient_summary="A small bleed needs review.")
    client.force_login(physician)
    page = client.get(f"/consults/{accepted.pk}/")
    assert b"Normal CT head." in page.content and b"Major discrepancy" in page.content
    response = client.get(f"/consults/{accepted.pk}/report.pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(response.content)).pages)
    report = accepted.reports.get()
    assert f"consult #{accepted.pk}" in text
    assert "Normal CT head." in text and "No intracranial haemorrhage." in text
    assert "Major discrepancy" in text and "A small bleed needs review." in text
    assert "Dr Specialist" in text and report.content_sha256 in text.replace("\n", "")
    assert "Jane Doe" in text or "Doe Jane" in text


def test_pdf_lists_addenda_and_keeps_the_original(client, physician, specialist, accepted, password):
    sign(accepted, specialist, password)
    reports.start_addendum(accepted, by=specialist, reason="Fracture missed.")
    reports.save_draft(accepted, by=specialist, impression="Normal brain; occipital fracture.")
    reports.sign_report(accepted, by=specialist, password=password)
    client.force_login(physician)
    text = "\n".join(
        p.extract_text() for p in PdfReader(io.BytesIO(client.get(f"/consults/{accepted.pk}/report.pdf").content)).pages
    )
    assert "Addendum (version 2)" in text and "Fracture missed." in text
    assert "occipital fracture" in text and "Normal CT head." in text


def test_pdf_before_signing_is_404(client, physician, accepted):
    client.force_login(physician)
    assert client.get(f"/consults/{accepted.pk}/report.pdf").status_code == 404


def test_patient_sees_signed_report_never_the_draft(client, patient_user, specialist, accepted, password):
    reports.save_draft(accepted, by=specialist, findings="Draft finding XYZ", impression="Draft impression")
    client.force_login(patient_user)
    page = client.get(f"/consults/{accepted.pk}/")
    assert page.status_code == 200 and b"Draft finding XYZ" not in page.content
    assert client.get(f"/consults/{accepted.pk}/report.pdf").status_code == 404
    assert client.get(f"/consults/{accepted.pk}/report/").status_code == 403
    reports.sign_report(accepted, by=specialist, password=password)
    page = client.get(f"/consults/{accepted.pk}/")
    assert b"Draft finding XYZ" in page.content
    assert client.get("/consults/").context["consults"] == [accepted]


def test_my_consults_for_the_physician(client, physician, consult):
    client.force_login(physician)
    page = client.get("/consults/")
    assert page.context["consults"] == [consult]
    assert b'data-nav-count="consults">1<' in page.content


def test_study_consults_panel(rf, physician, consult, outsider):
    from django.template.loader import render_to_string

    from consultations.extensions import study_consults_panel

    request = rf.get("/")
    request.user = physician
    panel = study_consults_panel(request, consult.study)
    html = render_to_string("consultations/_study_consults.html", {"panel": panel}, request=request)
    assert f"/consults/{consult.pk}/" in html and panel["ask"] is not None
    request.user = outsider
    assert study_consults_panel(request, consult.study)["rows"] == []


def test_demo_consult_is_idempotent(physician, specialist, study):
    from consultations.demo import seed_demo_consult

    first = seed_demo_consult(physician, specialist, study)
    again = seed_demo_consult(physician, specialist, study)
    assert first.pk == again.pk and first.state == State.ACCEPTED
    assert seed_demo_consult(physician, specialist, None) is None


def test_admin_lists_consults_with_their_timeline(client, admin_user, accepted):
    client.force_login(admin_user)
    assert client.get("/admin/consultations/consultrequest/").status_code == 200
    page = client.get(f"/admin/consultations/consultrequest/{accepted.pk}/change/")
    assert page.status_code == 200 and b"Accepted by Dr Specialist." in page.content


def test_specialist_starts_the_draft_over_from_another_template(client, specialist, accepted, physician):
    from consultations.models import ReportTemplate

    client.force_login(specialist)
    page = client.get(f"/consults/{accepted.pk}/report/")
    assert "CT head" in page.content.decode() and "MRI knee" in page.content.decode()
    knee = ReportTemplate.objects.get(name="MRI knee")
    response = client.post(f"/consults/{accepted.pk}/report/template/", {"template": knee.pk})
    assert response.status_code == 302
    draft = accepted.reports.get()
    assert draft.template == knee and "Menisci" in draft.findings
    response = client.post(f"/consults/{accepted.pk}/report/template/", {"template": "x"}, follow=True)
    assert b"template: Choose one of the templates." in response.content
    client.force_login(physician)
    response = client.post(f"/consults/{accepted.pk}/report/template/", {"template": knee.pk}, follow=True)
    assert b"Only the specialist who accepted this consult" in response.content


def test_lists_and_the_consult_page_name_modalities_in_words_not_dicom_codes(client, physician, study):
    from consultations import actions
    from tests.factories import ConsultFactory

    study.modalities = "CT\\DOC"
    study.save(update_fields=["modalities"])
    consult = ConsultFactory(requester=physician, study=study)
    actions.submit_consult(consult, by=physician)
    client.force_login(physician)
    for url in ("/consults/", f"/consults/{consult.pk}/"):
        page = client.get(url).content.decode()
        assert "CT, Document (PDF)" in page and "CT\\DOC" not in page, url

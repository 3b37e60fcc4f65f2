"""Report versions are unmistakable (consultations.versions): an amended version says so, with its
date and reason, on the consult page, the report editor, the portal, a share page, the PDF and the
API; an older version says which version superseded it and when; the care team's notification of
an amendment says why and which sections changed, the patient's stays free of clinical content."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.test import Client
from pypdf import PdfReader

from accounts.timeformat import format_instant
from consultations import reports, versions
from consultations.models import Notification, Report
from studies import sharing

API = "/api/v1/consults"
REASON = "The fracture line reaches the occipital condyle."
FIRST = {
    "findings": "Linear occipital fracture.",
    "impression": "Occipital fracture.",
    "recommendations": "CT follow-up.",
}


def amend(consult, specialist, password, capture, *, reason=REASON, **changes) -> Report:
    with capture(execute=True):
        reports.start_addendum(consult, by=specialist, reason=reason)
        if changes:
            reports.save_draft(consult, by=specialist, **changes)
        return reports.sign_report(consult, by=specialist, password=password)


@pytest.fixture
def signed(accepted, specialist, password, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        reports.save_draft(accepted, by=specialist, **FIRST)
        reports.sign_report(accepted, by=specialist, password=password)
    return accepted


@pytest.fixture
def amended(signed, specialist, password, django_capture_on_commit_callbacks):
    amend(
        signed,
        specialist,
        password,
        django_capture_on_commit_callbacks,
        impression="Occipital fracture reaching the condyle.",
        recommendations="CT of the craniocervical junction.",
    )
    return signed


def _signed_on(consult, version: int) -> str:
    return format_instant(Report.objects.get(consult=consult, version=version).signed_at)


def _page(user, url: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def _text(html: str) -> str:
    """The page's words without markup, as a reader sees them."""
    import re

    return " ".join(re.sub(r"<[^>]+>", "", html).split())


# --- the REST API -----------------------------------------------------------------------------


def test_the_api_marks_the_amended_version_and_what_superseded_the_first(amended, physician, auth_client):
    api = auth_client(physician)
    listed = api.get(f"{API}/{amended.pk}/report/versions/").data
    first, second = listed
    assert (first["version"], first["amended"], first["supersedes"], first["superseded_by"]) == (1, False, None, 2)
    assert first["superseded_at"] is not None
    assert (second["amended"], second["supersedes"], second["superseded_by"], second["superseded_at"]) == (
        True,
        1,
        None,
        None,
    )
    assert second["addendum_reason"] == REASON
    current = api.get(f"{API}/{amended.pk}/report/").data
    assert (current["version"], current["amended"], current["supersedes"], current["superseded_by"]) == (
        2,
        True,
        1,
        None,
    )


def test_a_patient_is_not_told_of_a_version_that_is_not_theirs_yet(
    signed, specialist, patient_user, password, auth_client, settings, django_capture_on_commit_callbacks
):
    settings.TELECONSULT_REPORT_RELEASE_DELAY_MINUTES = 60
    amend(signed, specialist, password, django_capture_on_commit_callbacks, impression="Changed.")
    listed = auth_client(patient_user).get(f"{API}/{signed.pk}/report/versions/").data
    assert [(v["version"], v["superseded_by"]) for v in listed] == [(1, None)]


# --- pages ------------------------------------------------------------------------------------


def test_the_consult_page_labels_the_old_version_superseded_and_the_new_one_amended(amended, physician):
    page = _text(_page(physician, f"/consults/{amended.pk}/"))
    assert f"Superseded by version 2 on {_signed_on(amended, 2)}" in page
    assert f"Amended on {_signed_on(amended, 2)} (version 2, replaces version 1). Reason: {REASON}" in page
    assert page.index("Amended on") < page.index("Superseded by version 2")  # the current version first


def test_the_report_editor_labels_both_versions(amended, specialist):
    page = _page(specialist, f"/consults/{amended.pk}/report/")
    assert 'data-superseded-by="2"' in page and 'data-amended="2"' in page
    assert f"Superseded by version 2 on {_signed_on(amended, 2)}" in _text(page)


def test_the_portal_marks_the_amendment_and_keeps_the_earlier_version_labelled(amended, patient_user):
    page = _text(_page(patient_user, f"/portal/studies/{amended.study.study_instance_uid}/"))
    assert "Specialist's report (amended)" in page
    assert f"Amended on {_signed_on(amended, 2)}: this is version 2, which replaces version 1. Reason: {REASON}" in page
    assert "Earlier versions of this report" in page
    assert f"Superseded by version 2 on {_signed_on(amended, 2)}" in page and FIRST["impression"] in page


def test_an_unamended_report_carries_no_version_labels(signed, physician, patient_user):
    for user, url in (
        (physician, f"/consults/{signed.pk}/"),
        (patient_user, f"/portal/studies/{signed.study.study_instance_uid}/"),
    ):
        page = _page(user, url)
        assert "data-superseded-by" not in page and "data-amended" not in page and "Earlier versions" not in page


def test_the_share_page_labels_the_superseded_version(amended, physician):
    token = sharing.create_share(study=amended.study, by=physician, include_report=True).token
    page = _text(Client().get(f"/s/{token}/").content.decode())
    assert f"Amended on {_signed_on(amended, 2)}: version 2 replaces version 1." in page
    assert f"Superseded by version 2 on {_signed_on(amended, 2)}" in page


def test_the_pdf_says_it_is_amended_and_marks_the_superseded_version(amended, physician):
    client = Client()
    client.force_login(physician)
    pdf = client.get(f"/consults/{amended.pk}/report.pdf").content
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).split())
    assert text.index("AMENDED REPORT.") < text.index("Clinical question")
    assert f"Amended on {_signed_on(amended, 2)} (version 2, replaces version 1). Reason: {REASON}" in text
    assert "Report (version 1) - superseded" in text
    assert f"Superseded by version 2 on {_signed_on(amended, 2)}: read that version" in text


def test_the_patients_pdf_has_the_labels_too(amended, patient_user):
    client = Client()
    client.force_login(patient_user)
    pdf = client.get(f"/portal/consults/{amended.pk}/report.pdf").content
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).split())
    assert "AMENDED REPORT." in text and "Superseded by version 2 on" in text


# --- notifications ----------------------------------------------------------------------------


def test_the_care_team_is_told_why_and_which_sections_changed(amended, physician):
    note = Notification.objects.filter(user=physician, kind="addendum").get()
    assert note.body.startswith(f"Reason: {REASON}\nChanged since version 1: impression and recommendations.")


def test_an_amendment_that_changes_no_section_says_so(
    signed, physician, specialist, password, django_capture_on_commit_callbacks
):
    amend(signed, specialist, password, django_capture_on_commit_callbacks, reason="Signed under the wrong template.")
    note = Notification.objects.filter(user=physician, kind="addendum").get()
    assert "as in version 1" in note.body and "Changed since" not in note.body


def test_the_patients_notification_of_an_amendment_has_no_clinical_content(amended, patient_user):
    note = Notification.objects.filter(user=patient_user, kind="addendum").get()
    told = f"{note.title} {note.body}"
    for word in ("condyle", "fracture", "impression", "recommendations", "Changed since", "Reason"):
        assert word.lower() not in told.lower(), word


def test_changed_sections_compare_each_section_with_the_previous_signed_version(amended):
    first, second = Report.objects.filter(consult=amended).order_by("version")
    assert versions.changed_sections(first, second) == ["impression", "recommendations"]
    assert versions.changed_sections(None, first) == []
    assert versions.previous_signed(second) == first


def test_labels_follow_the_versions_given_not_the_database(amended):
    first, second = Report.objects.filter(consult=amended).order_by("version")
    assert versions.superseded_text(versions.labelled([first])[0]) == ""  # alone: nothing supersedes it
    labelled = versions.labelled([second, first])
    assert [r.version for r in labelled] == [2, 1] and labelled[1].successor == second
    assert versions.superseded_text(first) == f"Superseded by version 2 on {format_instant(second.signed_at)}"
    assert second.signed_at - first.signed_at < timedelta(minutes=5)

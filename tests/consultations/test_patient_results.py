"""Patients kept informed about their reports, and able to ask about them.

- Signing (or an addendum) tells the patient linked to the record: a portal notification leading to
  the portal's study page, and an email that says a result is ready with no clinical content;
  their email settings are respected.
- TELECONSULT_REPORT_RELEASE_DELAY_MINUTES: the patient reads a signed version only that long after
  signing (portal page, PDF on both routes, the API, the PDF filed in the study); meanwhile the
  portal says when; the beat task releases what is due and tells the patient once.
- The patient asks the care team about the report from the portal (or the API); the question goes
  through the consult's chat; a clinician's answer comes back to the portal with a notification.
  The team's other messages stay theirs; outsiders get 404 on every route.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from consultations import actions, questions, reports, room, tasks
from consultations.models import ChatMessage, Notification, NotificationPreference, PatientQuestion, Report
from studies.models import Instance
from tests.factories import UserFactory, make_study

pytestmark = pytest.mark.django_db

FINDINGS = "Small subdural haematoma over the left convexity."
IMPRESSION = "Subdural haematoma, no mass effect."
SUMMARY = "A small bleed was found next to the brain."
CLINICAL_WORDS = ("haematoma", "subdural", "bleed", "brain", "convexity", "head", "CT", "Doe", "Jane")
API = "/api/v1/consults"


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def sign(consult, specialist, password, capture) -> Report:
    with capture(execute=True):
        reports.save_draft(consult, by=specialist, findings=FINDINGS, impression=IMPRESSION, patient_summary=SUMMARY)
        return reports.sign_report(consult, by=specialist, password=password)


def add_addendum(consult, specialist, password, capture) -> Report:
    with capture(execute=True):
        reports.start_addendum(consult, by=specialist, reason="The haematoma measures 4 mm, not 6 mm.")
        reports.save_draft(consult, by=specialist, impression="Subdural haematoma of 4 mm.")
        # The first version's PDF, filed in the study, adds "Document (PDF)" to its modalities,
        # which the identity check at signing asks to confirm.
        return reports.sign_report(consult, by=specialist, password=password, confirm_identity=True)


def portal_page(user, study):
    return signed_in(user).get(reverse("portal:study", args=[study.study_instance_uid]))


def emails_to(user) -> list:
    return [message for message in mail.outbox if message.to == [user.email]]


def assert_no_clinical_content(message) -> None:
    text = f"{message.subject}\n{message.body}"
    for word in CLINICAL_WORDS:
        assert word.lower() not in text.lower(), f"{word!r} in the email: {text}"


def study_pdf_instances(study) -> int:
    return Instance.objects.filter(series__study=study, series__modality="DOC").count()


@pytest.fixture
def delayed(settings):
    settings.TELECONSULT_REPORT_RELEASE_DELAY_MINUTES = 60
    return settings


@pytest.fixture
def signed(accepted, specialist, password, django_capture_on_commit_callbacks):
    sign(accepted, specialist, password, django_capture_on_commit_callbacks)
    accepted.refresh_from_db()
    return accepted


@pytest.fixture
def other_patient(db):
    return UserFactory(role="patient", email="other.patient@example.com", name="Otto Other")


# -- told when signed (no delay) ------------------------------------------------------------------


def test_signing_tells_the_patient_in_the_portal_and_by_email_without_clinical_content(
    accepted, study, specialist, physician, patient_user, password, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    report = sign(accepted, specialist, password, django_capture_on_commit_callbacks)
    note = Notification.objects.get(user=patient_user)
    portal_url = reverse("portal:study", args=[study.study_instance_uid])
    assert (note.kind, note.title, note.url) == ("report_signed", "Your result is ready", portal_url)
    assert "your imaging study" in note.body
    [email] = emails_to(patient_user)
    assert "result is ready" in email.subject and portal_url in email.body
    assert_no_clinical_content(email)
    # The referring physician is told as before, and the patient's page shows the report.
    assert Notification.objects.filter(user=physician, kind="report_signed").exists()
    report.refresh_from_db()
    assert report.released_at is not None and report.release_at == report.signed_at
    assert FINDINGS in portal_page(patient_user, study).content.decode()
    # The notifications page, where the nav's Notifications entry leads, shows it.
    page = signed_in(patient_user).get(reverse("consultations:notifications")).content.decode()
    assert "Your result is ready" in page and 'data-nav-count="notifications">1<' in page


def test_an_addendum_tells_the_patient_without_its_reason(
    signed, specialist, patient_user, password, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    add_addendum(signed, specialist, password, django_capture_on_commit_callbacks)
    note = Notification.objects.get(user=patient_user, kind="addendum")
    assert "4 mm" not in note.body and "haematoma" not in note.body
    [email] = emails_to(patient_user)
    assert "update to your report" in email.subject
    assert_no_clinical_content(email)
    assert "4 mm" not in email.body


def test_the_patients_email_settings_are_respected(
    accepted, specialist, patient_user, password, django_capture_on_commit_callbacks
):
    NotificationPreference.objects.create(user=patient_user, kind="report_signed", email=False)
    mail.outbox.clear()
    sign(accepted, specialist, password, django_capture_on_commit_callbacks)
    note = Notification.objects.get(user=patient_user, kind="report_signed")
    assert note.url.startswith("/portal/studies/")
    assert emails_to(patient_user) == []


def test_a_patients_email_settings_page_lists_what_a_patient_is_told(client, patient_user, specialist):
    client.force_login(patient_user)
    page = client.get(reverse("consultations:email-settings")).content.decode()
    assert "Report signed" in page and "Answer to your question" in page
    assert "New consult offered" not in page
    response = client.post(reverse("consultations:email-settings"), {"report_signed": "on"})
    assert response.status_code == 302
    prefs = dict(NotificationPreference.objects.filter(user=patient_user).values_list("kind", "email"))
    assert prefs == {"report_signed": True, "addendum": False, "question_answered": False}
    client.force_login(specialist)
    assert "Answer to your question" not in client.get(reverse("consultations:email-settings")).content.decode()


# -- the release delay ----------------------------------------------------------------------------


def test_with_a_delay_the_patient_waits_and_is_told_at_release_once(
    delayed,
    accepted,
    study,
    specialist,
    physician,
    patient_user,
    password,
    auth_client,
    django_capture_on_commit_callbacks,
):
    mail.outbox.clear()
    report = sign(accepted, specialist, password, django_capture_on_commit_callbacks)
    assert report.release_at == report.signed_at + timedelta(minutes=60)
    # The referring physician reads it now, and is told when the patient will.
    assert FINDINGS in signed_in(physician).get(reverse("consultations:detail", args=[accepted.pk])).content.decode()
    told = Notification.objects.get(user=physician, kind="report_signed")
    assert "The patient can read it from" in told.body
    # The patient: told nothing, reads nothing, anywhere; the portal says when.
    assert not Notification.objects.filter(user=patient_user).exists() and emails_to(patient_user) == []
    page = portal_page(patient_user, study).content.decode()
    assert "Your report is being reviewed by your doctor and will be available after" in page
    assert FINDINGS not in page and SUMMARY not in page
    home = signed_in(patient_user).get(reverse("portal:home")).content.decode()
    assert "being reviewed by your doctor" in home
    as_patient = signed_in(patient_user)
    assert as_patient.get(reverse("portal:report-pdf", args=[accepted.pk])).status_code == 404
    assert as_patient.get(reverse("consultations:report-pdf", args=[accepted.pk])).status_code == 404
    detail = as_patient.get(reverse("consultations:detail", args=[accepted.pk])).content.decode()
    assert FINDINGS not in detail and "being reviewed by your doctor" in detail
    api = auth_client(patient_user)
    assert api.get(f"{API}/{accepted.pk}/report/").status_code == 404
    assert api.get(f"{API}/{accepted.pk}/report/pdf/").status_code == 404
    assert api.get(f"{API}/{accepted.pk}/report/versions/").json() == []
    assert study_pdf_instances(study) == 0  # the PDF is filed in the study at release
    # Not due yet: the beat task leaves it alone.
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.release_reports() == 0
    # Its time comes: released once, however often the beat task runs.
    Report.objects.filter(pk=report.pk).update(release_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.release_reports() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.release_reports() == 0
    assert Notification.objects.filter(user=patient_user, kind="report_signed").count() == 1
    [email] = emails_to(patient_user)
    assert_no_clinical_content(email)
    assert FINDINGS in portal_page(patient_user, study).content.decode()
    assert as_patient.get(reverse("portal:report-pdf", args=[accepted.pk])).status_code == 200
    assert api.get(f"{API}/{accepted.pk}/report/").json()["findings"] == FINDINGS
    assert study_pdf_instances(study) == 1


def test_with_a_delay_an_addendum_waits_while_the_first_version_stays_readable(
    signed, delayed, study, specialist, patient_user, password, auth_client, django_capture_on_commit_callbacks
):
    add_addendum(signed, specialist, password, django_capture_on_commit_callbacks)
    page = portal_page(patient_user, study).content.decode()
    assert IMPRESSION in page and "Subdural haematoma of 4 mm." not in page
    assert "An update to your report is being reviewed by your doctor" in page
    versions = auth_client(patient_user).get(f"{API}/{signed.pk}/report/versions/").json()
    assert [v["version"] for v in versions] == [1]
    detail = signed_in(patient_user).get(reverse("consultations:detail", args=[signed.pk])).content.decode()
    assert "4 mm, not 6 mm" not in detail  # the addendum's reason, on its timeline entry


def test_the_release_is_a_beat_task_every_minute():
    assert django_settings.CELERY_BEAT_SCHEDULE["release-reports"] == {
        "task": "consultations.tasks.release_reports",
        "schedule": 60.0,
    }


# -- questions and answers ------------------------------------------------------------------------


def ask(user, consult, text):
    return signed_in(user).post(reverse("portal:ask-question", args=[consult.pk]), {"text": text})


def answer(user, consult, question, text):
    url = reverse("consultations:answer-patient-question", args=[consult.pk, question.pk])
    return signed_in(user).post(url, {"text": text})


def test_the_patient_asks_from_the_portal_and_the_care_team_sees_it_in_the_chat(
    signed, study, patient_user, physician, specialist, django_capture_on_commit_callbacks
):
    assert (
        'action="' + reverse("portal:ask-question", args=[signed.pk])
        in portal_page(patient_user, study).content.decode()
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = ask(patient_user, signed, "  Does this need an operation?  ")
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:study", args=[study.study_instance_uid]) + "#questions"
    question = PatientQuestion.objects.get()
    assert (question.text, question.asked_by) == ("Does this need an operation?", patient_user)
    message = question.message
    assert message.author == patient_user and message.text.startswith(questions.QUESTION_MARK)
    assert room.history(signed)[-1]["author"]["role"] == "patient"
    # The care team away from the room is told as for any chat message.
    for user in (physician, specialist):
        note = Notification.objects.get(user=user, kind="message")
        assert "operation" in note.body
    page = portal_page(patient_user, study).content.decode()
    assert "Does this need an operation?" in page and "Waiting for an answer" in page
    panel = signed_in(specialist).get(reverse("consultations:detail", args=[signed.pk])).content.decode()
    assert "Questions from the patient" in panel and "Does this need an operation?" in panel
    assert "visible to the patient" in panel


def test_the_answer_comes_back_to_the_portal_with_a_notification_but_team_talk_does_not(
    signed, study, patient_user, specialist, django_capture_on_commit_callbacks
):
    actions.post_message(signed, author=specialist, text="TEAM-ONLY: call the neurosurgeons first.")
    with django_capture_on_commit_callbacks(execute=True):
        ask(patient_user, signed, "Does this need an operation?")
    question = PatientQuestion.objects.get()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = answer(specialist, signed, question, "No operation: we will repeat the scan in 6 weeks.")
    assert response.status_code == 302 and response["Location"].endswith("#patient-questions")
    question.refresh_from_db()
    assert question.answered_by == specialist
    assert question.answer_message.text.startswith(questions.ANSWER_MARK)
    note = Notification.objects.get(user=patient_user, kind="question_answered")
    assert note.url == reverse("portal:study", args=[study.study_instance_uid]) + "#questions"
    [email] = emails_to(patient_user)
    assert "answered your question" in email.subject
    assert_no_clinical_content(email)
    assert "operation" not in email.body and "scan" not in email.body
    page = portal_page(patient_user, study).content.decode()
    assert "No operation: we will repeat the scan in 6 weeks." in page and "TEAM-ONLY" not in page
    # A second answer to the same question is refused, and says why.
    url = reverse("consultations:answer-patient-question", args=[signed.pk, question.pk])
    again = signed_in(specialist).post(url, {"text": "Also this."}, follow=True)
    assert "Dr Specialist answered this question already." in again.content.decode()
    assert PatientQuestion.objects.get().answer.startswith("No operation")


def test_bad_questions_are_refused_with_the_reason_and_the_text_kept(signed, study, patient_user):
    empty = ask(patient_user, signed, "   ")
    assert empty.status_code == 400 and "the text is empty" in empty.content.decode()
    long_text = "Why? " * 401  # 2,005 characters, 2,004 once stripped
    too_long = ask(patient_user, signed, long_text)
    page = too_long.content.decode()
    assert too_long.status_code == 400 and "2004 characters long; the limit is 2,000" in page
    assert long_text.strip()[:200] in page  # what they wrote is still in the box
    assert not PatientQuestion.objects.exists()


def test_the_question_api_for_the_patient_and_the_care_team(signed, patient_user, specialist, auth_client):
    as_patient, as_specialist = auth_client(patient_user), auth_client(specialist)
    url = f"{API}/{signed.pk}/questions/"
    assert as_patient.get(url).json() == []
    for body, expected in (({}, "plain words"), ({"text": 5}, "plain words"), ({"text": ""}, "empty")):
        refused = as_patient.post(url, body, format="json")
        assert refused.status_code == 400 and expected in refused.json()["text"][0], body
        assert refused.json()["code"] == "bad_question"
    assert as_patient.post(url, {"text": "x" * 2001}, format="json").status_code == 400
    created = as_patient.post(url, {"text": "Can I drive?"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["text"] == "Can I drive?" and body["answered"] is False and body["answer"] == ""
    # The care team cannot ask here, and the patient cannot answer.
    assert as_specialist.post(url, {"text": "Hm"}, format="json").status_code == 403
    answer_url = f"{API}/{signed.pk}/questions/{body['id']}/answer/"
    assert as_patient.post(answer_url, {"text": "Yes"}, format="json").status_code == 403
    assert as_specialist.post(answer_url, {"text": ""}, format="json").status_code == 400
    assert as_specialist.post(f"{API}/{signed.pk}/questions/999999/answer/", {"text": "Yes"}).status_code == 404
    answered = as_specialist.post(answer_url, {"text": "Yes, from tomorrow."}, format="json")
    assert answered.status_code == 200 and answered.json()["answer"] == "Yes, from tomorrow."
    assert answered.json()["answered_by"]["name"] == specialist.display_name
    assert as_specialist.post(answer_url, {"text": "Again"}, format="json").status_code == 409
    assert [q["answer"] for q in as_patient.get(url).json()] == ["Yes, from tomorrow."]
    assert len(as_specialist.get(url).json()) == 1


def test_no_question_before_the_report_is_released_to_the_patient(
    delayed, accepted, study, specialist, patient_user, password, auth_client, django_capture_on_commit_callbacks
):
    sign(accepted, specialist, password, django_capture_on_commit_callbacks)
    refused = auth_client(patient_user).post(f"{API}/{accepted.pk}/questions/", {"text": "Hello?"}, format="json")
    assert refused.status_code == 409 and "once it is available" in refused.json()["detail"]
    assert reverse("portal:ask-question", args=[accepted.pk]) not in portal_page(patient_user, study).content.decode()


def test_a_patient_may_have_a_few_questions_waiting_at_once(signed, patient_user, auth_client):
    api = auth_client(patient_user)
    for number in range(questions.MAX_OPEN):
        assert api.post(f"{API}/{signed.pk}/questions/", {"text": f"Q{number}"}, format="json").status_code == 201
    refused = api.post(f"{API}/{signed.pk}/questions/", {"text": "One more"}, format="json")
    assert refused.status_code == 409 and "waiting for an answer" in refused.json()["detail"]


def test_outsiders_get_404_on_every_question_route(
    signed, patient_user, other_patient, outsider, auth_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        ask(patient_user, signed, "Is it serious?")
    question = PatientQuestion.objects.get()
    make_study(patient_account=other_patient)
    for stranger in (other_patient, outsider):
        client, api = signed_in(stranger), auth_client(stranger)
        assert client.post(reverse("portal:ask-question", args=[signed.pk]), {"text": "Hi"}).status_code == 404
        assert client.get(reverse("consultations:patient-questions", args=[signed.pk])).status_code == 404
        url = reverse("consultations:answer-patient-question", args=[signed.pk, question.pk])
        assert client.post(url, {"text": "Hi"}).status_code == 404
        assert api.get(f"{API}/{signed.pk}/questions/").status_code == 404
        assert api.post(f"{API}/{signed.pk}/questions/", {"text": "Hi"}, format="json").status_code == 404
        answer_url = f"{API}/{signed.pk}/questions/{question.pk}/answer/"
        assert api.post(answer_url, {"text": "Hi"}, format="json").status_code == 404
    assert PatientQuestion.objects.count() == 1 and not PatientQuestion.objects.get().is_answered
    assert ChatMessage.objects.filter(author__in=[other_patient, outsider]).count() == 0
    # The patient sees no panel route of the care team's either.
    patient = signed_in(patient_user)
    assert patient.get(reverse("consultations:patient-questions", args=[signed.pk])).status_code == 404

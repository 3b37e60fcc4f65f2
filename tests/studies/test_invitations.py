"""Linking patients' portal accounts: by email from the API or the patient page, at once for an
existing patient account, on email confirmation for a new one; admins merge patient records."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client
from django.urls import reverse

from studies.models import Patient, PatientInvitation, PatientMerge, Study
from tests.factories import UserFactory, make_study

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-unusual-passphrase-42"


@pytest.fixture
def study(physician):
    return make_study(uploader=physician)


@pytest.fixture
def patient(study) -> Patient:
    return study.patient


def invite(api, patient, email):
    return api.post(f"/api/v1/patients/{patient.pk}/invite/", {"email": email}, format="json")


def test_existing_patient_account_is_linked_at_once_and_told(auth_client, physician, patient, patient_user):
    answer = invite(auth_client(physician), patient, "Patient@Example.com")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["status"] == "linked"
    patient.refresh_from_db()
    assert patient.account == patient_user
    assert [m.to for m in mail.outbox] == [["patient@example.com"]]
    assert "/portal/" in mail.outbox[0].body
    assert (
        auth_client(patient_user).get(f"/api/v1/studies/{patient.studies.get().study_instance_uid}/").status_code == 200
    )


def test_new_person_is_invited_and_linked_when_they_confirm_their_email(auth_client, physician, patient):
    answer = invite(auth_client(physician), patient, "new.person@example.com")
    assert answer.status_code == 201
    assert answer.json()["status"] == "invited"
    assert PatientInvitation.objects.filter(patient=patient, email="new.person@example.com").exists()
    invitation_mail = mail.outbox[-1]
    signup = next(u for u in re.findall(r"https?://\S+", invitation_mail.body) if "/accounts/signup/" in u)

    browser = Client()
    assert browser.get(signup).status_code == 200
    response = browser.post(
        "/accounts/signup/",
        {
            "email": "new.person@example.com",
            "name": "New Person",
            "role": "patient",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.account is None  # not before the address is confirmed
    confirm = next(
        u for m in mail.outbox for u in re.findall(r"https?://\S+", m.body) if "/accounts/confirm-email/" in u
    )
    path = confirm.replace("http://testserver", "")
    assert browser.post(path).status_code == 302
    patient.refresh_from_db()
    assert patient.account is not None and patient.account.email == "new.person@example.com"
    assert PatientInvitation.objects.get().accepted_at is not None


def test_unconfirmed_existing_account_is_linked_only_after_confirmation(auth_client, physician, patient):
    from allauth.account.signals import email_confirmed

    person = UserFactory(role="patient", email="unconfirmed@example.com")
    EmailAddress.objects.filter(user=person).update(verified=False)
    answer = invite(auth_client(physician), patient, person.email)
    assert answer.status_code == 201
    patient.refresh_from_db()
    assert patient.account is None
    address = EmailAddress.objects.get_or_create(user=person, email=person.email)[0]
    email_confirmed.send(sender=EmailAddress, request=None, email_address=address)
    patient.refresh_from_db()
    assert patient.account == person


def test_one_person_may_be_linked_to_several_patient_records(auth_client, physician, patient_user):
    first = make_study(uploader=physician).patient
    second = make_study(uploader=physician).patient
    for record in (first, second):
        assert invite(auth_client(physician), record, patient_user.email).status_code == 200
    assert set(patient_user.patient_records.all()) == {first, second}
    assert Study.objects.visible_to(patient_user).count() == 2


@pytest.mark.parametrize("email", ["", "not-an-email", None])
def test_bad_email_is_a_400_naming_the_field(auth_client, physician, patient, email):
    answer = invite(auth_client(physician), patient, email)
    assert answer.status_code == 400
    assert "email" in answer.json()


def test_clinician_address_cannot_be_linked(auth_client, physician, colleague, patient):
    answer = invite(auth_client(physician), patient, colleague.email)
    assert answer.status_code == 400
    assert "clinician" in answer.json()["detail"]


def test_record_already_linked_to_someone_else_is_a_409(auth_client, physician, patient, patient_user):
    other = UserFactory(role="patient", email="other.patient@example.com")
    Patient.objects.filter(pk=patient.pk).update(account=other)
    answer = invite(auth_client(physician), patient, patient_user.email)
    assert answer.status_code == 409


def test_outsider_gets_404_and_patients_cannot_invite(auth_client, outsider, patient, patient_user):
    assert invite(auth_client(outsider), patient, "x@example.com").status_code == 404
    Patient.objects.filter(pk=patient.pk).update(account=patient_user)
    assert invite(auth_client(patient_user), patient, "x@example.com").status_code == 403
    assert not PatientInvitation.objects.exists()


def test_patient_page_form_links_and_says_so(client, physician, patient, patient_user):
    client.force_login(physician)
    page = client.get(reverse("studies:patient", args=[patient.pk]))
    assert reverse("studies:invite-patient", args=[patient.pk]).encode() in page.content
    response = client.post(
        reverse("studies:invite-patient", args=[patient.pk]), {"email": patient_user.email}, follow=True
    )
    assert b"Linked to the existing patient account" in response.content
    response = client.post(reverse("studies:invite-patient", args=[patient.pk]), {"email": "nope"}, follow=True)
    assert b"Enter a valid email address" in response.content


def test_admin_merges_patient_records_and_keeps_a_note(client, admin_user, physician, patient_user):
    kept = make_study(uploader=physician).patient
    dropped_study = make_study(uploader=physician, patient_account=patient_user)
    dropped = dropped_study.patient
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:studies_patient_changelist"),
        {"action": "merge_patients", "_selected_action": [kept.pk, dropped.pk]},
    )
    assert response.status_code == 302
    assert not Patient.objects.filter(pk=dropped.pk).exists()
    dropped_study.refresh_from_db()
    assert dropped_study.patient == kept
    kept.refresh_from_db()
    assert kept.account == patient_user
    note = PatientMerge.objects.get()
    assert note.into == kept and note.merged_pk == dropped.pk and note.merged_by == admin_user
    assert note.studies_moved == [dropped_study.study_instance_uid]

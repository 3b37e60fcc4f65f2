"""Linking patients' portal accounts: by email from the API or the patient page, at once for an
existing patient account, on email confirmation for a new one; admins merge patient records."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from studies.models import Patient, PatientInvitation, PatientMerge, Study
from tests.factories import UserFactory, make_study

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-unusual-passphrase-42"


@pytest.fixture(autouse=True)
def fresh_cache():
    """allauth rate-limits confirmation emails per address in the cache: start each test clean."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def study(physician):
    return make_study(uploader=physician)


@pytest.fixture
def patient(study) -> Patient:
    return study.patient


def invite(api, patient, email):
    return api.post(f"/api/v1/patients/{patient.pk}/invite/", {"email": email}, format="json")


def links_in(message, part: str) -> list[str]:
    return [u for u in re.findall(r"https?://\S+", message.body) if part in u]


def sign_up_and_confirm(email: str) -> None:
    """What the invited person does: sign up from the invitation's link, then confirm the address."""
    invitation_mail = [m for m in mail.outbox if m.to == [email] and links_in(m, "/accounts/signup/")][-1]
    browser = Client()
    assert browser.get(links_in(invitation_mail, "/accounts/signup/")[0]).status_code == 200
    response = browser.post(
        "/accounts/signup/",
        {"email": email, "name": "New Person", "role": "patient", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    confirm = [u for m in mail.outbox if m.to == [email] for u in links_in(m, "/accounts/confirm-email/")][-1]
    assert browser.post(confirm.replace("http://testserver", "")).status_code == 302
    assert EmailAddress.objects.get(email=email).verified


def age(invitation: PatientInvitation, **delta) -> None:
    """Make ``invitation`` as old as ``delta`` says, as if it had been sent that long ago."""
    PatientInvitation.objects.filter(pk=invitation.pk).update(created_at=timezone.now() - timedelta(**delta))
    invitation.refresh_from_db()


def spelled(moment) -> str:
    moment = timezone.localtime(moment)
    return f"{moment.day} {moment:%B %Y, %H:%M}"


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


@pytest.mark.parametrize(
    "email",
    ["", "not-an-email", None, "a" * 64 + "@" + ".".join(["b" * 60] * 4) + ".com"],  # the last: 313 characters
)
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
    too_long = "a" * 64 + "@" + ".".join(["b" * 60] * 4) + ".com"
    response = client.post(reverse("studies:invite-patient", args=[patient.pk]), {"email": too_long}, follow=True)
    assert response.status_code == 200
    assert not PatientInvitation.objects.filter(email=too_long).exists()


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


def test_invitation_email_and_answer_say_until_when_it_is_valid(auth_client, physician, patient, settings):
    settings.TELECONSULT_INVITATION_DAYS = 14
    answer = invite(auth_client(physician), patient, "new.person@example.com")
    assert answer.status_code == 201
    invitation = PatientInvitation.objects.get()
    assert invitation.status == "pending"
    assert invitation.expires_at == invitation.created_at + timedelta(days=14)
    assert answer.json()["status"] == "invited"
    assert parse_datetime(answer.json()["expires_at"]) == invitation.expires_at
    assert f"valid until {spelled(invitation.expires_at)}" in answer.json()["detail"]
    assert f"valid until {spelled(invitation.expires_at)}" in mail.outbox[-1].body


def test_expired_invitation_does_not_link_on_confirmation(auth_client, physician, patient, settings):
    settings.TELECONSULT_INVITATION_DAYS = 14
    invite(auth_client(physician), patient, "new.person@example.com")
    invitation = PatientInvitation.objects.get()
    age(invitation, days=14, seconds=1)
    assert invitation.status == "expired"

    sign_up_and_confirm("new.person@example.com")

    patient.refresh_from_db()
    assert patient.account is None
    invitation.refresh_from_db()
    assert invitation.accepted_at is None and invitation.accepted_by is None
    assert invitation.status == "expired"


def test_invitation_still_links_on_its_last_day(auth_client, physician, patient, settings):
    settings.TELECONSULT_INVITATION_DAYS = 14
    invite(auth_client(physician), patient, "new.person@example.com")
    invitation = PatientInvitation.objects.get()
    age(invitation, days=13, hours=23)

    sign_up_and_confirm("new.person@example.com")

    patient.refresh_from_db()
    assert patient.account is not None and patient.account.email == "new.person@example.com"
    invitation.refresh_from_db()
    assert invitation.status == "accepted" and invitation.accepted_by == patient.account


def test_lifetime_follows_the_setting(auth_client, physician, patient, settings):
    settings.TELECONSULT_INVITATION_DAYS = 2
    invite(auth_client(physician), patient, "new.person@example.com")
    invitation = PatientInvitation.objects.get()
    age(invitation, days=2, seconds=1)

    sign_up_and_confirm("new.person@example.com")

    patient.refresh_from_db()
    assert patient.account is None
    settings.TELECONSULT_INVITATION_DAYS = 3
    assert invitation.status == "pending"


def test_expired_invitation_of_an_existing_unconfirmed_account_does_not_link(auth_client, physician, patient):
    from allauth.account.signals import email_confirmed

    person = UserFactory(role="patient", email="unconfirmed@example.com")
    EmailAddress.objects.filter(user=person).update(verified=False)
    assert invite(auth_client(physician), patient, person.email).status_code == 201
    age(PatientInvitation.objects.get(), days=30)
    address = EmailAddress.objects.get(user=person, email=person.email)
    email_confirmed.send(sender=EmailAddress, request=None, email_address=address)
    patient.refresh_from_db()
    assert patient.account is None


def test_an_expired_or_accepted_invitation_cannot_be_accepted(physician, patient, patient_user):
    expired = PatientInvitation.objects.create(patient=patient, email=patient_user.email, invited_by=physician)
    age(expired, days=15)
    with pytest.raises(ValueError, match="expired"):
        expired.accept(by=patient_user)
    assert PatientInvitation.pending().count() == 0

    pending = PatientInvitation.objects.create(patient=patient, email=patient_user.email, invited_by=physician)
    assert list(PatientInvitation.pending()) == [pending]
    pending.accept(by=patient_user)
    with pytest.raises(ValueError, match="accepted"):
        pending.accept(by=patient_user)
    expired.refresh_from_db()
    assert expired.accepted_at is None


def test_inviting_again_after_expiry_sends_a_fresh_invitation_that_links(auth_client, physician, patient):
    api = auth_client(physician)
    invite(api, patient, "new.person@example.com")
    old = PatientInvitation.objects.get()
    age(old, days=20)

    answer = invite(api, patient, "New.Person@example.com")

    assert answer.status_code == 201
    assert answer.json()["status"] == "invited"
    fresh = PatientInvitation.objects.exclude(pk=old.pk).get()
    assert fresh.status == "pending" and fresh.expires_at > timezone.now() + timedelta(days=13)
    assert (
        f"Invitation sent to new.person@example.com; it is valid until {spelled(fresh.expires_at)}"
        in (answer.json()["detail"])
    )
    assert len(mail.outbox) == 2
    assert f"valid until {spelled(fresh.expires_at)}" in mail.outbox[-1].body

    sign_up_and_confirm("new.person@example.com")

    patient.refresh_from_db()
    assert patient.account is not None and patient.account.email == "new.person@example.com"
    fresh.refresh_from_db()
    old.refresh_from_db()
    assert (fresh.status, old.status) == ("accepted", "expired")


def test_inviting_again_while_pending_resends_the_same_invitation(auth_client, physician, colleague, patient):
    invite(auth_client(physician), patient, "new.person@example.com")
    invitation = PatientInvitation.objects.get()
    age(invitation, days=3)

    answer = invite(auth_client(physician), patient, "new.person@example.com")

    assert answer.status_code == 201
    assert PatientInvitation.objects.get() == invitation  # not duplicated, expiry unchanged
    assert (
        f"Invitation sent again to new.person@example.com; it is valid until {spelled(invitation.expires_at)}"
        in (answer.json()["detail"])
    )
    assert [m.to for m in mail.outbox] == [["new.person@example.com"]] * 2
    assert f"valid until {spelled(invitation.expires_at)}" in mail.outbox[-1].body


def test_same_address_invited_to_another_record_gets_its_own_invitation(auth_client, physician, patient):
    other = make_study(uploader=physician).patient
    invite(auth_client(physician), patient, "new.person@example.com")
    invite(auth_client(physician), other, "new.person@example.com")
    assert PatientInvitation.objects.filter(email="new.person@example.com").count() == 2

    sign_up_and_confirm("new.person@example.com")

    account = get_user_model().objects.get(email="new.person@example.com")
    assert set(account.patient_records.all()) == {patient, other}


def test_patient_page_shows_each_invitation_state_with_its_dates(client, physician, patient, settings):
    settings.TELECONSULT_INVITATION_DAYS = 14
    expired = PatientInvitation.objects.create(patient=patient, email="old@example.com", invited_by=physician)
    age(expired, days=20)
    accepted = PatientInvitation.objects.create(
        patient=patient, email="done@example.com", invited_by=physician, accepted_at=timezone.now()
    )
    pending = PatientInvitation.objects.create(patient=patient, email="new@example.com", invited_by=physician)
    client.force_login(physician)

    page = client.get(reverse("studies:patient", args=[patient.pk])).content.decode()

    def entry(invitation) -> str:
        return re.search(rf'<li data-invitation="{invitation.pk}".*?</li>', page, re.S).group(0)

    assert 'data-invitation-status="expired"' in entry(expired)
    assert f"expired {expired.expires_at:%-d %b %Y, %H:%M}" in entry(expired)
    assert 'data-invitation-status="accepted"' in entry(accepted)
    assert f"accepted {accepted.accepted_at:%-d %b %Y}" in entry(accepted)
    assert 'data-invitation-status="pending"' in entry(pending)
    assert f"valid until {pending.expires_at:%-d %b %Y, %H:%M}" in entry(pending)


def test_patient_page_form_says_when_the_invitation_expires(client, physician, patient):
    client.force_login(physician)
    response = client.post(
        reverse("studies:invite-patient", args=[patient.pk]), {"email": "new.person@example.com"}, follow=True
    )
    invitation = PatientInvitation.objects.get()
    assert f"Invitation sent to new.person@example.com; it is valid until {spelled(invitation.expires_at)}" in (
        response.content.decode()
    )
    assert 'data-invitation-status="pending"' in response.content.decode()


def test_patients_and_outsiders_do_not_see_invitations(client, outsider, patient, patient_user, physician):
    PatientInvitation.objects.create(patient=patient, email="someone@example.com", invited_by=physician)
    client.force_login(outsider)
    assert client.get(reverse("studies:patient", args=[patient.pk])).status_code == 404
    Patient.objects.filter(pk=patient.pk).update(account=patient_user)
    client.force_login(patient_user)
    page = client.get(reverse("studies:patient", args=[patient.pk]))
    assert page.status_code == 200
    assert b"someone@example.com" not in page.content


@pytest.mark.parametrize("value", ["0", "-3", "3651", "two weeks"])
def test_unusable_invitation_days_setting_refuses_to_start(tmp_path, value):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "teleconsult.settings",
        "DEBUG": "1",
        "TELECONSULT_DATA_DIR": str(tmp_path),
        "TELECONSULT_INVITATION_DAYS": value,
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "TELECONSULT_INVITATION_DAYS" in result.stderr

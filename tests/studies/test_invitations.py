"""Linking a patient's portal account to a practice's patient record, only with the patient's consent.

A member of the record's practice asks for an email address (API or patient page). The answer is the
same whoever owns the address; the email differs. Nothing is linked until a patient account that
confirmed the address accepts in the portal ("My records" or the API); they may decline instead.
Either side may unlink. Requests expire after TELECONSULT_INVITATION_DAYS. Every request, answer and
unlink is in the access history. Administrators merge patient records.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from studies.models import AccessEvent, Patient, PatientInvitation, PatientMerge, Study
from studies.permissions import grant_access
from tests.factories import UserFactory, make_study, practice_of
from tests.studies.test_dicomweb_helpers import token_client

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-unusual-passphrase-42"
NEW_ADDRESS = "new.person@example.com"
SUBJECT = "A request to link your images on teleconsult"


@pytest.fixture(autouse=True)
def fresh_cache():
    """allauth rate-limits confirmation emails per address in the cache: start each test clean."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def study(physician) -> Study:
    return make_study(uploader=physician)


@pytest.fixture
def patient(study) -> Patient:
    Patient.objects.filter(pk=study.patient_id).update(birth_date=dt.date(1980, 5, 17))
    study.patient.refresh_from_db()
    return study.patient


@pytest.fixture
def practice(physician):
    return practice_of(physician)


@pytest.fixture
def after_commit(django_capture_on_commit_callbacks):
    """Run what the code under test leaves for after the commit (the request emails are sent then):
    ``with after_commit(): ...``."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def ask(auth_client, after_commit):
    """``ask(user, patient, email)``: the API's request to link, as ``user``, its emails sent."""

    def post(user, record, email):
        with after_commit():
            return auth_client(user).post(f"/api/v1/patients/{record.pk}/invite/", {"email": email}, format="json")

    return post


@pytest.fixture
def answer(auth_client):
    """``answer(user, invitation, "accept" | "decline")`` over the API."""

    def post(user, invitation, word):
        return auth_client(user).post(f"/api/v1/link-requests/{invitation.pk}/{word}/")

    return post


def mails_to(email: str) -> list:
    return [m for m in mail.outbox if m.to == [email]]


def links_in(message, part: str) -> list[str]:
    return [u for u in re.findall(r"https?://\S+", message.body) if part in u]


def age(invitation: PatientInvitation, **delta) -> None:
    """Make ``invitation`` as old as ``delta`` says, as if it had been sent that long ago."""
    PatientInvitation.objects.filter(pk=invitation.pk).update(created_at=timezone.now() - timedelta(**delta))
    invitation.refresh_from_db()


def spelled(moment) -> str:
    """How emails and answers spell a moment (the portal's one time format): 7 Jan 2026, 09:05."""
    moment = timezone.localtime(moment)
    return f"{moment.day} {moment:%b %Y, %H:%M}"


def short(moment) -> str:
    """How the patient page spells a moment: 7 Jan 2026, 09:05."""
    moment = timezone.localtime(moment)
    return f"{moment.day} {moment:%b %Y, %H:%M}"


def api_study_uids(user) -> set[str]:
    answer = token_client(user).get("/api/v1/studies/")
    assert answer.status_code == 200, answer.content
    return {row["study_instance_uid"] for row in answer.json()["results"]}


def qido_study_uids(user) -> set[str]:
    answer = token_client(user).get("/dicomweb/studies")
    if answer.status_code == 204:
        return set()
    assert answer.status_code == 200, answer.content
    return {row["0020000D"]["Value"][0] for row in answer.json()}


def sees(user, study: Study) -> bool:
    """Whether ``user`` finds ``study`` over the API and over DICOMweb (both must agree)."""
    over_api = study.study_instance_uid in api_study_uids(user)
    over_dicomweb = study.study_instance_uid in qido_study_uids(user)
    assert over_api == over_dicomweb
    return over_api


def pending_requests(auth_client, user) -> list[dict]:
    answer = auth_client(user).get("/api/v1/link-requests/")
    assert answer.status_code == 200
    return answer.json()


def events(record: Patient, action: str) -> list[AccessEvent]:
    return list(AccessEvent.objects.filter(patient=record, action=action).order_by("at", "pk"))


def linked(record: Patient):
    record.refresh_from_db()
    return record.account


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def words(response) -> str:
    """The page's text as read: without tags, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- The request: one answer for every address, an email that fits the address ---------------------


def test_request_answers_the_same_201_for_a_patient_a_clinician_and_an_unknown_address(
    ask, physician, colleague, patient, patient_user
):
    addresses = [patient_user.email, colleague.email, NEW_ADDRESS]
    with time_machine.travel(timezone.now(), tick=False):
        answers = [ask(physician, patient, address) for address in addresses]

    assert [a.status_code for a in answers] == [201, 201, 201]
    bodies = [a.json() for a in answers]
    for body, address in zip(bodies, addresses, strict=True):
        assert set(body) == {"status", "detail", "expires_at"}
        assert body["status"] == "requested"
        assert address in body["detail"]
    anonymised = [
        {**body, "detail": body["detail"].replace(address, "<email>")}
        for body, address in zip(bodies, addresses, strict=True)
    ]
    assert anonymised[0] == anonymised[1] == anonymised[2]
    assert "linked only if its owner accepts" in bodies[0]["detail"]
    assert linked(patient) is None
    assert sorted(PatientInvitation.objects.filter(patient=patient).values_list("email", flat=True)) == sorted(
        addresses
    )
    assert [e.object_id for e in events(patient, "link_requested")] == addresses
    assert {e.user for e in events(patient, "link_requested")} == {physician}


def test_existing_patient_account_is_emailed_a_link_to_my_records(ask, physician, patient, patient_user):
    assert ask(physician, patient, patient_user.email).status_code == 201

    (message,) = mail.outbox
    assert message.to == [patient_user.email]
    assert message.subject.endswith(SUBJECT)
    assert "Hello Pat Patient" in message.body
    assert f"Dr Owner of {patient.practice.name} asks to link your teleconsult account" in message.body
    assert "Nothing is linked until you accept" in message.body
    assert links_in(message, "/portal/records/") == ["http://testserver/portal/records/"]
    assert not links_in(message, "/accounts/signup/")
    invitation = PatientInvitation.objects.get()
    assert f"valid until {spelled(invitation.expires_at)}" in message.body


def test_clinician_address_is_emailed_that_clinicians_cannot_be_linked(
    ask, auth_client, client, physician, colleague, patient
):
    assert ask(physician, patient, colleague.email).status_code == 201

    (message,) = mail.outbox
    assert message.to == [colleague.email]
    assert "belongs to a clinician's account, which cannot be linked to patient records" in message.body
    assert not links_in(message, "/portal/records/")
    assert not links_in(message, "/accounts/signup/")
    # and the clinician has nothing to accept
    assert pending_requests(auth_client, colleague) == []
    invitation = PatientInvitation.objects.get()
    assert auth_client(colleague).post(f"/api/v1/link-requests/{invitation.pk}/accept/").status_code == 404
    client.force_login(colleague)
    assert client.get(reverse("studies:link-requests")).status_code == 404
    assert client.post(reverse("studies:answer-link-request", args=[invitation.pk, "accept"])).status_code == 404
    assert linked(patient) is None


def test_unknown_address_is_emailed_a_sign_up_link(ask, physician, patient):
    assert ask(physician, patient, NEW_ADDRESS).status_code == 201

    (message,) = mail.outbox
    assert message.to == [NEW_ADDRESS]
    assert f"Dr Owner of {patient.practice.name} invites you" in message.body
    assert links_in(message, "/accounts/signup/") == [
        "http://testserver/accounts/signup/?email=new.person%40example.com"
    ]
    assert not links_in(message, "/portal/records/")
    invitation = PatientInvitation.objects.get()
    assert f"This invitation is valid until {spelled(invitation.expires_at)}" in message.body


def test_the_address_is_kept_and_mailed_in_lower_case(ask, auth_client, physician, patient, patient_user):
    assert ask(physician, patient, "  Patient@Example.COM ").status_code == 201
    assert PatientInvitation.objects.get().email == "patient@example.com"
    assert [m.to for m in mail.outbox] == [["patient@example.com"]]
    assert len(pending_requests(auth_client, patient_user)) == 1


@pytest.mark.parametrize(
    "email",
    ["", "not-an-email", None, "a" * 64 + "@" + ".".join(["b" * 60] * 4) + ".com"],  # the last: 313 characters
)
def test_bad_email_is_a_400_naming_the_field(ask, physician, patient, email):
    answer = ask(physician, patient, email)
    assert answer.status_code == 400
    assert "email" in answer.json()
    assert not PatientInvitation.objects.exists()
    assert mail.outbox == []


# --- Who may ask ------------------------------------------------------------------------------------


def test_physician_of_another_practice_who_sees_the_study_through_a_grant_gets_403(
    ask, auth_client, client, physician, outsider, study, patient
):
    grant_access(user=outsider, study=study, reason="shared", granted_by=physician)
    assert auth_client(outsider).get(f"/api/v1/patients/{patient.pk}/").status_code == 200  # they see the record

    answer = ask(outsider, patient, NEW_ADDRESS)

    assert answer.status_code == 403
    assert "practice" in answer.json()["detail"]
    assert not PatientInvitation.objects.exists()
    assert mail.outbox == []
    assert not AccessEvent.objects.filter(action="link_requested").exists()
    # the patient page offers them no form, and posting it anyway asks nothing
    client.force_login(outsider)
    page = client.get(reverse("studies:patient", args=[patient.pk]))
    assert page.status_code == 200
    assert reverse("studies:invite-patient", args=[patient.pk]).encode() not in page.content
    response = client.post(reverse("studies:invite-patient", args=[patient.pk]), {"email": NEW_ADDRESS}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("studies:patient", args=[patient.pk])
    assert page_messages(response) == ["Only members of the record's practice ask patients to link their accounts."]
    assert not PatientInvitation.objects.exists()


def test_outsider_gets_404_and_patients_cannot_invite(ask, outsider, patient, patient_user):
    assert ask(outsider, patient, "x@example.com").status_code == 404
    Patient.objects.filter(pk=patient.pk).update(account=patient_user)
    assert ask(patient_user, patient, "x@example.com").status_code == 403
    assert not PatientInvitation.objects.exists()
    assert mail.outbox == []


def test_other_members_of_the_practice_and_administrators_may_ask(ask, practice, admin_user, patient):
    member = UserFactory(role="physician", email="member@example.com", practice=practice)
    assert ask(member, patient, "first@example.com").status_code == 201
    assert ask(admin_user, patient, "second@example.com").status_code == 201
    assert set(PatientInvitation.objects.values_list("invited_by__email", flat=True)) == {
        "member@example.com",
        "admin@example.com",
    }


def test_a_linked_record_is_a_409_until_it_is_unlinked(ask, auth_client, physician, patient, patient_user):
    other = UserFactory(role="patient", email="other.patient@example.com")
    Patient.objects.filter(pk=patient.pk).update(account=other)

    answer = ask(physician, patient, patient_user.email)

    assert answer.status_code == 409
    assert answer.json()["code"] == "conflict"
    assert "already linked" in answer.json()["detail"] and "unlink it first" in answer.json()["detail"]
    assert not PatientInvitation.objects.exists()
    assert mail.outbox == []

    assert auth_client(physician).delete(f"/api/v1/patients/{patient.pk}/link/").status_code == 204
    assert ask(physician, patient, patient_user.email).status_code == 201


# --- The patient's answer -----------------------------------------------------------------------------


def test_nothing_is_linked_before_the_patient_accepts(
    ask, auth_client, client, physician, study, patient, patient_user
):
    assert ask(physician, patient, patient_user.email).status_code == 201

    assert linked(patient) is None
    assert not sees(patient_user, study)
    assert auth_client(patient_user).get(f"/api/v1/studies/{study.study_instance_uid}/").status_code == 404
    assert token_client(patient_user).get(f"/dicomweb/studies/{study.study_instance_uid}/metadata").status_code == 404
    client.force_login(patient_user)
    assert client.get(reverse("studies:patient", args=[patient.pk])).status_code == 404
    assert PatientInvitation.objects.get().status == "pending"


def test_patient_sees_the_pending_request_with_who_asks_for_which_record(
    ask, auth_client, physician, patient, patient_user
):
    ask(physician, patient, patient_user.email)
    invitation = PatientInvitation.objects.get()

    (request,) = pending_requests(auth_client, patient_user)

    assert request["id"] == invitation.pk
    assert request["practice"] == patient.practice.name
    assert request["patient_name"] == "Doe Jane"
    assert request["birth_date"] == "1980-05-17"
    assert request["asked_by"] == "Dr Owner"
    assert parse_datetime(request["created_at"]) == invitation.created_at
    assert parse_datetime(request["expires_at"]) == invitation.expires_at


def test_accepting_over_the_api_links_the_account_and_the_patient_then_sees_the_study(
    ask, answer, auth_client, physician, study, patient, patient_user
):
    ask(physician, patient, patient_user.email)
    invitation = PatientInvitation.objects.get()

    response = answer(patient_user, invitation, "accept")

    assert response.status_code == 200
    assert response.json() == {"status": "linked"}
    assert linked(patient) == patient_user
    invitation.refresh_from_db()
    assert invitation.status == "accepted"
    assert invitation.accepted_by == patient_user and invitation.accepted_at is not None
    assert sees(patient_user, study)
    assert auth_client(patient_user).get(f"/api/v1/studies/{study.study_instance_uid}/").status_code == 200
    assert pending_requests(auth_client, patient_user) == []
    (requested,) = events(patient, "link_requested")
    assert (requested.user, requested.object_id) == (physician, patient_user.email)
    (accepted,) = events(patient, "link_accepted")
    assert (accepted.user, accepted.actor, accepted.object_id) == (patient_user, patient_user.email, patient_user.email)
    assert accepted.study is None and accepted.study_uid == ""


def test_declining_leaves_the_record_unlinked(ask, answer, auth_client, physician, study, patient, patient_user):
    ask(physician, patient, patient_user.email)
    invitation = PatientInvitation.objects.get()

    response = answer(patient_user, invitation, "decline")

    assert response.status_code == 200
    assert response.json() == {"status": "declined"}
    assert linked(patient) is None
    invitation.refresh_from_db()
    assert invitation.status == "declined"
    assert invitation.declined_at is not None and invitation.accepted_at is None
    assert not sees(patient_user, study)
    assert pending_requests(auth_client, patient_user) == []
    (declined,) = events(patient, "link_declined")
    assert declined.user == patient_user
    assert not events(patient, "link_accepted")


@pytest.mark.parametrize("first", ["accept", "decline"])
def test_an_answered_request_cannot_be_answered_again(ask, answer, physician, patient, patient_user, first):
    ask(physician, patient, patient_user.email)
    invitation = PatientInvitation.objects.get()
    assert answer(patient_user, invitation, first).status_code == 200

    assert answer(patient_user, invitation, "accept").status_code == 404
    assert answer(patient_user, invitation, "decline").status_code == 404

    invitation.refresh_from_db()
    assert invitation.status == ("accepted" if first == "accept" else "declined")
    assert len(events(patient, "link_accepted")) + len(events(patient, "link_declined")) == 1


def test_an_answer_other_than_accept_or_decline_is_a_404(ask, answer, client, physician, patient, patient_user):
    ask(physician, patient, patient_user.email)
    invitation = PatientInvitation.objects.get()
    assert answer(patient_user, invitation, "maybe").status_code == 404
    client.force_login(patient_user)
    assert client.post(reverse("studies:answer-link-request", args=[invitation.pk, "maybe"])).status_code == 404
    assert client.get(reverse("studies:answer-link-request", args=[invitation.pk, "accept"])).status_code == 405
    assert invitation.status == "pending"
    assert linked(patient) is None


def test_patient_whose_confirmed_address_differs_cannot_see_or_answer_the_request(
    ask, answer, auth_client, client, physician, study, patient, patient_user
):
    ask(physician, patient, patient_user.email)
    invitation = PatientInvitation.objects.get()
    someone_else = UserFactory(role="patient", email="someone.else@example.com")

    assert pending_requests(auth_client, someone_else) == []
    assert answer(someone_else, invitation, "accept").status_code == 404
    assert answer(someone_else, invitation, "decline").status_code == 404
    client.force_login(someone_else)
    page = client.get(reverse("studies:link-requests"))
    assert page.status_code == 200
    assert "No requests waiting." in page_text(page)
    assert f'data-link-request="{invitation.pk}"' not in page_text(page)
    for word in ("accept", "decline"):
        assert client.post(reverse("studies:answer-link-request", args=[invitation.pk, word])).status_code == 404

    assert linked(patient) is None
    assert not sees(someone_else, study)
    invitation.refresh_from_db()
    assert invitation.status == "pending"
    assert not events(patient, "link_accepted") and not events(patient, "link_declined")


def test_the_inviting_clinician_cannot_accept_on_the_patients_behalf(ask, answer, auth_client, physician, patient):
    ask(physician, patient, physician.email)
    invitation = PatientInvitation.objects.get()
    assert pending_requests(auth_client, physician) == []
    assert answer(physician, invitation, "accept").status_code == 404
    assert linked(patient) is None


def test_unconfirmed_address_sees_the_request_only_once_confirmed(ask, answer, auth_client, physician, patient):
    person = UserFactory(role="patient", email="unconfirmed@example.com")
    EmailAddress.objects.filter(user=person).update(verified=False)
    ask(physician, patient, person.email)
    invitation = PatientInvitation.objects.get()

    assert pending_requests(auth_client, person) == []
    assert answer(person, invitation, "accept").status_code == 404
    assert linked(patient) is None

    EmailAddress.objects.filter(user=person).update(verified=True)

    assert [r["id"] for r in pending_requests(auth_client, person)] == [invitation.pk]
    assert linked(patient) is None  # confirming links nothing by itself
    assert answer(person, invitation, "accept").status_code == 200
    assert linked(patient) == person


def test_a_confirmed_secondary_address_of_the_patient_receives_the_request(
    ask, answer, auth_client, physician, patient, patient_user
):
    EmailAddress.objects.create(user=patient_user, email="pat.second@example.com", verified=True, primary=False)
    ask(physician, patient, "pat.second@example.com")
    invitation = PatientInvitation.objects.get()

    assert [r["id"] for r in pending_requests(auth_client, patient_user)] == [invitation.pk]
    assert answer(patient_user, invitation, "accept").status_code == 200
    assert linked(patient) == patient_user


def test_new_person_signs_up_confirms_then_accepts_and_confirming_alone_links_nothing(ask, physician, study, patient):
    ask(physician, patient, NEW_ADDRESS)
    (invitation_mail,) = mails_to(NEW_ADDRESS)
    browser = Client()
    assert browser.get(links_in(invitation_mail, "/accounts/signup/")[0]).status_code == 200
    response = browser.post(
        "/accounts/signup/",
        {"email": NEW_ADDRESS, "name": "New Person", "role": "patient", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    account = get_user_model().objects.get(email=NEW_ADDRESS)
    assert not EmailAddress.objects.get(user=account).verified
    browser.force_login(account)
    assert "No requests waiting." in page_text(browser.get(reverse("studies:link-requests")))

    confirm = [u for m in mails_to(NEW_ADDRESS) for u in links_in(m, "/accounts/confirm-email/")][-1]
    assert browser.post(confirm.replace("http://testserver", "")).status_code == 302
    assert EmailAddress.objects.get(user=account).verified

    assert linked(patient) is None  # the confirmation links nothing by itself
    invitation = PatientInvitation.objects.get()
    assert invitation.status == "pending"
    browser.force_login(account)
    page = browser.get(reverse("studies:link-requests"))
    assert f'data-link-request="{invitation.pk}"' in page_text(page)
    response = browser.post(reverse("studies:answer-link-request", args=[invitation.pk, "accept"]))
    assert response.status_code == 302
    assert linked(patient) == account
    assert sees(account, study)


def test_accepting_after_the_record_was_linked_to_another_account_is_a_409(
    ask, answer, auth_client, physician, patient, patient_user
):
    other = UserFactory(role="patient", email="other.patient@example.com")
    ask(physician, patient, patient_user.email)
    ask(physician, patient, other.email)
    mine = PatientInvitation.objects.get(email=patient_user.email)
    theirs = PatientInvitation.objects.get(email=other.email)
    assert answer(other, theirs, "accept").status_code == 200

    response = answer(patient_user, mine, "accept")

    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert "linked to another account" in response.json()["detail"]
    assert linked(patient) == other
    mine.refresh_from_db()
    assert mine.status == "pending"
    assert [e.user for e in events(patient, "link_accepted")] == [other]


def test_one_person_may_link_several_records_and_answers_each_request_separately(
    ask, answer, auth_client, physician, patient_user
):
    first, second, third = (make_study(uploader=physician).patient for _ in range(3))
    for record in (first, second, third):
        assert ask(physician, record, patient_user.email).status_code == 201
    assert PatientInvitation.objects.filter(email=patient_user.email).count() == 3
    requests = {r["id"] for r in pending_requests(auth_client, patient_user)}
    assert requests == set(PatientInvitation.objects.values_list("pk", flat=True))

    for record, word in ((first, "accept"), (second, "accept"), (third, "decline")):
        assert answer(patient_user, record.invitations.get(), word).status_code == 200

    assert set(patient_user.patient_records.all()) == {first, second}
    assert set(Study.objects.visible_to(patient_user)) == set(Study.objects.filter(patient__in=[first, second]))
    assert linked(third) is None


# --- Expiry -------------------------------------------------------------------------------------------


def test_request_email_and_answer_say_until_when_it_is_valid(ask, physician, patient, settings):
    settings.TELECONSULT_INVITATION_DAYS = 14
    answer = ask(physician, patient, NEW_ADDRESS)
    assert answer.status_code == 201
    invitation = PatientInvitation.objects.get()
    assert invitation.status == "pending"
    assert invitation.expires_at == invitation.created_at + timedelta(days=14)
    assert parse_datetime(answer.json()["expires_at"]) == invitation.expires_at
    assert answer.json()["detail"] == (
        f"Request sent to {NEW_ADDRESS}, valid until {spelled(invitation.expires_at)} UTC. "
        "The record is linked only if its owner accepts."
    )
    assert f"valid until {spelled(invitation.expires_at)}" in mail.outbox[-1].body


def test_expired_request_cannot_be_seen_accepted_or_declined(
    ask, answer, auth_client, client, physician, study, patient, patient_user, settings
):
    settings.TELECONSULT_INVITATION_DAYS = 14
    ask(physician, patient, patient_user.email)
    invitation = PatientInvitation.objects.get()
    age(invitation, days=14, seconds=1)
    assert invitation.status == "expired"

    assert pending_requests(auth_client, patient_user) == []
    assert answer(patient_user, invitation, "accept").status_code == 404
    assert answer(patient_user, invitation, "decline").status_code == 404
    client.force_login(patient_user)
    assert "No requests waiting." in page_text(client.get(reverse("studies:link-requests")))
    assert client.post(reverse("studies:answer-link-request", args=[invitation.pk, "accept"])).status_code == 404

    assert linked(patient) is None
    assert not sees(patient_user, study)
    invitation.refresh_from_db()
    assert invitation.accepted_at is None and invitation.declined_at is None
    assert invitation.status == "expired"


def test_request_may_still_be_accepted_on_its_last_day(ask, answer, physician, patient, patient_user, settings):
    settings.TELECONSULT_INVITATION_DAYS = 14
    ask(physician, patient, patient_user.email)
    invitation = PatientInvitation.objects.get()
    age(invitation, days=13, hours=23)

    assert answer(patient_user, invitation, "accept").status_code == 200

    assert linked(patient) == patient_user
    invitation.refresh_from_db()
    assert invitation.status == "accepted" and invitation.accepted_by == patient_user


def test_lifetime_follows_the_setting(ask, auth_client, physician, patient, patient_user, settings):
    settings.TELECONSULT_INVITATION_DAYS = 2
    ask(physician, patient, patient_user.email)
    invitation = PatientInvitation.objects.get()
    age(invitation, days=2, seconds=1)
    assert invitation.status == "expired"
    assert pending_requests(auth_client, patient_user) == []

    settings.TELECONSULT_INVITATION_DAYS = 3

    assert invitation.status == "pending"
    assert invitation.expires_at == invitation.created_at + timedelta(days=3)
    assert [r["id"] for r in pending_requests(auth_client, patient_user)] == [invitation.pk]


def test_an_expired_or_answered_invitation_cannot_be_accepted_or_declined(physician, patient, patient_user):
    expired = PatientInvitation.objects.create(patient=patient, email=patient_user.email, invited_by=physician)
    age(expired, days=15)
    with pytest.raises(ValueError, match="expired"):
        expired.accept(by=patient_user)
    with pytest.raises(ValueError, match="expired"):
        expired.decline()
    assert PatientInvitation.pending().count() == 0

    pending = PatientInvitation.objects.create(patient=patient, email=patient_user.email, invited_by=physician)
    assert list(PatientInvitation.pending()) == [pending]
    pending.accept(by=patient_user)
    with pytest.raises(ValueError, match="accepted"):
        pending.accept(by=patient_user)
    with pytest.raises(ValueError, match="accepted"):
        pending.decline()

    refused = PatientInvitation.objects.create(patient=patient, email=patient_user.email, invited_by=physician)
    refused.decline()
    with pytest.raises(ValueError, match="declined"):
        refused.accept(by=patient_user)
    assert PatientInvitation.pending().count() == 0
    expired.refresh_from_db()
    assert expired.accepted_at is None and expired.declined_at is None


def test_asking_again_while_pending_resends_the_same_request(ask, physician, patient):
    ask(physician, patient, NEW_ADDRESS)
    invitation = PatientInvitation.objects.get()
    age(invitation, days=3)

    answer = ask(physician, patient, "New.Person@example.com")

    assert answer.status_code == 201
    assert PatientInvitation.objects.get() == invitation  # not duplicated, expiry unchanged
    assert parse_datetime(answer.json()["expires_at"]) == invitation.expires_at
    assert (
        f"Request sent again to {NEW_ADDRESS}, valid until {spelled(invitation.expires_at)}"
        in (answer.json()["detail"])
    )
    assert [m.to for m in mail.outbox] == [[NEW_ADDRESS]] * 2
    assert f"valid until {spelled(invitation.expires_at)}" in mail.outbox[-1].body
    assert len(events(patient, "link_requested")) == 2


def test_asking_again_after_expiry_sends_a_fresh_request_that_may_be_accepted(
    ask, answer, physician, patient, patient_user
):
    ask(physician, patient, patient_user.email)
    old = PatientInvitation.objects.get()
    age(old, days=20)

    response = ask(physician, patient, patient_user.email)

    assert response.status_code == 201
    fresh = PatientInvitation.objects.exclude(pk=old.pk).get()
    assert fresh.status == "pending" and fresh.expires_at > timezone.now() + timedelta(days=13)
    assert parse_datetime(response.json()["expires_at"]) == fresh.expires_at
    assert f"Request sent to {patient_user.email}, valid until {spelled(fresh.expires_at)}" in response.json()["detail"]
    assert len(mail.outbox) == 2
    assert f"valid until {spelled(fresh.expires_at)}" in mail.outbox[-1].body

    assert answer(patient_user, old, "accept").status_code == 404
    assert answer(patient_user, fresh, "accept").status_code == 200

    assert linked(patient) == patient_user
    fresh.refresh_from_db()
    old.refresh_from_db()
    assert (fresh.status, old.status) == ("accepted", "expired")


def test_asking_again_after_a_decline_sends_a_fresh_request(ask, answer, physician, patient, patient_user):
    ask(physician, patient, patient_user.email)
    declined = PatientInvitation.objects.get()
    assert answer(patient_user, declined, "decline").status_code == 200

    assert ask(physician, patient, patient_user.email).status_code == 201

    fresh = PatientInvitation.objects.exclude(pk=declined.pk).get()
    assert fresh.status == "pending"
    declined.refresh_from_db()
    assert declined.status == "declined"


# --- Unlinking ----------------------------------------------------------------------------------------


@pytest.fixture
def linked_record(ask, answer, physician, patient, patient_user) -> Patient:
    """``patient``, linked to ``patient_user`` through the consent flow."""
    ask(physician, patient, patient_user.email)
    assert answer(patient_user, PatientInvitation.objects.get(), "accept").status_code == 200
    assert linked(patient) == patient_user
    return patient


def test_linked_patient_unlinks_from_my_records_page(client, linked_record, study, patient_user):
    client.force_login(patient_user)
    page = client.get(reverse("studies:link-requests"))
    assert f'data-linked-record="{linked_record.pk}"' in page_text(page)
    assert reverse("studies:unlink-patient", args=[linked_record.pk]) in page_text(page)

    response = client.post(reverse("studies:unlink-patient", args=[linked_record.pk]))

    assert response.status_code == 302
    assert response["Location"] == reverse("studies:link-requests")
    followed = client.get(response["Location"])
    assert page_messages(followed) == [
        f"Your account is no longer linked to the record kept by {linked_record.practice.name}."
    ]
    assert f'data-linked-record="{linked_record.pk}"' not in page_text(followed)
    assert linked(linked_record) is None
    assert not sees(patient_user, study)
    (unlinked,) = events(linked_record, "unlinked")
    assert (unlinked.user, unlinked.object_id) == (patient_user, str(patient_user.pk))


def test_linked_patient_unlinks_over_the_api(auth_client, linked_record, study, patient_user):
    assert auth_client(patient_user).delete(f"/api/v1/patients/{linked_record.pk}/link/").status_code == 204
    assert linked(linked_record) is None
    assert not sees(patient_user, study)
    (unlinked,) = events(linked_record, "unlinked")
    assert unlinked.user == patient_user
    # the record is no longer theirs: a second attempt is a 404
    assert auth_client(patient_user).delete(f"/api/v1/patients/{linked_record.pk}/link/").status_code == 404


def test_practice_member_unlinks_from_the_patient_page(client, linked_record, physician, patient_user):
    client.force_login(physician)
    page = client.get(reverse("studies:patient", args=[linked_record.pk]))
    assert "This record is linked to the portal account patient@example.com ." in words(page)
    assert reverse("studies:unlink-patient", args=[linked_record.pk]) in page_text(page)

    response = client.post(reverse("studies:unlink-patient", args=[linked_record.pk]), follow=True)

    assert response.redirect_chain == [(reverse("studies:patient", args=[linked_record.pk]), 302)]
    assert page_messages(response) == ["The record is no longer linked to a portal account."]
    assert "data-linked-to" not in page_text(response)
    assert reverse("studies:invite-patient", args=[linked_record.pk]) in page_text(response)
    assert linked(linked_record) is None
    (unlinked,) = events(linked_record, "unlinked")
    assert (unlinked.user, unlinked.object_id) == (physician, str(patient_user.pk))


def test_practice_member_unlinks_over_the_api(auth_client, linked_record, physician, study, patient_user):
    assert auth_client(physician).delete(f"/api/v1/patients/{linked_record.pk}/link/").status_code == 204
    assert linked(linked_record) is None
    assert not sees(patient_user, study)
    assert [e.user for e in events(linked_record, "unlinked")] == [physician]


def test_unlinking_a_record_that_is_not_linked_records_nothing(auth_client, physician, patient):
    assert auth_client(physician).delete(f"/api/v1/patients/{patient.pk}/link/").status_code == 204
    assert not events(patient, "unlinked")


def test_other_patients_and_other_practices_cannot_unlink(
    auth_client, client, linked_record, physician, outsider, study, patient_user
):
    someone_else = UserFactory(role="patient", email="someone.else@example.com")
    grant_access(user=outsider, study=study, reason="shared", granted_by=physician)
    stranger = UserFactory(role="physician", email="stranger@example.com")
    for user in (someone_else, outsider, stranger):
        assert auth_client(user).delete(f"/api/v1/patients/{linked_record.pk}/link/").status_code == 404
        client.force_login(user)
        assert client.post(reverse("studies:unlink-patient", args=[linked_record.pk])).status_code == 404
    assert linked(linked_record) == patient_user
    assert not events(linked_record, "unlinked")


# --- The consent flow in the browser ------------------------------------------------------------------


def test_consent_flow_in_the_browser_ask_then_accept(after_commit, client, physician, study, patient, patient_user):
    client.force_login(physician)
    page = client.get(reverse("studies:patient", args=[patient.pk]))
    assert reverse("studies:invite-patient", args=[patient.pk]) in page_text(page)
    with after_commit():
        response = client.post(
            reverse("studies:invite-patient", args=[patient.pk]), {"email": patient_user.email}, follow=True
        )
    invitation = PatientInvitation.objects.get()
    assert page_messages(response) == [
        f"Request sent to {patient_user.email}, valid until {spelled(invitation.expires_at)} UTC. "
        "The record is linked only if its owner accepts."
    ]
    assert f'data-invitation="{invitation.pk}" data-invitation-status="pending"' in page_text(response)
    assert linked(patient) is None
    assert [m.to for m in mail.outbox] == [[patient_user.email]]

    browser = Client()
    browser.force_login(patient_user)
    page = browser.get(links_in(mail.outbox[0], "/portal/records/")[0])
    assert page.status_code == 200
    text = page_text(page)
    assert f'data-link-request="{invitation.pk}"' in text
    assert f"{patient.practice.name} asks to link its record Doe Jane , born 17 May 1980." in words(page)
    assert "Asked by Dr Owner on" in words(page)
    accept = reverse("studies:answer-link-request", args=[invitation.pk, "accept"])
    assert f'action="{accept}"' in text
    assert "None yet." in text  # no linked record yet

    response = browser.post(accept)

    assert response.status_code == 302 and response["Location"] == reverse("studies:link-requests")
    followed = browser.get(response["Location"])
    assert page_messages(followed) == [
        f"Linked: the images and reports {patient.practice.name} keeps for you now show here."
    ]
    assert "No requests waiting." in page_text(followed)
    assert f'data-linked-record="{patient.pk}"' in page_text(followed)
    assert linked(patient) == patient_user
    assert sees(patient_user, study)
    assert browser.get(reverse("studies:patient", args=[patient.pk])).status_code == 200
    assert [e.action for e in AccessEvent.objects.filter(patient=patient).order_by("at", "pk")] == [
        "link_requested",
        "link_accepted",
    ]

    physician_page = client.get(reverse("studies:patient", args=[patient.pk]))
    assert "This record is linked to the portal account patient@example.com ." in words(physician_page)
    physician_page = page_text(physician_page)
    assert f'data-invitation="{invitation.pk}" data-invitation-status="accepted"' in physician_page


def test_consent_flow_in_the_browser_decline(ask, client, physician, study, patient, patient_user):
    ask(physician, patient, patient_user.email)
    invitation = PatientInvitation.objects.get()
    client.force_login(patient_user)

    response = client.post(reverse("studies:answer-link-request", args=[invitation.pk, "decline"]), follow=True)

    assert response.redirect_chain == [(reverse("studies:link-requests"), 302)]
    assert page_messages(response) == [f"Declined: nothing from {patient.practice.name} is linked to your account."]
    assert "No requests waiting." in page_text(response)
    assert "None yet." in page_text(response)
    assert linked(patient) is None
    assert not sees(patient_user, study)
    assert [e.action for e in AccessEvent.objects.filter(patient=patient).order_by("at", "pk")] == [
        "link_requested",
        "link_declined",
    ]
    client.force_login(physician)
    page = page_text(client.get(reverse("studies:patient", args=[patient.pk])))
    assert f'data-invitation="{invitation.pk}" data-invitation-status="declined"' in page


def test_accept_conflict_in_the_browser_says_so(ask, answer, client, physician, patient, patient_user):
    other = UserFactory(role="patient", email="other.patient@example.com")
    ask(physician, patient, patient_user.email)
    ask(physician, patient, other.email)
    assert answer(other, PatientInvitation.objects.get(email=other.email), "accept").status_code == 200
    mine = PatientInvitation.objects.get(email=patient_user.email)
    client.force_login(patient_user)

    response = client.post(reverse("studies:answer-link-request", args=[mine.pk, "accept"]), follow=True)

    assert response.redirect_chain == [(reverse("studies:link-requests"), 302)]
    assert page_messages(response) == ["This record was linked to another account meanwhile."]
    assert linked(patient) == other


def test_my_records_page_is_for_signed_in_patients(client, physician):
    page = client.get(reverse("studies:link-requests"))
    assert page.status_code == 302 and "/accounts/login/" in page["Location"]
    client.force_login(physician)
    assert client.get(reverse("studies:link-requests")).status_code == 404


def test_patient_page_form_refuses_bad_addresses(client, physician, patient):
    client.force_login(physician)
    response = client.post(reverse("studies:invite-patient", args=[patient.pk]), {"email": "nope"}, follow=True)
    assert "Enter a valid email address" in page_text(response)
    too_long = "a" * 64 + "@" + ".".join(["b" * 60] * 4) + ".com"
    response = client.post(reverse("studies:invite-patient", args=[patient.pk]), {"email": too_long}, follow=True)
    assert response.status_code == 200
    assert not PatientInvitation.objects.exists()


def test_patient_page_form_says_the_record_is_already_linked(client, physician, patient, patient_user):
    Patient.objects.filter(pk=patient.pk).update(account=patient_user)
    client.force_login(physician)
    response = client.post(reverse("studies:invite-patient", args=[patient.pk]), {"email": NEW_ADDRESS}, follow=True)
    assert page_messages(response) == ["This record is already linked to a portal account: unlink it first."]
    assert not PatientInvitation.objects.exists()


def test_patient_page_shows_each_invitation_state_with_its_dates(client, physician, patient, settings):
    settings.TELECONSULT_INVITATION_DAYS = 14
    expired = PatientInvitation.objects.create(patient=patient, email="old@example.com", invited_by=physician)
    age(expired, days=20)
    accepted = PatientInvitation.objects.create(
        patient=patient, email="done@example.com", invited_by=physician, accepted_at=timezone.now()
    )
    declined = PatientInvitation.objects.create(
        patient=patient, email="no@example.com", invited_by=physician, declined_at=timezone.now()
    )
    pending = PatientInvitation.objects.create(patient=patient, email="new@example.com", invited_by=physician)
    client.force_login(physician)

    page = page_text(client.get(reverse("studies:patient", args=[patient.pk])))

    def entry(invitation) -> str:
        return re.search(rf'<li data-invitation="{invitation.pk}".*?</li>', page, re.S).group(0)

    def words(invitation) -> str:
        return re.sub(r"<[^>]+>", "", entry(invitation))

    assert 'data-invitation-status="expired"' in entry(expired)
    assert f"expired {short(expired.expires_at)} UTC" in words(expired)
    assert 'data-invitation-status="accepted"' in entry(accepted)
    assert f"accepted {short(accepted.accepted_at)} UTC" in words(accepted)
    assert 'data-invitation-status="declined"' in entry(declined)
    assert f"declined {short(declined.declined_at)} UTC" in words(declined)
    assert 'data-invitation-status="pending"' in entry(pending)
    assert f"valid until {short(pending.expires_at)} UTC" in words(pending)


def test_patients_and_outsiders_do_not_see_invitations(client, outsider, patient, patient_user, physician):
    PatientInvitation.objects.create(patient=patient, email="someone@example.com", invited_by=physician)
    client.force_login(outsider)
    assert client.get(reverse("studies:patient", args=[patient.pk])).status_code == 404
    Patient.objects.filter(pk=patient.pk).update(account=patient_user)
    client.force_login(patient_user)
    page = client.get(reverse("studies:patient", args=[patient.pk]))
    assert page.status_code == 200
    assert b"someone@example.com" not in page.content
    assert b"data-invitations" not in page.content


def test_grantee_of_another_practice_does_not_see_invitations(client, outsider, physician, study, patient):
    PatientInvitation.objects.create(patient=patient, email="someone@example.com", invited_by=physician)
    grant_access(user=outsider, study=study, reason="shared", granted_by=physician)
    client.force_login(outsider)
    page = client.get(reverse("studies:patient", args=[patient.pk]))
    assert page.status_code == 200
    assert b"someone@example.com" not in page.content


# --- Administrators merge records ---------------------------------------------------------------------


def test_admin_merges_patient_records_and_keeps_a_note(ask, answer, client, admin_user, physician, patient_user):
    kept = make_study(uploader=physician).patient
    dropped_study = make_study(uploader=physician)
    dropped = dropped_study.patient
    ask(physician, dropped, patient_user.email)  # linked through the consent flow, with its access events
    assert answer(patient_user, dropped.invitations.get(), "accept").status_code == 200
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:studies_patient_changelist"),
        {"action": "merge_patients", "_selected_action": [kept.pk, dropped.pk]},
    )

    assert response.status_code == 302
    assert not Patient.objects.filter(pk=dropped.pk).exists()
    dropped_study.refresh_from_db()
    assert dropped_study.patient == kept
    assert linked(kept) == patient_user
    assert kept.invitations.get().status == "accepted"
    note = PatientMerge.objects.get()
    assert note.into == kept and note.merged_pk == dropped.pk and note.merged_by == admin_user
    assert note.studies_moved == [dropped_study.study_instance_uid]
    assert AccessEvent.objects.filter(action__in=["link_requested", "link_accepted"]).count() == 2


# --- Configuration ------------------------------------------------------------------------------------


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


def test_the_patient_is_warned_when_the_records_name_is_not_their_accounts(client, physician, patient, patient_user):
    from studies import invitations

    invitations.invite(patient, email=patient_user.email, by=physician)
    client.force_login(patient_user)
    page = client.get(reverse("studies:link-requests")).content.decode()
    differs = patient_user.name.lower().split()[0] not in patient.name.lower()
    assert ("data-name-differs" in page) == differs
    type(patient_user).objects.filter(pk=patient_user.pk).update(name="Jane Doe")
    patient.name = "Doe^Jane"
    patient.save(update_fields=["name"])
    assert "data-name-differs" not in client.get(reverse("studies:link-requests")).content.decode()
    type(patient_user).objects.filter(pk=patient_user.pk).update(name="Max Other")
    assert "data-name-differs" in client.get(reverse("studies:link-requests")).content.decode()

"""Inviting a colleague to a consult: the same answer for any address, joining only on acceptance
by a clinician's account that confirmed the address, declining, withdrawing, and expiry."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from allauth.account.models import EmailAddress
from django.core import mail
from django.utils import timezone

from consultations.models import ColleagueInvitation, Notification
from studies.permissions import can_view_study
from tests.factories import UserFactory

BASE = "/api/v1/consults/"


@pytest.fixture
def invite(auth_client, physician, django_capture_on_commit_callbacks):
    def send(consult, email):
        with django_capture_on_commit_callbacks(execute=True):
            return auth_client(physician).post(f"{BASE}{consult.pk}/participants/", {"email": email}, format="json")

    return send


def masked(body: dict, email: str) -> dict:
    return {**body, "detail": body["detail"].replace(email, "ADDRESS"), "invitation_id": 0}


def test_the_answer_is_the_same_for_a_clinician_a_patient_and_an_unknown_address(
    invite, accepted, colleague, patient_user
):
    with time_machine.travel(timezone.now(), tick=False):
        answers = {email: invite(accepted, email) for email in (colleague.email, patient_user.email, "x@nowhere.org")}
    assert {r.status_code for r in answers.values()} == {202}
    assert len({str(masked(r.data, email)) for email, r in answers.items()}) == 1
    bodies = {m.to[0]: m.body for m in mail.outbox}
    assert "Accept or decline here" in bodies[colleague.email]
    assert "Only clinicians with an account" in bodies[patient_user.email]
    assert "Only clinicians with an account" in bodies["x@nowhere.org"]
    assert not accepted.participants.exists()
    # The consult lists every address as invited alike.
    listed = set(ColleagueInvitation.pending().filter(consult=accepted).values_list("email", flat=True))
    assert listed == {colleague.email, patient_user.email, "x@nowhere.org"}
    assert Notification.objects.filter(user=colleague, kind="colleague_invited").count() == 1


def test_the_invited_colleague_joins_from_the_page_and_sees_the_study(client, invite, accepted, colleague):
    invitation_id = invite(accepted, colleague.email).data["invitation_id"]
    assert not can_view_study(colleague, accepted.study)
    client.force_login(colleague)
    mine = client.get("/consults/")
    assert f"/consults/invitations/{invitation_id}/" in mine.content.decode()
    page = client.get(f"/consults/invitations/{invitation_id}/")
    assert page.status_code == 200 and accepted.question in page.content.decode()
    assert accepted.study.patient.name.split("^")[0] not in page.content.decode()
    response = client.post(f"/consults/invitations/{invitation_id}/", {"answer": "accept"})
    assert response.status_code == 302 and response["Location"] == f"/consults/{accepted.pk}/"
    assert accepted.is_participant(colleague)
    assert can_view_study(colleague, accepted.study)
    assert ColleagueInvitation.objects.get(pk=invitation_id).status == "accepted"
    assert client.get(f"/consults/invitations/{invitation_id}/").status_code == 404


def test_declining_leaves_the_colleague_outside(auth_client, invite, accepted, colleague):
    invitation_id = invite(accepted, colleague.email).data["invitation_id"]
    r = auth_client(colleague).post(f"/api/v1/colleague-invitations/{invitation_id}/decline/")
    assert r.status_code == 200 and r.data == {"status": "declined"}
    assert not accepted.participants.exists()
    assert auth_client(colleague).post(f"/api/v1/colleague-invitations/{invitation_id}/accept/").status_code == 404


def test_only_the_account_that_confirmed_the_address_may_answer(auth_client, invite, accepted, colleague, outsider):
    invitation_id = invite(accepted, colleague.email).data["invitation_id"]
    assert auth_client(outsider).get("/api/v1/colleague-invitations/").data == []
    assert auth_client(outsider).post(f"/api/v1/colleague-invitations/{invitation_id}/accept/").status_code == 404
    EmailAddress.objects.filter(user=colleague).update(verified=False)
    assert auth_client(colleague).post(f"/api/v1/colleague-invitations/{invitation_id}/accept/").status_code == 404
    assert not accepted.participants.exists()


def test_a_clinician_no_practice_admitted_cannot_join(auth_client, invite, accepted):
    pending = UserFactory(role="physician", practice=False, email="pending@example.com")
    invitation_id = invite(accepted, pending.email).data["invitation_id"]
    assert "Only clinicians with an account" in mail.outbox[-1].body
    assert auth_client(pending).post(f"/api/v1/colleague-invitations/{invitation_id}/accept/").status_code == 404


def test_the_requester_withdraws_an_invitation(client, physician, invite, accepted, colleague, auth_client):
    invitation_id = invite(accepted, colleague.email).data["invitation_id"]
    client.force_login(physician)
    page = client.get(f"/consults/{accepted.pk}/").content.decode()
    assert f'data-colleague-invitation="{colleague.email}"' in page
    client.post(f"/consults/{accepted.pk}/invitations/{invitation_id}/withdraw/")
    assert ColleagueInvitation.objects.get(pk=invitation_id).status == "withdrawn"
    assert auth_client(colleague).post(f"/api/v1/colleague-invitations/{invitation_id}/accept/").status_code == 404


def test_an_expired_invitation_cannot_be_accepted(auth_client, invite, accepted, colleague, settings):
    invitation_id = invite(accepted, colleague.email).data["invitation_id"]
    later = timezone.now() + dt.timedelta(days=settings.TELECONSULT_INVITATION_DAYS, minutes=1)
    with time_machine.travel(later):
        assert auth_client(colleague).post(f"/api/v1/colleague-invitations/{invitation_id}/accept/").status_code == 404


def test_only_the_requester_invites_and_bad_input_is_named(auth_client, invite, accepted, specialist, outsider):
    url = f"{BASE}{accepted.pk}/participants/"
    assert auth_client(specialist).post(url, {"email": "a@b.org"}, format="json").status_code == 403
    assert auth_client(outsider).post(url, {"email": "a@b.org"}, format="json").status_code == 404
    assert "email" in invite(accepted, "not an address").data


def test_the_page_form_answers_the_same_for_any_address(client, physician, accepted, colleague):
    client.force_login(physician)
    for email in (colleague.email, "nobody@nowhere.org"):
        response = client.post(f"/consults/{accepted.pk}/participants/", {"email": email}, follow=True)
        messages = [str(m) for m in response.context["messages"]]
        assert messages == [f"Invitation sent to {email}. They join the consult once they accept."]


def test_a_refused_answer_is_shown_on_the_invitation_page(client, invite, accepted, colleague):
    invitation_id = invite(accepted, colleague.email).data["invitation_id"]
    client.force_login(colleague)
    response = client.post(f"/consults/invitations/{invitation_id}/", {"answer": "maybe"})
    assert response.status_code == 200
    assert "answer: accept or decline." in response.content.decode()
    assert not accepted.is_participant(colleague)

"""Linking a patient's portal account to a practice's patient record: only with the patient's consent.

A member of the record's practice asks for an email address. Whatever that address belongs to (a
patient account, a clinician's account, nobody yet) the answer is the same, so nobody learns who
has an account here; what applies goes to the address by email. The record is linked only when the
owner of the address, signed in to a patient account that confirmed it, accepts the request in the
portal, where it shows which practice, which record (name, birth date) and who asked. They may
decline instead. Either side may unlink later. Every request, acceptance, refusal and unlink is in
the access history.

A request may be answered while pending: it expires ``TELECONSULT_INVITATION_DAYS`` after it was
sent. Asking the same address again while one is pending sends that request again (same expiry).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.db import transaction
from django.http import Http404
from django.urls import reverse

from accounts.addresses import account_for_address
from accounts.outbox import send_after_commit
from accounts.timeformat import format_instant
from teleconsult.client_address import client_address
from teleconsult.errors import PortalError
from teleconsult.links import absolute_url

from . import audit
from .models import AccessEvent, Patient, PatientInvitation


class InviteError(PortalError):
    """A link request that cannot be sent or answered; the message says why."""


class InviteNotAllowedError(InviteError):
    """The user may see the record but may not ask for its link (not a member of its practice)."""

    status = 403
    code = "not_allowed"


class InviteConflictError(InviteError):
    """The record or the request changed meanwhile (already linked, answered, expired)."""

    status = 409
    code = "conflict"


@dataclass
class InviteOutcome:
    message: str
    invitation: PatientInvitation


def _absolute(request, path: str) -> str:
    return absolute_url(path, request)


def may_invite(user, patient: Patient) -> bool:
    """Members of the record's practice (and administrators) ask patients to link their accounts."""
    if not user or not user.is_authenticated or not user.is_active or user.is_patient:
        return False
    return user.is_admin or patient.practice_id in user.practice_ids()


def record_event(request, action: str, patient: Patient, *, user, obj: str = "") -> None:
    audit.append(
        AccessEvent(
            user=user,
            actor=user.email if user is not None else "",
            action=action,
            patient=patient,
            study_uid="",
            object_id=str(obj)[:128],
            ip=client_address(request) if request is not None else None,
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:400] if request is not None else "",
        )
    )


def invite(patient: Patient, *, email: str, by, request=None) -> InviteOutcome:
    """Ask ``email`` to link their portal account to ``patient``. The caller has checked that ``by``
    may see the record; only members of its practice may ask."""
    if not may_invite(by, patient):
        raise InviteNotAllowedError("Only members of the record's practice ask patients to link their accounts.")
    email = email.strip().lower()
    if patient.account_id is not None:
        raise InviteConflictError("This record is already linked to a portal account: unlink it first.")
    with transaction.atomic():
        # Lock the record so that two clicks at once send one request, not two.
        Patient.objects.select_for_update().filter(pk=patient.pk).first()
        invitation = PatientInvitation.pending().filter(patient=patient, email__iexact=email).first()
        again = invitation is not None
        if invitation is None:
            invitation = PatientInvitation.objects.create(patient=patient, email=email, invited_by=by)
        record_event(request, AccessEvent.Action.LINK_REQUESTED, patient, user=by, obj=email)
    _send_request_email(invitation, by=by, request=request)
    until = valid_until(invitation)
    sent = "sent again" if again else "sent"
    return InviteOutcome(
        message=f"Request {sent} to {email}, valid until {until}. The record is linked only if its owner accepts.",
        invitation=invitation,
    )


def _send_request_email(invitation: PatientInvitation, *, by, request) -> None:
    email = invitation.email
    practice = invitation.patient.practice.name
    account = account_for_address(email)
    until = valid_until(invitation)
    if account is not None and not account.is_patient:
        body = (
            f"Hello,\n\n{by.display_name} of {practice} asked to link this address to a patient's records on "
            "teleconsult. This address belongs to a clinician's account, which cannot be linked to patient "
            "records. If you are the patient, ask them to use another address; otherwise ignore this message.\n"
        )
    elif account is not None:
        body = (
            f"Hello {account.display_name},\n\n{by.display_name} of {practice} asks to link your teleconsult "
            "account to a patient record they keep. Nothing is linked until you accept. Sign in to see the "
            f"request and accept or decline it:\n{_absolute(request, reverse('studies:link-requests'))}\n\n"
            f"The request is valid until {until}.\n"
        )
    else:
        signup = f"{_absolute(request, reverse('account_signup'))}?{urlencode({'email': email})}"
        body = (
            f"Hello,\n\n{by.display_name} of {practice} invites you to see your medical images and reports "
            f"online. Create your account with this email address ({email}):\n{signup}\n\n"
            "Once you have confirmed the address, sign in: the request waits for you to accept it.\n"
            f"This invitation is valid until {until}. After that, ask your physician to invite you again.\n"
        )
    send_after_commit("A request to link your images on teleconsult", body, [email])


def valid_until(invitation: PatientInvitation) -> str:
    return format_instant(invitation.expires_at)


def requests_for(user):
    """Pending requests addressed to one of ``user``'s confirmed addresses (patients only)."""
    if not user or not user.is_authenticated or not user.is_patient:
        return PatientInvitation.objects.none()
    return PatientInvitation.pending_for(user).select_related("patient__practice", "invited_by").order_by("-created_at")


def _name_words(name: str) -> set[str]:
    return {word for word in name.replace("^", " ").replace(",", " ").lower().split() if word}


def name_differs(invitation: PatientInvitation, user) -> bool:
    """The record's name shares no word with the account's name (when the account has one): the
    patient is asked to look twice before accepting."""
    mine = _name_words(user.name or "")
    theirs = _name_words(invitation.patient.name)
    return bool(mine and theirs and not mine & theirs)


def get_request_for_user(user, pk) -> PatientInvitation:
    try:
        return requests_for(user).get(pk=int(pk))
    except (PatientInvitation.DoesNotExist, ValueError, TypeError):
        raise Http404("No such request.") from None


def accept(invitation: PatientInvitation, *, user, request=None) -> None:
    """The patient accepts: their account is linked to the record (if it is not linked to someone else)."""
    with transaction.atomic():
        patient = Patient.objects.select_for_update().get(pk=invitation.patient_id)
        if patient.account_id not in (None, user.pk):
            raise InviteConflictError("This record was linked to another account meanwhile.")
        locked = PatientInvitation.objects.select_for_update().get(pk=invitation.pk)
        try:
            locked.accept(by=user)
        except ValueError as exc:
            raise InviteConflictError(str(exc)) from None
        Patient.objects.filter(pk=patient.pk).update(account=user)
        record_event(request, AccessEvent.Action.LINK_ACCEPTED, patient, user=user, obj=invitation.email)


def decline(invitation: PatientInvitation, *, user, request=None) -> None:
    with transaction.atomic():
        locked = PatientInvitation.objects.select_for_update().get(pk=invitation.pk)
        try:
            locked.decline()
        except ValueError as exc:
            raise InviteConflictError(str(exc)) from None
        record_event(request, AccessEvent.Action.LINK_DECLINED, locked.patient, user=user, obj=invitation.email)


def unlink(patient: Patient, *, by, request=None) -> None:
    """The linked patient, a member of the record's practice or an administrator ends the link."""
    if not (by.pk == patient.account_id or may_invite(by, patient)):
        raise Http404("No such patient.")
    with transaction.atomic():
        account_id = patient.account_id
        if account_id is None:
            return
        Patient.objects.filter(pk=patient.pk, account_id=account_id).update(account=None)
        record_event(request, AccessEvent.Action.UNLINKED, patient, user=by, obj=str(account_id))
    patient.account_id = None


# What a patient may answer a request with.
ANSWERS = {"accept": accept, "decline": decline}

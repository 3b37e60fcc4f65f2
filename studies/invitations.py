"""Linking a patient's portal account to their Patient records.

A physician who may see the patient gives an email address. An existing patient account with
that address is linked at once and told by email; otherwise an invitation is kept and emailed,
and the account made with that address is linked when the address is confirmed (allauth's
``email_confirmed`` signal), because confirming proves the person owns it. One account may be
linked to several Patient records (different institutions); a record has one account.

An invitation links only while it is pending: it expires ``TELECONSULT_INVITATION_DAYS`` after it
was sent, so an old email, or an address that later changes hands, links nothing. Inviting the
same address to the same record again while an invitation is pending sends that invitation again
(same expiry); once it has expired, a new invitation with a new expiry is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import dateformat, timezone

from .models import Patient, PatientInvitation


class InviteError(Exception):
    def __init__(self, message: str, *, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


class InviteNotAllowedError(InviteError):
    pass


@dataclass
class InviteOutcome:
    linked: bool
    message: str
    invitation: PatientInvitation | None = None


def _absolute(request, path: str) -> str:
    return request.build_absolute_uri(path) if request is not None else path


def may_invite(user) -> bool:
    return user.is_physician or user.is_specialist or user.is_admin


def invite(patient: Patient, *, email: str, by, request=None) -> InviteOutcome:
    """The caller has checked that ``by`` may see ``patient``."""
    if not may_invite(by):
        raise InviteNotAllowedError("Only clinicians link patient accounts.")
    email = email.strip().lower()
    account = get_user_model().objects.filter(email__iexact=email).first()
    if account is not None:
        if not account.is_patient:
            raise InviteError("That address belongs to a clinician's account; only patient accounts can be linked.")
        if patient.account_id == account.pk:
            return InviteOutcome(linked=True, message=f"{patient.display_name}'s record is already linked to {email}.")
        if patient.account_id is not None:
            raise InviteError("This patient record is already linked to another account.", conflict=True)
        if not EmailAddress.objects.filter(user=account, email__iexact=email, verified=True).exists():
            return _send_invitation(patient, email=email, by=by, request=request)
        link_account(patient, account)
        send_mail(
            "Your images are now in your teleconsult portal",
            f"Hello {account.display_name},\n\n{by.display_name} linked your records to your account. "
            f"Sign in to see your images and reports:\n{_absolute(request, reverse('portal:home'))}\n",
            None,
            [account.email],
        )
        return InviteOutcome(linked=True, message=f"Linked to the existing patient account {email}; they were told.")
    if patient.account_id is not None:
        raise InviteError("This patient record is already linked to another account.", conflict=True)
    return _send_invitation(patient, email=email, by=by, request=request)


def _send_invitation(patient: Patient, *, email: str, by, request) -> InviteOutcome:
    """An account with an unconfirmed address is linked only once it is confirmed."""
    with transaction.atomic():
        # Lock the record so that two clicks at once send one invitation, not two.
        Patient.objects.select_for_update().filter(pk=patient.pk).first()
        invitation = PatientInvitation.pending().filter(patient=patient, email__iexact=email).first()
        again = invitation is not None
        if invitation is None:
            invitation = PatientInvitation.objects.create(patient=patient, email=email, invited_by=by)
    until = valid_until(invitation)
    signup = f"{_absolute(request, reverse('account_signup'))}?{urlencode({'email': email})}"
    send_mail(
        "You are invited to see your images on teleconsult",
        f"Hello,\n\n{by.display_name} invites you to see your medical images and reports online.\n"
        f"Create your account with this email address ({email}):\n{signup}\n\n"
        "Your records are linked as soon as you confirm the address.\n"
        f"This invitation is valid until {until}. After that, ask your physician to invite you again.\n",
        None,
        [email],
    )
    sent = "sent again" if again else "sent"
    return InviteOutcome(
        linked=False, message=f"Invitation {sent} to {email}; it is valid until {until}.", invitation=invitation
    )


def valid_until(invitation: PatientInvitation) -> str:
    return dateformat.format(timezone.localtime(invitation.expires_at), "j F Y, H:i T")


def link_account(patient: Patient, account) -> None:
    Patient.objects.filter(pk=patient.pk, account__isnull=True).update(account=account)
    patient.refresh_from_db(fields=["account"])


def accept_invitations(user, email: str) -> int:
    """Link every record ``email`` was invited to; returns how many were linked."""
    if not user.is_patient or not email:
        return 0
    linked = 0
    now = timezone.now()
    with transaction.atomic():
        pending = PatientInvitation.pending(at=now).select_for_update().filter(email__iexact=email)
        for invitation in pending.select_related("patient"):
            if invitation.patient.account_id in (None, user.pk):
                link_account(invitation.patient, user)
                linked += 1
            invitation.accept(by=user, at=now)
    return linked


def on_email_confirmed(sender, request, email_address, **kwargs) -> None:
    accept_invitations(email_address.user, email_address.email)

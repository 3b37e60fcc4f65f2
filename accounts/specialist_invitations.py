"""Inviting specialists: an administrator names an address and its specialties; the email's link
leads to sign-up, and the account made there with that address comes out a specialist.

Following the link keeps the invitation in the session and tells allauth the invited address is
verified (``stash_verified_email``: the person holds the inbox the token was sent to), so signing
up needs no confirmation email; allauth makes that address the account's primary one even if
another was typed (the typed one stays unconfirmed beside it). The sign-up form asks for no role
(``signup_form_fields``) and ``accept_at_signup`` (called by the form's ``signup``) makes the
account a specialist.
"""

from __future__ import annotations

import hashlib
import secrets

from allauth.account.adapter import get_adapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from teleconsult.errors import PortalError
from teleconsult.links import absolute_url

from .addresses import account_for_address
from .models import (
    Organization,
    PhysicianProfile,
    Role,
    SpecialistEvent,
    SpecialistInvitation,
    SpecialistProfile,
    Specialty,
    User,
)
from .outbox import send_after_commit
from .specialists import record

SESSION_KEY = "specialist_invitation"


class InvitationError(PortalError):
    """An invitation that cannot be sent or used; ``field`` names the input at fault."""

    code = "invitation_refused"

    def __init__(self, message: str, *, field: str = "detail", **data) -> None:
        if field != "detail":
            data.setdefault(field, [message])
        super().__init__(message, **data)
        self.field = field


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_specialties(values) -> list[str]:
    values = [str(v) for v in (values or [])]
    unknown = [v for v in values if v not in Specialty.values]
    if unknown:
        raise InvitationError(
            f"Unknown specialties: {', '.join(v[:40] for v in unknown)}. Choose from: {', '.join(Specialty.values)}.",
            field="specialties",
        )
    if not values:
        raise InvitationError("Choose at least one specialty.", field="specialties")
    return list(dict.fromkeys(values))


def invite(
    *, email: str, specialties, by: User, practice: Organization | None = None, request=None
) -> SpecialistInvitation:
    """Send an invitation (administrators only). An address that already has an account is refused:
    that person's role is changed by an administrator, not by a sign-up link."""
    if not by.is_admin:
        raise PortalError("Only administrators invite specialists.", code="not_allowed", status=403)
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise InvitationError(f"{email[:80]!r} is not a valid email address.", field="email") from None
    specialties = check_specialties(specialties)
    if account_for_address(email) is not None:
        raise InvitationError(
            f"{email} already has an account: an invitation is for someone new to the portal.", field="email"
        )
    token = secrets.token_urlsafe(24)
    with transaction.atomic():
        invitation = SpecialistInvitation.objects.create(
            email=email, specialties=specialties, practice=practice, token_hash=_token_hash(token), invited_by=by
        )
        labels = ", ".join(Specialty(code).label for code in specialties)
        record(None, SpecialistEvent.Action.INVITED, by=by, email=email, detail=labels)
        link = absolute_url(reverse("console:join", args=[token]), request)
        joining = f" and join {practice.name}" if practice else ""
        body = (
            f"Hello,\n\n{by.display_name} invites you to review imaging consultations on teleconsult as a "
            f"specialist in {labels}.\n\nCreate your account with this address ({email}){joining} here:\n{link}\n\n"
            "After signing up, enter your licences (with a scan of each): an administrator verifies them and "
            "approves your account before consults are offered to you.\n\n"
            f"The invitation is valid for {settings.TELECONSULT_INVITATION_DAYS} days.\n"
        )
        send_after_commit("You are invited to teleconsult as a specialist", body, [email])
    return invitation


def invitation_for_token(token: str) -> SpecialistInvitation | None:
    return (
        SpecialistInvitation.objects.select_related("practice", "invited_by")
        .filter(token_hash=_token_hash(token or ""))
        .first()
    )


def open_for_signup(request, invitation: SpecialistInvitation) -> None:
    """The link was followed: remember the invitation and the verified address for sign-up."""
    request.session[SESSION_KEY] = invitation.pk
    get_adapter(request).stash_verified_email(request, invitation.email)


def invitation_in_session(request) -> SpecialistInvitation | None:
    pk = request.session.get(SESSION_KEY) if request is not None and hasattr(request, "session") else None
    if not pk:
        return None
    return SpecialistInvitation.pending().filter(pk=pk).first()


def signup_form_fields(form) -> None:
    """Sign-up reached from an invitation asks for no role: the account is a specialist's."""
    request = allauth_context.request
    if request is not None and invitation_in_session(request) is not None:
        for name in ("role", "institution"):
            form.fields.pop(name, None)


def accept_at_signup(request, user: User) -> None:
    """Sign-up from an invitation's link: the account becomes a specialist of the invitation's
    specialties (and a member of its practice). Its address is the invited one (allauth's
    ``setup_user_email`` puts the stashed, verified address first), whatever was typed."""
    invitation = invitation_in_session(request)
    if invitation is None:
        return
    with transaction.atomic():
        locked = SpecialistInvitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.status != "pending":
            return
        locked.accepted_at, locked.accepted_by = timezone.now(), user
        locked.save(update_fields=["accepted_at", "accepted_by"])
        User.objects.filter(pk=user.pk).update(role=Role.SPECIALIST)
        user.role = Role.SPECIALIST
        PhysicianProfile.objects.filter(user=user).delete()
        SpecialistProfile.objects.update_or_create(user=user, defaults={"specialties": list(locked.specialties)})
        if locked.practice_id:
            locked.practice.add_member(user, by=locked.invited_by)
            user.forget_practices()
        # The invitation's line, written before the account existed, joins the account's history.
        SpecialistEvent.objects.filter(specialist=None, email=locked.email).update(specialist=user)
        record(user, SpecialistEvent.Action.JOINED, by=user)
    request.session.pop(SESSION_KEY, None)


def revoke(invitation: SpecialistInvitation, *, by: User) -> None:
    if not by.is_admin:
        raise PortalError("Only administrators revoke invitations.", code="not_allowed", status=403)
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])

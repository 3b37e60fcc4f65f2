"""Practices: who belongs where, which practice an upload is filed under, and joining.

A clinician works with patients only as a member of a practice. A self-registered clinician has no
clinical access until a practice admits them: a practice admin invites their address (the link in
the email is accepted by the signed-in account that confirmed that address), or a site
administrator admits them. Inviting answers the same whatever the address belongs to; what differs
goes by email, to the address's owner only.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import transaction
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from teleconsult.errors import PortalError
from teleconsult.links import absolute_url

from .addresses import account_for_address, confirmed_addresses
from .models import Membership, Organization, PracticeInvitation, Role, User
from .outbox import send_after_commit

CLINICAL_ROLES = (Role.PHYSICIAN, Role.SPECIALIST)


class PracticeError(PortalError):
    """A practice that cannot be used for this: the message says why and what to do."""


def default_practice(user) -> Organization | None:
    """The practice ``user``'s uploads go to when none is named: the one they chose last, while
    still a member, else their first."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.pk:
        return None
    ids = user.practice_ids()
    if not ids:
        return None
    chosen = user.default_practice_id if user.default_practice_id in ids else ids[0]
    return Organization.objects.filter(pk=chosen).first()


def practices_of(user):
    if not user or not user.is_authenticated:
        return Organization.objects.none()
    return Organization.objects.filter(memberships__user=user).order_by("name", "pk")


def choosable_practices(user):
    """The practices ``user`` may file an upload under: their own; every one for administrators,
    who belong to none of their own."""
    return Organization.objects.order_by("name", "pk") if user.is_admin else practices_of(user)


def upload_practice(user, requested=None, *, remember: bool = False) -> Organization | None:
    """The practice an upload by ``user`` is filed under: ``requested`` (a practice id, as a form,
    query parameter or command line gives it) when they are a member (administrators: any
    practice), else their default practice; None when they have none (new studies are then refused
    one by one, "no_practice"). ``remember`` keeps the choice as their default."""
    if requested in (None, ""):
        return default_practice(user)
    try:
        pk = int(str(requested).strip())
    except ValueError:
        raise PracticeError(f"practice must be a practice's number, not {str(requested)[:40]!r}.") from None
    practice = choosable_practices(user).filter(pk=pk).first()
    if practice is None:
        raise PracticeError(f"You are not a member of practice {pk}: choose one of your own practices.")
    if remember and user.default_practice_id != practice.pk:
        User.objects.filter(pk=user.pk).update(default_practice=practice)
        user.default_practice = practice
    return practice


def membership_for(user, practice: Organization) -> Membership | None:
    if not user or not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, practice=practice).first()


def may_manage(user, practice: Organization) -> bool:
    """Practice admins manage their own practice; site administrators manage every practice."""
    if not user or not user.is_authenticated or not user.is_active:
        return False
    if user.is_admin:
        return True
    membership = membership_for(user, practice)
    return membership is not None and membership.is_admin


def managed_practices(user):
    if user.is_admin:
        return Organization.objects.all()
    return Organization.objects.filter(memberships__user=user, memberships__role=Membership.Role.ADMIN)


def get_practice_to_manage(user, pk) -> Organization:
    """The practice ``pk`` when ``user`` may manage it; Http404 otherwise (existence does not leak)."""
    try:
        return managed_practices(user).distinct().get(pk=int(pk))
    except (Organization.DoesNotExist, ValueError, TypeError):
        raise Http404("No such practice.") from None


def create_practice(name: str, *, admin: User | None = None, kind: str = Organization.Kind.CLINIC) -> Organization:
    name = (name or "").strip()
    if not name:
        raise PracticeError("A practice needs a name.")
    if kind not in Organization.Kind.values:
        raise PracticeError(f"Unknown kind {kind!r}. Choose from: {', '.join(Organization.Kind.values)}.")
    with transaction.atomic():
        practice = Organization.objects.create(name=name[:200], kind=kind)
        if admin is not None:
            practice.add_member(admin, role=Membership.Role.ADMIN, by=admin)
    return practice


def admit(user: User, practice: Organization, *, by: User, role: str = Membership.Role.CLINICIAN) -> Membership:
    """A site administrator or practice admin admits a clinician into ``practice``."""
    if not may_manage(by, practice):
        raise Http404("No such practice.")
    if user.role not in CLINICAL_ROLES:
        raise PracticeError("Only physicians and specialists join practices; patients are linked to records.")
    if role not in Membership.Role.values:
        raise PracticeError(f"Unknown member role {role!r}.")
    membership = practice.add_member(user, role=role, by=by)
    user.forget_practices()
    return membership


def _lock_admins(practice: Organization):
    """Lock the practice's row (two admins acting at once take turns) and return its active admins."""
    Organization.objects.select_for_update().filter(pk=practice.pk).first()
    return practice.memberships.filter(role=Membership.Role.ADMIN, user__is_active=True)


@transaction.atomic
def remove_member(membership: Membership, *, by: User) -> None:
    """Remove a member; the last active admin stays (a practice always has someone to run it)."""
    if not may_manage(by, membership.practice):
        raise Http404("No such practice.")
    admins = _lock_admins(membership.practice)
    if membership.is_admin and not admins.exclude(pk=membership.pk).exists():
        raise PracticeError("This is the practice's last admin: make someone else admin first.")
    user = membership.user
    membership.delete()
    if user.default_practice_id == membership.practice_id:
        User.objects.filter(pk=user.pk).update(default_practice=None)


@transaction.atomic
def set_role(membership: Membership, role: str, *, by: User) -> None:
    if not may_manage(by, membership.practice):
        raise Http404("No such practice.")
    if role not in Membership.Role.values:
        raise PracticeError(f"Unknown member role {role!r}.")
    admins = _lock_admins(membership.practice)
    if membership.is_admin and role != Membership.Role.ADMIN and not admins.exclude(pk=membership.pk).exists():
        raise PracticeError("This is the practice's last admin: make someone else admin first.")
    membership.role = role
    membership.save(update_fields=["role"])


# -- invitations -------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite_member(
    practice: Organization, *, email: str, by: User, role: str = Membership.Role.CLINICIAN, request=None
) -> str:
    """Invite ``email`` to ``practice``. The answer is the same whoever owns the address (a clinician,
    a patient, nobody yet); the email says what applies to them."""
    if not may_manage(by, practice):
        raise Http404("No such practice.")
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise PracticeError(f"{email[:80]!r} is not a valid email address.") from None
    if role not in Membership.Role.values:
        raise PracticeError(f"Unknown member role {role!r}.")
    token = secrets.token_urlsafe(24)
    PracticeInvitation.objects.create(
        practice=practice,
        email=email,
        role=role,
        token_hash=_token_hash(token),
        invited_by=by,
    )
    path = reverse("accounts:join_practice", args=[token])
    link = absolute_url(path, request)
    account = account_for_address(email)
    if account is not None and account.role not in CLINICAL_ROLES:
        body = (
            f"Hello,\n\n{by.display_name} invited this address to join {practice.name} on teleconsult as a "
            "clinician. Your account here is not a clinician's account, so it cannot join a practice; "
            "if you are a clinician, ask them to invite another address. Otherwise ignore this message.\n"
        )
    else:
        body = (
            f"Hello,\n\n{by.display_name} invites you to join {practice.name} on teleconsult.\n"
            f"Sign in (or create your account with this address, {email}) and accept here:\n{link}\n\n"
            f"The invitation is valid for {settings.TELECONSULT_INVITATION_DAYS} days.\n"
        )
    send_after_commit(f"Join {practice.name} on teleconsult", body, [email])
    return f"Invitation sent to {email}. If the address can join, the email tells them how."


def invitation_for_token(token: str) -> PracticeInvitation | None:
    return (
        PracticeInvitation.objects.select_related("practice", "invited_by")
        .filter(token_hash=_token_hash(token or ""))
        .first()
    )


def accept_invitation(invitation: PracticeInvitation, *, user: User) -> Membership:
    """The signed-in ``user`` accepts; only an account that confirmed the invited address may."""
    if invitation.status != "pending":
        raise PracticeError(f"This invitation is {invitation.status}: ask the practice for a new one.")
    if user.role not in CLINICAL_ROLES:
        raise PracticeError("Only physicians and specialists join practices.")
    if invitation.email.lower() not in confirmed_addresses(user):
        raise PracticeError(
            "This invitation was sent to another email address: sign in with the account of "
            "the address it was sent to (and confirm that address first)."
        )
    with transaction.atomic():
        locked = PracticeInvitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.status != "pending":
            raise PracticeError(f"This invitation is {locked.status}: ask the practice for a new one.")
        locked.accepted_at = timezone.now()
        locked.accepted_by = user
        locked.save(update_fields=["accepted_at", "accepted_by"])
        # An invitation may make a member admin, never demote one (the practice keeps its admin).
        promote = locked.role == Membership.Role.ADMIN
        membership = invitation.practice.add_member(
            user,
            role=locked.role if promote or not membership_for(user, invitation.practice) else None,
            by=locked.invited_by,
        )
    user.forget_practices()
    return membership


def revoke_invitation(invitation: PracticeInvitation, *, by: User) -> None:
    if not may_manage(by, invitation.practice):
        raise Http404("No such practice.")
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])


def pending_clinicians():
    """Clinicians no practice has admitted yet (for site administrators)."""
    return User.objects.filter(role__in=CLINICAL_ROLES, is_active=True, memberships__isnull=True).order_by(
        "date_joined"
    )

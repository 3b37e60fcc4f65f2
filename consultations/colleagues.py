"""Inviting a colleague to a consult's care team: the requester names an email address, and the
colleague joins when they accept.

The answer to the requester is the same whoever the address belongs to (a clinician, a patient,
nobody yet), and the consult lists the address as invited either way: adding someone tells
nothing about who has an account here. What applies goes to the address by email: a clinician is
told where to accept; anyone else that only clinicians with an account join consults. A clinician
accepts only from an account that confirmed the invited address and that a practice has admitted;
accepting makes them a participant (study access, the consult room) exactly as before.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from accounts.addresses import account_for_address
from accounts.models import User
from accounts.outbox import send_after_commit

from .models import ColleagueInvitation, ConsultEvent, ConsultRequest, IllegalTransitionError, Notification, State
from .notifications import notify


def _may_join(user: User | None) -> bool:
    return bool(user and user.is_active and (user.is_physician or user.is_specialist) and user.has_clinical_access)


@transaction.atomic
def invite_colleague(consult: ConsultRequest, *, by: User, email: str) -> tuple[ColleagueInvitation, str]:
    """Invite ``email`` (the requester only; not on a closed or cancelled consult). Returns the
    invitation and the answer to show, the same for any address."""
    consult._require_requester(by, "add colleagues to")
    if consult.state in (State.CANCELLED, State.CLOSED):
        raise IllegalTransitionError(
            f"Cannot add colleagues to a consult that is {consult.get_state_display().lower()}."
        )
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise IllegalTransitionError(f"{email[:80]!r} is not an email address.") from None
    if email == by.email.lower():
        raise IllegalTransitionError("You are already on this consult.")
    invitation = ColleagueInvitation.pending().filter(consult=consult, email__iexact=email).first()
    if invitation is None:
        invitation = ColleagueInvitation.objects.create(consult=consult, email=email, invited_by=by)
    account = account_for_address(email)
    link = reverse("consultations:colleague-invitation", args=[invitation.pk])
    if _may_join(account):
        notify(
            [account],
            kind=Notification.Kind.COLLEAGUE_INVITED,
            consult=consult,
            title=f"{by.display_name} invites you to consult #{consult.pk}",
            url=link,
        )
        body = (
            f"Hello,\n\n{by.display_name} invites you to join consult #{consult.pk} on teleconsult. "
            f"Accept or decline here:\n{settings.TELECONSULT_BASE_URL}{link}\n"
        )
    else:
        body = (
            f"Hello,\n\n{by.display_name} asked to add this address to a consult on teleconsult. Only "
            "clinicians with an account here (admitted by their practice) join consults. If you are one, "
            "sign up or sign in with this address and ask them to invite you again; otherwise ignore this "
            "message.\n"
        )
    send_after_commit(f"An invitation to consult #{consult.pk}", body, [email])
    consult._log(ConsultEvent.Kind.PARTICIPANT_INVITED, by, f"{email} invited to join.", email=email)
    answer = f"Invitation sent to {email}. They join the consult once they accept."
    return invitation, answer


def invitations_for(user):
    """Pending invitations addressed to one of ``user``'s confirmed addresses."""
    if not _may_join(user):
        return ColleagueInvitation.objects.none()
    return ColleagueInvitation.pending_for(user).select_related("consult", "invited_by")


def get_invitation_for_user(user, pk) -> ColleagueInvitation:
    try:
        return invitations_for(user).get(pk=int(pk))
    except (ColleagueInvitation.DoesNotExist, ValueError, TypeError):
        raise Http404("No such invitation.") from None


@transaction.atomic
def accept(invitation: ColleagueInvitation, *, user: User) -> None:
    locked = ColleagueInvitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.status != "pending":
        raise IllegalTransitionError(f"This invitation is {locked.status}.")
    consult = ConsultRequest.objects.select_for_update().get(pk=locked.consult_id)
    if user.pk in (consult.requester_id, consult.assignee_id) or consult.is_participant(user):
        raise IllegalTransitionError("You are already on this consult.")
    consult.add_participant(by=locked.invited_by or consult.requester, user=user)
    locked.accepted_at = timezone.now()
    locked.accepted_by = user
    locked.save(update_fields=["accepted_at", "accepted_by"])
    notify(
        [consult.requester],
        kind=Notification.Kind.PARTICIPANT_ADDED,
        consult=consult,
        title=f"{user.display_name} joined consult #{consult.pk}",
    )


@transaction.atomic
def decline(invitation: ColleagueInvitation, *, user: User) -> None:
    locked = ColleagueInvitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.status != "pending":
        raise IllegalTransitionError(f"This invitation is {locked.status}.")
    locked.declined_at = timezone.now()
    locked.save(update_fields=["declined_at"])


# What an invited colleague may answer with.
ANSWERS = {"accept": accept, "decline": decline}


@transaction.atomic
def withdraw(consult: ConsultRequest, invitation_pk, *, by: User) -> ColleagueInvitation:
    consult._require_requester(by, "withdraw invitations to")
    invitation = ColleagueInvitation.pending().filter(consult=consult, pk=invitation_pk).first()
    if invitation is None:
        raise Http404("No such invitation.")
    invitation.withdrawn_at = timezone.now()
    invitation.save(update_fields=["withdrawn_at"])
    return invitation

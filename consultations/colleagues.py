"""Inviting a colleague to a consult's care team: the requester names an email address, and the
colleague joins when they accept.

The answer to the requester is the same whoever the address belongs to (a clinician, a patient,
nobody yet), and the consult lists the address as invited either way: adding someone tells
nothing about who has an account here. What applies goes to the address by email: a clinician is
told where to accept; anyone else that only clinicians with an account join consults. A clinician
accepts only from an account that confirmed the invited address and that a practice has admitted;
accepting makes them a participant (study access, the consult room) exactly as before.

This module answers who may join and which invitations a user holds; inviting, answering and
withdrawing are changes of the consult, in ``consultations.actions``.
"""

from __future__ import annotations

from django.http import Http404

from accounts.models import User

from .models import ColleagueInvitation


def may_join_consults(user: User | None) -> bool:
    """A clinician's account a practice admitted: the only kind that joins a consult's care team."""
    return bool(user and user.is_active and (user.is_physician or user.is_specialist) and user.has_clinical_access)


def invitations_for(user):
    """Pending invitations addressed to one of ``user``'s confirmed addresses."""
    if not may_join_consults(user):
        return ColleagueInvitation.objects.none()
    return ColleagueInvitation.pending_for(user).select_related("consult", "invited_by")


def get_invitation_for_user(user, pk) -> ColleagueInvitation:
    try:
        return invitations_for(user).get(pk=int(pk))
    except (ColleagueInvitation.DoesNotExist, ValueError, TypeError):
        raise Http404("No such invitation.") from None

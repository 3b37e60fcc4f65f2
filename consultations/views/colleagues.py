"""A consult's care team: inviting colleagues, withdrawing an invitation, removing a colleague,
and the invited colleague's page to accept or decline."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from teleconsult.errors import on_refusal

from .. import actions, colleagues, forms, permissions
from ..errors import ConsultError, IllegalTransitionError
from .consult import detail_url


@login_required
@require_POST
def add_participant(request, pk: int):
    """Invite a colleague by email; the answer is the same whoever the address belongs to."""
    consult = permissions.get_consult_for_user(request.user, pk)
    on_refusal(request, detail_url(consult))
    form = forms.ParticipantForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"email: {' '.join(form.errors['email'])}")
        return redirect(detail_url(consult))
    _invitation, answer = actions.invite_colleague(consult, by=request.user, email=form.cleaned_data["email"])
    messages.success(request, answer)
    return redirect(detail_url(consult))


@login_required
@require_POST
def withdraw_invitation(request, pk: int, invitation_pk: int):
    consult = permissions.get_consult_for_user(request.user, pk)
    on_refusal(request, detail_url(consult))
    invitation = actions.withdraw_invitation(consult, invitation_pk, by=request.user)
    messages.success(request, f"The invitation to {invitation.email} is withdrawn.")
    return redirect(detail_url(consult))


@login_required
def colleague_invitation(request, invitation_pk: int):
    """The invited colleague's page: which consult, who asks, accept or decline."""
    invitation = colleagues.get_invitation_for_user(request.user, invitation_pk)
    if request.method == "POST":
        answer = request.POST.get("answer")
        try:
            if answer not in actions.INVITATION_ANSWERS:
                raise IllegalTransitionError("answer: accept or decline.")
            actions.INVITATION_ANSWERS[answer](invitation, user=request.user)
        except ConsultError as exc:
            # Shown on the invitation page, which says what the invitation has become.
            messages.error(request, exc.message)
        else:
            if answer == "decline":
                messages.success(request, "Declined.")
                return redirect("consultations:mine")
            messages.success(request, f"You joined consult #{invitation.consult_id}.")
            return redirect(detail_url(invitation.consult))
    return render(request, "consultations/colleague_invitation.html", {"invitation": invitation})


@login_required
@require_POST
def remove_participant(request, pk: int, user_id: int):
    consult = permissions.get_consult_for_user(request.user, pk)
    participant = consult.active_participants().filter(user_id=user_id).first()
    if participant is None:
        raise Http404("No such colleague on this consult.")
    on_refusal(request, detail_url(consult))
    actions.remove_participant(consult, by=request.user, user=participant.user)
    return redirect(detail_url(consult))

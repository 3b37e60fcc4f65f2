"""The specialist's worklist and everyone's "My consults"."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.shortcuts import redirect, render

from .. import colleagues, forms, permissions
from ..models import ConsultRequest


def _filtered(request, qs):
    form = forms.WorklistFilterForm(request.GET or None)
    if form.is_valid():
        for name in ("state", "priority", "specialty"):
            if form.cleaned_data.get(name):
                qs = qs.filter(**{name: form.cleaned_data[name]})
    return form, qs


@login_required
def worklist(request):
    """Specialists: consults offered to me and mine, overdue first, then priority, then due time."""
    if not request.user.is_specialist:
        return redirect("consultations:mine")
    qs = ConsultRequest.objects.worklist_for(request.user).select_related("study__patient", "requester", "assignee")
    form, qs = _filtered(request, qs)
    consults = list(qs.in_worklist_order())
    return render(
        request,
        "consultations/worklist.html",
        {
            "consults": consults,
            "filter_form": form,
            "title": "Worklist",
            "worklist": True,
            "colleague_invitations": list(colleagues.invitations_for(request.user)),
        },
    )


@login_required
def my_consults(request):
    """Requesters (and colleagues they added) see theirs; patients see those on their studies."""
    user = request.user
    qs = permissions.visible_consults(user)
    if user.is_physician:
        qs = qs.filter(Q(requester=user) | Q(participants__user=user, participants__removed_at__isnull=True))
    elif user.is_specialist:
        qs = qs.filter(assignee=user)
    qs = qs.select_related("study__patient", "requester", "assignee").distinct()
    form, qs = _filtered(request, qs)
    return render(
        request,
        "consultations/worklist.html",
        {
            "consults": list(qs.in_worklist_order()),
            "filter_form": form,
            "title": "My consults",
            "worklist": False,
            "colleague_invitations": list(colleagues.invitations_for(user)),
        },
    )

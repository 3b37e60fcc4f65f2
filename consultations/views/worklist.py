"""The specialist's worklist and everyone's "My consults".

Both pages refresh themselves when a consult on them changes (``worklist.changed`` over
``/ws/notifications/``, see consultations.worklist_events): static/js/worklist.js asks for the same
URL again with ``X-List-Only: 1`` and gets just the list.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Case, Count, Exists, IntegerField, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers

from .. import colleagues, forms, permissions
from ..models import ChatMessage, ChatReadMark, ConsultParticipant, ConsultRequest

LIST_ONLY_HEADER = "X-List-Only"


def _filtered(request, qs):
    form = forms.WorklistFilterForm(request.GET or None)
    if form.is_valid():
        for name in ("state", "priority", "specialty"):
            if form.cleaned_data.get(name):
                qs = qs.filter(**{name: form.cleaned_data[name]})
    return form, qs


def with_unread(qs, user):
    """Annotate ``unread``: chat messages from others after ``user``'s read mark, on consults whose
    room they are in (requester, colleague, assignee); 0 elsewhere. One query for the whole list."""
    read_up_to = ChatReadMark.objects.filter(consult=OuterRef(OuterRef("pk")), user=user).values("up_to_id")[:1]
    unread = (
        ChatMessage.objects.filter(consult=OuterRef("pk"), pk__gt=Coalesce(Subquery(read_up_to), Value(0)))
        .exclude(author=user)
        .order_by()
        .values("consult")
        .annotate(n=Count("pk"))
        .values("n")
    )
    colleague = ConsultParticipant.objects.filter(consult=OuterRef("pk"), user=user, removed_at__isnull=True)
    in_room = Q(requester=user) | Q(assignee=user) | Q(Exists(colleague))
    return qs.annotate(
        unread=Case(
            When(in_room, then=Coalesce(Subquery(unread, output_field=IntegerField()), Value(0))),
            default=Value(0),
            output_field=IntegerField(),
        )
    )


def _render_list(request, context: dict):
    list_only = request.headers.get(LIST_ONLY_HEADER) == "1"
    template = "consultations/_consult_list.html" if list_only else "consultations/worklist.html"
    response = render(request, template, context)
    patch_vary_headers(response, [LIST_ONLY_HEADER])
    return response


@login_required
def worklist(request):
    """Specialists: consults offered to me and mine, overdue first, then priority, then due time."""
    if not request.user.is_specialist:
        return redirect("consultations:mine")
    qs = ConsultRequest.objects.worklist_for(request.user).select_related("study__patient", "requester", "assignee")
    form, qs = _filtered(request, qs)
    consults = list(with_unread(qs, request.user).in_worklist_order())
    return _render_list(
        request,
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
    if user.is_physician:
        qs = permissions.requested_or_joined(user)
    else:
        qs = permissions.visible_consults(user)
        if user.is_specialist:
            qs = qs.filter(assignee=user)
    qs = qs.select_related("study__patient", "requester", "assignee").distinct()
    form, qs = _filtered(request, qs)
    return _render_list(
        request,
        {
            "consults": list(with_unread(qs, user).in_worklist_order()),
            "filter_form": form,
            "title": "My consults",
            "worklist": False,
            "colleague_invitations": list(colleagues.invitations_for(user)),
        },
    )

"""The administrators' access history: search every access event, read it in words (who, in what
role, did what to which patient's study), and export what was found as CSV (unchanged: the
codes and UIDs other software reads)."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from .. import audit
from ..models import AccessEvent


class EventSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=254, label="Who (name, email or link prefix)")
    patient = forms.CharField(required=False, max_length=254, label="Patient (name or ID)")
    study_uid = forms.CharField(required=False, max_length=64, label="Study UID")
    action = forms.ChoiceField(required=False, choices=[("", "Any"), *AccessEvent.Action.choices])
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def filter(self, events):
        data = self.cleaned_data
        if data.get("q"):
            events = events.filter(Q(actor__icontains=data["q"]) | Q(user__name__icontains=data["q"]))
        if term := data.get("patient"):
            # A study's patient, or the record a link event names. DICOM names separate their
            # parts with "^": "jane doe" finds Doe^Jane through each word.
            for word in term.replace("^", " ").split():
                events = events.filter(
                    Q(study__patient__name__icontains=word)
                    | Q(study__patient__patient_id__icontains=word)
                    | Q(patient__name__icontains=word)
                    | Q(patient__patient_id__icontains=word)
                )
        if data.get("study_uid"):
            events = events.filter(study_uid=data["study_uid"])
        if data.get("action"):
            events = events.filter(action=data["action"])
        if data.get("date_from"):
            events = events.filter(at__date__gte=data["date_from"])
        if data.get("date_to"):
            events = events.filter(at__date__lte=data["date_to"])
        return events


@require_safe
@login_required
def access_history(request: HttpRequest) -> HttpResponse:
    """Administrators search every access event and export what they found as CSV."""
    if not request.user.is_admin:
        raise Http404("No such page.")
    form = EventSearchForm(request.GET or None)
    events = audit.visible_events(request.user)
    status = 200
    if form.is_bound:
        if form.is_valid():
            events = form.filter(events)
        else:
            events, status = events.none(), 400
    if request.GET.get("format") == "csv" and status == 200:
        stamp = dt.date.today().isoformat()
        return audit.events_csv_response(events.order_by("at", "pk"), filename=f"access-events-{stamp}.csv")
    events = events.select_related("study__patient", "patient")
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("format", None)
    return render(
        request,
        "portal/access_history.html",
        {"form": form, "page": page, "query": query.urlencode()},
        status=status,
    )

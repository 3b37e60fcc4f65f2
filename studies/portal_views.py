"""Who has access to a study and who looked at it; share links and patient grants; the study as a
zip; the administrators' access-history search.

The patient of a study sees everyone with access (read from the same AccessGrant and ShareLink
rows every permission check reads), withdraws what they gave, and gives a named clinician access.
Clinicians see and manage the share links they made.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from . import audit, sharing
from .api_sharing import events_csv_response
from .downloads import study_zip_response
from .models import AccessEvent, AccessGrant, ShareLink, Study
from .permissions import get_study_for_user, grant_access


class ShareForm(forms.Form):
    label = forms.CharField(required=False, max_length=200, help_text="Who the link is for (only you see this)")
    expires_in_days = forms.IntegerField(min_value=1, max_value=sharing.MAX_DAYS, initial=sharing.DEFAULT_DAYS)
    passcode = forms.CharField(
        required=False,
        strip=False,
        min_length=sharing.MIN_PASSCODE,
        max_length=sharing.MAX_PASSCODE,
        help_text="Optional. Tell it to the recipient separately from the link.",
    )
    allow_download = forms.BooleanField(required=False, label="Allow downloading the DICOM files")


class GrantForm(forms.Form):
    email = forms.EmailField(label="Clinician's email address")

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        user = get_user_model().objects.filter(email__iexact=email, is_active=True).first()
        if user is None or not (user.is_physician or user.is_specialist):
            raise forms.ValidationError("No physician or specialist with that email address is registered here.")
        return user


def is_patient_of(user, study: Study) -> bool:
    return user.is_patient and study.patient.account_id == user.pk


def _access_context(request: HttpRequest, study: Study, **extra) -> dict:
    user = request.user
    owner = is_patient_of(user, study) or user.is_admin
    links = ShareLink.objects.filter(study=study).select_related("created_by")
    if not owner:
        links = links.filter(created_by=user)
    context = {
        "study": study,
        "patient": study.patient,
        "is_owner": owner,
        "grants": (
            AccessGrant.objects.active().filter(study=study).select_related("user", "granted_by").order_by("since")
            if owner
            else []
        ),
        "practice_members": (
            list(study.practice.memberships.filter(user__is_active=True).select_related("user")) if owner else []
        ),
        "links": list(links),
        "events": list(audit.visible_events(user).filter(study=study)[:200]),
        "share_form": ShareForm(),
        "grant_form": GrantForm(),
        "may_share": sharing.may_share(user, study),
        "patient_grant": AccessGrant.Reason.PATIENT_GRANT,
    }
    context.update(extra)
    return context


@require_safe
@login_required
def study_access(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    return render(request, "portal/access.html", _access_context(request, study))


@require_POST
@login_required
def create_link(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    form = ShareForm(request.POST)
    if not form.is_valid():
        return render(request, "portal/access.html", _access_context(request, study, share_form=form), status=400)
    data = form.cleaned_data
    try:
        new = sharing.create_share(
            study=study,
            by=request.user,
            expires_in_days=data["expires_in_days"],
            passcode=data["passcode"],
            allow_download=data["allow_download"],
            label=data["label"],
        )
    except sharing.ShareError as exc:
        form.add_error(None, str(exc))
        return render(request, "portal/access.html", _access_context(request, study, share_form=form), status=403)
    # The full link exists only in this answer: the server keeps a hash of its token.
    context = _access_context(request, study, new_link_url=request.build_absolute_uri(new.path + "/"))
    return render(request, "portal/access.html", context, status=201)


@require_POST
@login_required
def revoke_link(request: HttpRequest, study_uid: str, pk: int) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    link = sharing.links_of(request.user).filter(study=study, pk=pk).first()
    if link is None:
        raise Http404("No such share link.")
    link.revoke(by=request.user)
    messages.success(request, f"The link {link.token_prefix}… no longer works.")
    return redirect("studies:access", study_uid=study.study_instance_uid)


@require_POST
@login_required
def add_grant(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    if not is_patient_of(request.user, study):
        raise Http404("No such study.")
    form = GrantForm(request.POST)
    if not form.is_valid():
        return render(request, "portal/access.html", _access_context(request, study, grant_form=form), status=400)
    clinician = form.cleaned_data["email"]
    grant_access(user=clinician, study=study, reason=AccessGrant.Reason.PATIENT_GRANT, granted_by=request.user)
    messages.success(request, f"{clinician.display_name} can now see this study.")
    return redirect("studies:access", study_uid=study.study_instance_uid)


@require_POST
@login_required
def revoke_grant(request: HttpRequest, study_uid: str, pk: int) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    if not is_patient_of(request.user, study):
        raise Http404("No such study.")
    grant = (
        AccessGrant.objects.active()
        .filter(study=study, pk=pk, reason=AccessGrant.Reason.PATIENT_GRANT, granted_by=request.user)
        .first()
    )
    if grant is None:
        raise Http404("No such access you gave.")
    grant.revoke(by=request.user)
    messages.success(request, f"{grant.user.display_name} no longer sees this study through your permission.")
    return redirect("studies:access", study_uid=study.study_instance_uid)


@require_safe
@login_required
def download_study(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    audit.record(request, AccessEvent.Action.DOWNLOAD, study)
    return study_zip_response(study)


class EventSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=254, label="Who (email or link prefix)")
    study_uid = forms.CharField(required=False, max_length=64, label="Study UID")
    action = forms.ChoiceField(required=False, choices=[("", "Any"), *AccessEvent.Action.choices])
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def filter(self, events):
        data = self.cleaned_data
        if data.get("q"):
            events = events.filter(actor__icontains=data["q"])
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
        return events_csv_response(events.order_by("at", "pk"), filename=f"access-events-{stamp}.csv")
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

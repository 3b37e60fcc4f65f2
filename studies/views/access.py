"""A study's access page: who has access and who looked at it; share links and named shares.

The patient of a study sees everyone with access (read from the same AccessGrant and ShareLink
rows every permission check reads) and withdraws what they gave. Whoever may share the study (its
patient, a clinician who sees it) makes share links there, shown once with a copy button and a QR
code, optionally with the signed report, and shares with a clinician named by email
(``studies.sharing.named``), listed with who and when and revocable. Clinicians see and manage what
they shared themselves (what a link's holder sees is ``studies.sharing.views``).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from teleconsult.errors import on_refusal

from .. import audit, sharing
from ..models import AccessGrant, ShareLink, Study
from ..navigation import study_page_url
from ..permissions import get_study_for_user, grant_access
from ..sharing import named
from ..sharing.qr import qr_data_uri


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
    include_report = forms.BooleanField(
        required=False,
        label="Include the signed report",
        help_text="The latest signed report and its PDF, also one signed after you make the link.",
    )


class ShareWithForm(forms.Form):
    email = forms.CharField(
        label="Email address of a doctor or specialist",
        max_length=named.MAX_EMAIL,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
        error_messages={"required": "Enter the email address of the doctor or specialist."},
    )


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
            AccessGrant.objects.active()
            .filter(study=study)
            .exclude(source__startswith=named.SOURCE_PREFIX)  # listed with the named shares
            .select_related("user", "granted_by")
            .order_by("since")
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
        "share_with_form": ShareWithForm(),
        "named_shares": [(share, named.status_of(share)) for share in named.shares_shown(user, study)],
        "may_share": sharing.may_share(user, study),
        "patient_grant": AccessGrant.Reason.PATIENT_GRANT,
        "study_url": study_page_url(user, study),
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
            include_report=data["include_report"],
            label=data["label"],
        )
    except sharing.ShareError as exc:
        form.add_error(None, exc.message)  # shown on the form, which keeps what was typed
        context = _access_context(request, study, share_form=form)
        return render(request, "portal/access.html", context, status=exc.status)
    # The full link exists only in this answer: the server keeps a hash of its token. So does the
    # passcode, shown back to its maker once to copy and send separately.
    url = request.build_absolute_uri(new.path + "/")
    context = _access_context(
        request, study, new_link=new.link, new_link_url=url, new_link_qr=qr_data_uri(url), new_passcode=data["passcode"]
    )
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


@require_POST
@login_required
def share_with_person(request: HttpRequest, study_uid: str) -> HttpResponse:
    """Share the study with a clinician named by email: a grant, or an invitation to the address."""
    study = get_study_for_user(request.user, study_uid)
    form = ShareWithForm(request.POST)
    if form.is_valid():
        try:
            outcome = named.share_with(study, email=form.cleaned_data["email"], by=request.user, request=request)
        except named.NamedShareError as exc:
            form.add_error("email", exc.message)
            context = _access_context(request, study, share_with_form=form)
            return render(request, "portal/access.html", context, status=exc.status)
        messages.success(request, outcome.message)
        return redirect("studies:access", study_uid=study.study_instance_uid)
    return render(request, "portal/access.html", _access_context(request, study, share_with_form=form), status=400)


@require_POST
@login_required
def revoke_person_share(request: HttpRequest, study_uid: str, pk: int) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    share = named.get_share_for_user(request.user, study, pk)
    on_refusal(request, reverse("studies:access", args=[study.study_instance_uid]))
    named.revoke(share, by=request.user)
    who = share.grant.user.display_name if share.grant else share.email
    messages.success(request, f"{who} no longer sees this study through your share.")
    return redirect("studies:access", study_uid=study.study_instance_uid)


@require_POST
@login_required
def withdraw_person_share(request: HttpRequest, study_uid: str, pk: int) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    share = named.get_share_for_user(request.user, study, pk)
    on_refusal(request, reverse("studies:access", args=[study.study_instance_uid]))
    named.withdraw(share, by=request.user)
    messages.success(request, f"The invitation to {share.email} is withdrawn: it no longer opens this study.")
    return redirect("studies:access", study_uid=study.study_instance_uid)

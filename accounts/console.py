"""The specialists' console (administrators) and each specialist's licences page, mounted at
/specialists/ (accounts/console_urls.py).

Administrators invite specialists, verify or reject licences, approve, suspend and reinstate.
Specialists enter and renew their licences. A licence's document is served to its specialist and
to administrators only; everyone else gets 404, as for anything they may not see.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from teleconsult.errors import on_refusal
from teleconsult.responses import FileStreamResponse

from . import licences, specialist_invitations, specialists
from .models import Licence, Organization, SpecialistInvitation, Specialty


class InviteForm(forms.Form):
    email = forms.EmailField(label="Specialist's email address", max_length=254)
    specialties = forms.MultipleChoiceField(choices=Specialty.choices, widget=forms.CheckboxSelectMultiple)
    practice = forms.ModelChoiceField(
        queryset=Organization.objects.all(),
        required=False,
        empty_label="None yet",
        label="Join practice or reading group",
        help_text="They become a member when they sign up (they can also be admitted later).",
    )


class LicenceForm(forms.Form):
    """What a specialist types; the checks themselves are accounts.licences' (shown beside the field)."""

    jurisdiction = forms.CharField(
        max_length=80, help_text="ISO 3166 code (DE, US-CA) or the country's or region's name"
    )
    number = forms.CharField(max_length=64, label="Licence number")
    expires_on = forms.DateField(label="Expiry date", widget=forms.DateInput(attrs={"type": "date"}))
    document = forms.FileField(
        label="Scan of the licence",
        help_text="PDF, PNG or JPEG",
        widget=forms.ClearableFileInput(attrs={"accept": "application/pdf,image/png,image/jpeg"}),
    )


def _require_admin(request: HttpRequest) -> None:
    if not request.user.is_admin:
        raise Http404("No such page.")


def _require_specialist(request: HttpRequest) -> None:
    if not licences.may_hold_licences(request.user):
        raise Http404("No such page.")


# -- administrators ---------------------------------------------------------------------------


@login_required
def console(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    on_refusal(request, reverse("console:list"))
    chosen = request.GET.get("filter", "")
    query = request.GET.get("q", "").strip()[:100]
    rows = list(specialists.specialists(chosen, query=query).prefetch_related("licences")[:200])
    day = licences.today()
    for specialist in rows:
        held = list(specialist.licences.all())
        specialist.console_licences = held
        specialist.valid_licences = [licence for licence in held if licence.is_valid_on(day)]
        specialist.waiting_licences = [licence for licence in held if licence.status == Licence.Status.PENDING]
    context = {
        "rows": rows,
        "filters": specialists.FILTERS,
        "chosen": chosen,
        "query": query,
        "invite_form": InviteForm(),
        "invitations": list(SpecialistInvitation.objects.select_related("invited_by", "practice")[:30]),
        "rule": licences.rule_applies(),
    }
    return render(request, "accounts/console/list.html", context)


@login_required
@require_POST
def invite(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    form = InviteForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{form[field].label}: {' '.join(errors)}")
        return redirect("console:list")
    on_refusal(request, reverse("console:list"))
    invitation = specialist_invitations.invite(
        email=form.cleaned_data["email"],
        specialties=form.cleaned_data["specialties"],
        practice=form.cleaned_data["practice"],
        by=request.user,
        request=request,
    )
    messages.success(request, f"Invitation sent to {invitation.email}.")
    return redirect("console:list")


@login_required
@require_POST
def revoke_invitation(request: HttpRequest, pk: int) -> HttpResponse:
    _require_admin(request)
    invitation = SpecialistInvitation.objects.filter(pk=pk).first()
    if invitation is None:
        raise Http404("No such invitation.")
    specialist_invitations.revoke(invitation, by=request.user)
    messages.success(request, f"The invitation to {invitation.email} no longer works.")
    return redirect("console:list")


@login_required
def specialist_detail(request: HttpRequest, pk: int) -> HttpResponse:
    specialist = specialists.get_specialist_for_admin(request.user, pk)
    context = {
        "specialist": specialist,
        "profile": getattr(specialist, "specialist_profile", None),
        "specialties": [Specialty(code).label for code in _specialties(specialist) if code in Specialty.values],
        "licences": list(specialist.licences.select_related("reviewed_by")),
        "history": list(specialists.history(specialist)[:100]),
        "today": licences.today(),
    }
    return render(request, "accounts/console/specialist.html", context)


def _specialties(specialist) -> list[str]:
    profile = getattr(specialist, "specialist_profile", None)
    return list(profile.specialties) if profile else []


# action name -> what it does and what it says; one route for the three buttons.
SPECIALIST_ACTIONS = {
    "approve": (lambda s, request: specialists.approve(s, by=request.user), "{name} is approved."),
    "suspend": (
        lambda s, request: specialists.suspend(s, by=request.user, reason=request.POST.get("reason")),
        "{name} is suspended: no consult is offered to them or may be taken by them.",
    ),
    "reinstate": (lambda s, request: specialists.reinstate(s, by=request.user), "{name} is reinstated."),
}


@login_required
@require_POST
def specialist_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    specialist = specialists.get_specialist_for_admin(request.user, pk)
    if action not in SPECIALIST_ACTIONS:
        raise Http404("No such action.")
    back = request.POST.get("next") == "list" and reverse("console:list") or reverse("console:specialist", args=[pk])
    on_refusal(request, back)
    do, said = SPECIALIST_ACTIONS[action]
    do(specialist, request)
    messages.success(request, said.format(name=specialist.display_name))
    return redirect(back)


@login_required
@require_POST
def review_licence(request: HttpRequest, pk: int, verdict: str) -> HttpResponse:
    _require_admin(request)
    licence = licences.get_licence_for_user(request.user, pk)
    on_refusal(request, reverse("console:specialist", args=[licence.specialist_id]))
    if verdict == "verify":
        licences.verify_licence(licence, by=request.user)
        messages.success(request, f"Licence {licence.number} ({licence.jurisdiction}) is verified.")
    elif verdict == "reject":
        licences.reject_licence(licence, by=request.user, reason=request.POST.get("reason"))
        messages.success(request, f"Licence {licence.number} ({licence.jurisdiction}) is rejected.")
    else:
        raise Http404("No such action.")
    return redirect("console:specialist", pk=licence.specialist_id)


# -- specialists --------------------------------------------------------------------------------


@login_required
def my_licences(request: HttpRequest) -> HttpResponse:
    _require_specialist(request)
    form = LicenceForm()
    if request.method == "POST":
        form = LicenceForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                licence = licences.add_licence(request.user, by=request.user, **form.cleaned_data)
            except licences.LicenceInputError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Licence {licence.number} saved: an administrator will verify it.")
                return redirect("console:licences")
    return _licences_page(request, form)


def _licences_page(request: HttpRequest, form: LicenceForm, status: int = 200) -> HttpResponse:
    profile = getattr(request.user, "specialist_profile", None)
    context = {
        "form": form,
        "licences": list(request.user.licences.select_related("reviewed_by")),
        "profile": profile,
        "today": licences.today(),
        "rule": licences.rule_applies(),
    }
    return render(request, "accounts/console/licences.html", context, status=status)


@login_required
@require_POST
def renew_licence(request: HttpRequest, pk: int) -> HttpResponse:
    """The specialist changes one of their licences (a new expiry date, number or scan)."""
    _require_specialist(request)
    licence = licences.get_licence_for_user(request.user, pk)
    if licence.specialist_id != request.user.pk:
        raise Http404("No such licence.")
    on_refusal(request, reverse("console:licences"))
    changes = {
        name: request.POST[name] for name in ("jurisdiction", "number", "expires_on") if request.POST.get(name, "")
    }
    if request.FILES.get("document"):
        changes["document"] = request.FILES["document"]
    if not changes:
        messages.error(request, "Nothing to change: give a new expiry date, number or scan.")
        return redirect("console:licences")
    licences.change_licence(licence, by=request.user, **changes)
    messages.success(request, f"Licence {licence.number} changed: an administrator will verify it again.")
    return redirect("console:licences")


@login_required
def licence_document(request: HttpRequest, pk: int) -> FileStreamResponse:
    """The scan, to its specialist and administrators only (404 for everyone else)."""
    licence = licences.get_licence_for_user(request.user, pk)
    response = FileStreamResponse(licence.document.open("rb"), content_type=licence.content_type)
    name = licence.document_name.replace('"', "")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


# -- the invitation's link --------------------------------------------------------------------


def join(request: HttpRequest, token: str) -> HttpResponse:
    """The link in a specialist's invitation: on to sign-up with the invited address."""
    invitation = specialist_invitations.invitation_for_token(token)
    if invitation is None:
        raise Http404("No such invitation.")
    if invitation.status == "pending" and not request.user.is_authenticated:
        specialist_invitations.open_for_signup(request, invitation)
        return redirect("account_signup")  # the address comes filled in, and counts as confirmed
    return render(request, "accounts/console/join.html", {"invitation": invitation})

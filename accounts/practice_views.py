"""Practice pages: a clinician's practices, a practice admin's members and invitations, site
administrators' admission of clinicians no practice has admitted yet, and accepting an invitation.

A refused change (``accounts.practices.PracticeError``) is flashed on the page the form was on
(``teleconsult.errors.on_refusal``)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from teleconsult.errors import on_refusal

from . import practices
from .models import Membership, Organization


class InviteMemberForm(forms.Form):
    email = forms.EmailField(label="Clinician's email address", max_length=254)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.CLINICIAN)


class CreatePracticeForm(forms.Form):
    name = forms.CharField(max_length=200, label="Practice name")
    kind = forms.ChoiceField(choices=Organization.Kind.choices, initial=Organization.Kind.CLINIC)


class AdmitForm(forms.Form):
    practice = forms.ModelChoiceField(queryset=Organization.objects.all(), empty_label=None)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.CLINICIAN)


def _errors(request, form) -> None:
    for field, errors in form.errors.items():
        messages.error(request, f"{field}: {' '.join(errors)}")


@login_required
def practice_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    if user.is_patient:
        raise Http404("Patients do not belong to practices.")
    memberships = list(user.memberships.select_related("practice"))
    context = {
        "memberships": memberships,
        "managed": list(practices.managed_practices(user).distinct()) if user.is_admin else [],
        "pending": list(practices.pending_clinicians()) if user.is_admin else [],
        "create_form": CreatePracticeForm() if user.is_admin else None,
        "admit_form": AdmitForm() if user.is_admin else None,
    }
    return render(request, "accounts/practices.html", context)


@login_required
def practice_detail(request: HttpRequest, pk: int) -> HttpResponse:
    practice = practices.get_practice_to_manage(request.user, pk)
    context = {
        "practice": practice,
        "members": list(practice.memberships.select_related("user").order_by("user__name", "user__email")),
        "invitations": list(practice.invitations.select_related("invited_by")[:50]),
        "invite_form": InviteMemberForm(),
        "roles": Membership.Role.choices,
    }
    return render(request, "accounts/practice_detail.html", context)


@login_required
@require_POST
def create_practice(request: HttpRequest) -> HttpResponse:
    if not request.user.is_admin:
        raise Http404("Only administrators create practices.")
    form = CreatePracticeForm(request.POST)
    if not form.is_valid():
        _errors(request, form)
        return redirect("accounts:practices")
    on_refusal(request, reverse("accounts:practices"))
    practice = practices.create_practice(form.cleaned_data["name"], kind=form.cleaned_data["kind"])
    messages.success(request, f"{practice.name} created: invite its first admin.")
    return redirect("accounts:practice", pk=practice.pk)


@login_required
@require_POST
def invite_member(request: HttpRequest, pk: int) -> HttpResponse:
    practice = practices.get_practice_to_manage(request.user, pk)
    form = InviteMemberForm(request.POST)
    if not form.is_valid():
        _errors(request, form)
        return redirect("accounts:practice", pk=practice.pk)
    on_refusal(request, reverse("accounts:practice", kwargs={"pk": practice.pk}))
    message = practices.invite_member(
        practice, email=form.cleaned_data["email"], role=form.cleaned_data["role"], by=request.user, request=request
    )
    messages.success(request, message)
    return redirect("accounts:practice", pk=practice.pk)


@login_required
@require_POST
def change_member(request: HttpRequest, pk: int, member_pk: int) -> HttpResponse:
    practice = practices.get_practice_to_manage(request.user, pk)
    membership = practice.memberships.select_related("user").filter(pk=member_pk).first()
    if membership is None:
        raise Http404("No such member.")
    on_refusal(request, reverse("accounts:practice", kwargs={"pk": practice.pk}))
    if request.POST.get("remove"):
        practices.remove_member(membership, by=request.user)
        messages.success(request, f"{membership.user.display_name} is no longer a member of {practice.name}.")
    else:
        practices.set_role(membership, request.POST.get("role", ""), by=request.user)
        messages.success(request, f"{membership.user.display_name} is now {membership.get_role_display()}.")
    return redirect("accounts:practice", pk=practice.pk)


@login_required
@require_POST
def revoke_invitation(request: HttpRequest, pk: int, invitation_pk: int) -> HttpResponse:
    practice = practices.get_practice_to_manage(request.user, pk)
    invitation = practice.invitations.filter(pk=invitation_pk).first()
    if invitation is None:
        raise Http404("No such invitation.")
    practices.revoke_invitation(invitation, by=request.user)
    messages.success(request, f"The invitation to {invitation.email} no longer works.")
    return redirect("accounts:practice", pk=practice.pk)


@login_required
@require_POST
def admit(request: HttpRequest, user_pk: int) -> HttpResponse:
    """Site administrators admit a clinician no practice has admitted yet."""
    if not request.user.is_admin:
        raise Http404("No such page.")
    clinician = practices.pending_clinicians().filter(pk=user_pk).first()
    if clinician is None:
        raise Http404("No such clinician waiting.")
    form = AdmitForm(request.POST)
    if not form.is_valid():
        _errors(request, form)
        return redirect("accounts:practices")
    on_refusal(request, reverse("accounts:practices"))
    practices.admit(clinician, form.cleaned_data["practice"], by=request.user, role=form.cleaned_data["role"])
    messages.success(request, f"{clinician.display_name} is now a member of {form.cleaned_data['practice'].name}.")
    return redirect("accounts:practices")


@login_required
def join_practice(request: HttpRequest, token: str) -> HttpResponse:
    """The link in a practice's invitation email: shows the practice and accepts on POST."""
    invitation = practices.invitation_for_token(token)
    if invitation is None:
        raise Http404("No such invitation.")
    if request.method == "POST":
        try:
            practices.accept_invitation(invitation, user=request.user)
        except practices.PracticeError as exc:
            messages.error(request, exc.message)  # shown above the invitation, which stays on the page
        else:
            messages.success(request, f"Welcome to {invitation.practice.name}.")
            return redirect("home")
    return render(request, "accounts/join_practice.html", {"invitation": invitation})

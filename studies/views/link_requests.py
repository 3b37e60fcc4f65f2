"""Linking a patient's portal account to a practice's record, with the patient's consent: the
clinician's request from the patient page, the patient's requests and linked records page (accept,
decline, unlink), and unlinking from the patient page.

A refused request or answer (``studies.invitations.InviteError``) is flashed on the page the
browser came from (``teleconsult.errors.on_refusal``)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from teleconsult.errors import on_refusal

from .. import invitations
from ..models import Patient
from ..navigation import patient_home_url
from ..permissions import get_patient_for_user


class InviteForm(forms.Form):
    email = forms.EmailField(label="Patient's email address", max_length=254)


@require_POST
@login_required
def invite_patient(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request.user, pk)
    patient_url = reverse("studies:patient", kwargs={"pk": patient.pk})
    on_refusal(request, patient_url)
    form = InviteForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"email: {' '.join(form.errors['email'])}")
        return redirect(patient_url)
    outcome = invitations.invite(patient, email=form.cleaned_data["email"], by=request.user, request=request)
    messages.success(request, outcome.message)
    return redirect(patient_url)


@require_POST
@login_required
def unlink_patient(request: HttpRequest, pk: int) -> HttpResponse:
    """A clinician of the record's practice, or the linked patient, ends the link."""
    if request.user.is_patient:
        patient = Patient.objects.filter(pk=pk, account=request.user).select_related("practice").first()
        if patient is None:
            raise Http404("No such record.")
        invitations.unlink(patient, by=request.user, request=request)
        messages.success(request, f"Your account is no longer linked to the record kept by {patient.practice.name}.")
        return redirect("studies:link-requests")
    patient = get_patient_for_user(request.user, pk)
    invitations.unlink(patient, by=request.user, request=request)
    messages.success(request, "The record is no longer linked to a portal account.")
    return redirect("studies:patient", pk=patient.pk)


@require_safe
@login_required
def link_requests(request: HttpRequest) -> HttpResponse:
    """A patient's requests to link records, and the records already linked to their account."""
    if not request.user.is_patient:
        raise Http404("Only patient accounts are linked to records.")
    waiting = list(invitations.requests_for(request.user))
    for invitation in waiting:
        invitation.name_differs = invitations.name_differs(invitation, request.user)
    context = {
        "home_url": patient_home_url(),
        "requests": waiting,
        "records": list(
            Patient.objects.filter(account=request.user).select_related("practice").order_by("practice__name")
        ),
    }
    return render(request, "portal/link_requests.html", context)


@require_POST
@login_required
def answer_link_request(request: HttpRequest, pk: int, answer: str) -> HttpResponse:
    if answer not in invitations.ANSWERS:
        raise Http404("Answer accept or decline.")
    invitation = invitations.get_request_for_user(request.user, pk)
    practice = invitation.patient.practice.name
    on_refusal(request, reverse("studies:link-requests"))
    invitations.ANSWERS[answer](invitation, user=request.user, request=request)
    done = {
        "accept": f"Linked: the images and reports {practice} keeps for you now show here.",
        "decline": f"Declined: nothing from {practice} is linked to your account.",
    }
    messages.success(request, done[answer])
    return redirect("studies:link-requests")

"""Sign-up adds a display name and a role; only patients and physicians sign themselves up."""

from __future__ import annotations

from django import forms

from . import specialist_invitations
from .models import PhysicianProfile, Role, validate_person_name

SIGNUP_ROLES = [(Role.PATIENT.value, "Patient"), (Role.PHYSICIAN.value, "Physician (referring)")]


class SignupForm(forms.Form):
    # allauth's sign-up form adds email and passwords around these fields; this is the page order.
    field_order = ["name", "email", "role", "institution", "password1", "password2"]

    name = forms.CharField(label="Your name", max_length=150, validators=[validate_person_name])
    role = forms.ChoiceField(label="I am a", choices=SIGNUP_ROLES, initial=Role.PATIENT)
    institution = forms.CharField(
        label="Institution (physicians)", max_length=200, required=False, help_text="Hospital or practice"
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        specialist_invitations.signup_form_fields(self)  # an invited specialist chooses no role

    def clean(self):
        data = super().clean()
        # allauth's enumeration protection would silently mail the owner instead; the sign-up form
        # says plainly that the address is taken (password reset stays silent about addresses).
        if getattr(self, "account_already_exists", False):
            self.add_error("email", "An account with this email address already exists. Sign in or reset the password.")
            self.account_already_exists = False
        if data.get("role") == Role.PHYSICIAN and not data.get("institution"):
            self.add_error("institution", "Physicians give the hospital or practice they work for.")
        return data

    def signup(self, request, user) -> None:
        user.name = self.cleaned_data["name"]
        user.role = self.cleaned_data.get("role", Role.PATIENT)
        user.save(update_fields=["name", "role"])
        if user.role == Role.PHYSICIAN:
            PhysicianProfile.objects.create(user=user, institution=self.cleaned_data["institution"])
        specialist_invitations.accept_at_signup(request, user)

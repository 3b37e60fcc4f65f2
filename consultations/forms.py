"""Forms for the consult pages; every error names its field."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from accounts.models import Role, Specialty, User, validate_jurisdiction

from .attachments import check_size, sniff_attachment
from .errors import AttachmentRefusedError
from .models import Agreement, Notification, Priority, State


class SpecialistChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        specialties = ", ".join(Specialty(s).label for s in obj.specialist_profile.specialties if s in Specialty.values)
        return f"{obj.display_name} ({specialties or 'no specialty listed'})"


class ConsultRequestForm(forms.Form):
    question = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=5000, help_text="What should the specialist answer?"
    )
    clinical_history = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=10000, required=False)
    priority = forms.ChoiceField(
        choices=Priority.choices, initial=Priority.ROUTINE, help_text="Stat: 1 h, urgent: 4 h, routine: 48 h"
    )
    specialty = forms.ChoiceField(
        choices=[("", "— choose —"), *Specialty.choices], required=False, help_text="Offered to this pool"
    )
    specialist = SpecialistChoiceField(
        queryset=User.objects.none(),
        required=False,
        empty_label="— anyone in the pool —",
        help_text="Or name one specialist",
    )
    jurisdiction = forms.CharField(
        max_length=10, required=False, help_text="Where the patient is, e.g. US-CA or DE; defaults to your institution"
    )
    outside_report = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=20000,
        required=False,
        label="Original (outside) report",
        help_text="The specialist grades agreement against it",
    )
    attachment = forms.FileField(required=False, help_text="PDF, PNG or JPEG")

    def __init__(self, *args, user: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["specialist"].queryset = (
            User.objects.filter(role=Role.SPECIALIST, is_active=True, specialist_profile__approved_at__isnull=False)
            .filter(specialist_profile__accepting_consults=True)
            .select_related("specialist_profile")
        )
        profile = getattr(user, "physician_profile", None)
        if profile is not None and profile.jurisdiction:
            self.fields["jurisdiction"].initial = profile.jurisdiction

    def clean_question(self) -> str:
        value = self.cleaned_data["question"].strip()
        if len(value) < 5:
            raise ValidationError("Ask a clinical question (at least 5 characters).")
        return value

    def clean_attachment(self):
        upload = self.cleaned_data.get("attachment")
        if upload:
            check_attachment(upload)
        return upload

    def clean_jurisdiction(self) -> str:
        value = self.cleaned_data["jurisdiction"].strip().upper()
        if not value:
            profile = getattr(self.user, "physician_profile", None)
            value = profile.jurisdiction if profile is not None else ""
            if not value:
                raise ValidationError("Give the patient's jurisdiction; your profile has none to default to.")
        validate_jurisdiction(value)
        return value

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("specialty") and not data.get("specialist"):
            self.add_error("specialty", "Choose a specialty or name a specialist.")
        specialist, jurisdiction = data.get("specialist"), data.get("jurisdiction")
        if specialist and jurisdiction and not specialist.specialist_profile.licensed_in(jurisdiction):
            self.add_error("specialist", f"{specialist.display_name} is not licensed in {jurisdiction}.")
        return data


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000, required=False)


class QuestionForm(forms.Form):
    question = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)


class AnswerForm(forms.Form):
    answer = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=10000)


class EmptyForm(forms.Form):
    pass


class ParticipantForm(forms.Form):
    email = forms.EmailField(help_text="A physician's or specialist's email address: they join once they accept")


class AttachmentForm(forms.Form):
    file = forms.FileField(help_text="PDF, PNG or JPEG")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        check_attachment(upload)
        return upload


def check_attachment(upload) -> None:
    """Size and content checks before anything is saved (the action checks again)."""
    head = upload.read()
    upload.seek(0)
    try:
        check_size(upload.size)
        sniff_attachment(head)
    except AttachmentRefusedError as exc:
        raise ValidationError(exc.message) from None


class ReportForm(forms.Form):
    findings = forms.CharField(widget=forms.Textarea(attrs={"rows": 10}), max_length=50000, required=False)
    impression = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=20000, required=False)
    recommendations = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=20000, required=False)
    agreement = forms.ChoiceField(
        choices=[("", "— not graded —"), *Agreement.choices],
        required=False,
        label="Agreement with the original report",
    )
    patient_summary = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=10000,
        required=False,
        label="Summary for the patient",
        help_text="Plain language; the patient reads it with the signed report",
    )


class SignForm(forms.Form):
    password = forms.CharField(widget=forms.PasswordInput, required=False, strip=False)
    code = forms.CharField(required=False, max_length=64, label="or authenticator code")
    confirm_identity = forms.BooleanField(
        required=False, label="I have checked that this report belongs to this patient and study"
    )

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("password") and not data.get("code"):
            self.add_error("password", "Enter your password or an authenticator code to sign.")
        return data


class WorklistFilterForm(forms.Form):
    state = forms.ChoiceField(choices=[("", "Any state"), *State.choices], required=False)
    priority = forms.ChoiceField(choices=[("", "Any priority"), *Priority.choices], required=False)
    specialty = forms.ChoiceField(choices=[("", "Any specialty"), *Specialty.choices], required=False)


class EmailPreferencesForm(forms.Form):
    def __init__(self, *args, kinds, current: dict[str, bool], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for kind in kinds:
            self.fields[kind] = forms.BooleanField(
                required=False, initial=current.get(kind, True), label=Notification.Kind(kind).label
            )

"""Reports: templates, and the versions of a consult's report (version 1 answers the consult,
later ones are addenda); a signed version never changes."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from accounts.models import Specialty

from .. import transitions
from ..errors import IllegalTransitionError, ReportSignedError
from .consults import ConsultEvent, ConsultRequest


class Agreement(models.TextChoices):
    AGREE = "agree", "Agree"
    MINOR = "minor", "Minor discrepancy"
    MAJOR = "major", "Major discrepancy"


class ReportTemplate(models.Model):
    """Starting text for a report, for a modality and the body parts it is written for (e.g. CT of
    the chest). A template without body parts fits any study of its modality; one without a
    modality either is the generic template (see ``consultations.reports.templates_for``)."""

    name = models.CharField(max_length=100, unique=True)
    specialty = models.CharField(max_length=32, choices=Specialty.choices)
    modality = models.CharField(
        max_length=16, blank=True, help_text="DICOM modality, e.g. CT, MR, CR, XC; empty: any modality"
    )
    body_parts = models.JSONField(
        default=list,
        blank=True,
        help_text="BodyPartExamined values (or words of the study description) it is written for, "
        'e.g. ["CHEST", "THORAX", "LUNG"]; empty: any body part',
    )
    findings = models.TextField(blank=True)
    impression = models.TextField(blank=True)
    recommendations = models.TextField(blank=True)

    class Meta:
        ordering = ["specialty", "modality", "name"]

    def __str__(self) -> str:
        return self.name


def signer_credentials(user) -> dict:
    """What the signed report says of its signer: name, specialties in words and the
    jurisdictions they are licensed in, as they stood at signing."""
    profile = getattr(user, "specialist_profile", None)
    specialties = dict(Specialty.choices)
    return {
        "name": user.display_name,
        "specialties": [specialties.get(code, code) for code in (profile.specialties if profile else [])],
        "jurisdictions": list(profile.jurisdictions) if profile else [],
    }


class Report(models.Model):
    """One version of a consult's report. Version 1 answers the consult; later versions are
    addenda with a reason. A signed version never changes."""

    TEXT_FIELDS = ("findings", "impression", "recommendations", "agreement", "patient_summary")

    consult = models.ForeignKey(ConsultRequest, on_delete=models.CASCADE, related_name="reports")
    version = models.PositiveSmallIntegerField(default=1)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    template = models.ForeignKey(ReportTemplate, null=True, blank=True, on_delete=models.SET_NULL)
    findings = models.TextField(blank=True)
    impression = models.TextField(blank=True)
    recommendations = models.TextField(blank=True)
    agreement = models.CharField(
        max_length=8, choices=Agreement.choices, blank=True, help_text="Against the original outside report"
    )
    patient_summary = models.TextField(blank=True, help_text="Plain language, for the patient")
    addendum_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    signer_credentials = models.JSONField(
        default=dict, blank=True, help_text="The signer's name, specialties and licences when they signed"
    )
    content_sha256 = models.CharField(max_length=64, blank=True)
    # When the patient may read this signed version (signing + TELECONSULT_REPORT_RELEASE_DELAY_MINUTES,
    # so the referring physician reads it first), and when it was released: the patient told, the
    # PDF filed in the study (consultations.release).
    release_at = models.DateTimeField(null=True, blank=True, db_index=True)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["consult", "version"]
        constraints = [models.UniqueConstraint(fields=["consult", "version"], name="one_report_version")]

    def __str__(self) -> str:
        return f"Report v{self.version} on consult {self.consult_id}"

    def save(self, *args, **kwargs) -> None:
        if self.pk and Report.objects.filter(pk=self.pk, signed_at__isnull=False).exists():
            raise ReportSignedError("A signed report never changes; write an addendum instead.")
        super().save(*args, **kwargs)

    @property
    def is_signed(self) -> bool:
        return self.signed_at is not None

    @property
    def is_addendum(self) -> bool:
        return self.version > 1

    @property
    def signer_line(self) -> str:
        """ "Dr Sam Specialist, Neuroradiology, Chest; licensed in US, DE" as it stood at signing
        (for versions signed before credentials were kept: the signer's profile today)."""
        credentials = self.signer_credentials or (signer_credentials(self.signed_by) if self.signed_by else {})
        if not credentials:
            return "-"
        text = ", ".join([credentials.get("name") or "-", *credentials.get("specialties", [])])
        if credentials.get("jurisdictions"):
            text += f"; licensed in {', '.join(credentials['jurisdictions'])}"
        return text

    def canonical_content(self) -> bytes:
        """The bytes the signature hash covers: the text, the consult, the version and the signer."""
        payload = {field: getattr(self, field) for field in self.TEXT_FIELDS}
        payload.update(
            consult=self.consult_id,
            version=self.version,
            addendum_reason=self.addendum_reason,
            signed_by=self.signed_by_id,
            signed_at=self.signed_at.isoformat() if self.signed_at else None,
        )
        if self.signer_credentials:  # versions signed before credentials were kept hash without them
            payload["signer_credentials"] = self.signer_credentials
        return json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()

    def compute_hash(self) -> str:
        return hashlib.sha256(self.canonical_content()).hexdigest()

    def verify_hash(self) -> bool:
        return self.is_signed and self.compute_hash() == self.content_sha256

    def update_draft(self, *, by, **fields) -> None:
        if self.is_signed:
            raise ReportSignedError("A signed report never changes; write an addendum instead.")
        self.consult.require("write-report", by)
        unknown = set(fields) - set(self.TEXT_FIELDS)
        if unknown:
            raise ValidationError(f"Unknown report fields: {', '.join(sorted(unknown))}.")
        for name, value in fields.items():
            setattr(self, name, value)
        self.save()

    def sign(self, *, by, at=None) -> None:
        """Sign after the caller checked the password or code again (see reports.sign_report)."""
        consult = self.consult
        if self.is_signed:
            raise ReportSignedError("This report is already signed.")
        action = "addendum" if self.is_addendum else "report"
        transitions.require_actor(consult, action, by)
        missing = [name for name in ("findings", "impression") if not getattr(self, name).strip()]
        if missing:
            raise IllegalTransitionError(f"Write the {' and the '.join(missing)} before signing.", fields=missing)
        transitions.require_state(consult, action)
        with transaction.atomic():
            self.signed_by = by
            self.signed_at = at or timezone.now()
            self.signer_credentials = signer_credentials(by)
            self.content_sha256 = self.compute_hash()
            self.release_at = self.signed_at + timedelta(minutes=settings.TELECONSULT_REPORT_RELEASE_DELAY_MINUTES)
            super().save(
                update_fields=[
                    "signed_by",
                    "signed_at",
                    "signer_credentials",
                    "content_sha256",
                    "release_at",
                    "updated_at",
                ]
            )
            if self.is_addendum:
                consult.record_event(
                    ConsultEvent.Kind.ADDENDUM,
                    by,
                    f"Addendum (version {self.version}) signed: {self.addendum_reason}",
                    report_version=self.version,
                )
            else:
                consult.mark_reported(by=by, report=self)

"""Patients, studies, series and instances, and who may see them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Patient(models.Model):
    """A patient as the images name them: PatientID within an issuer."""

    patient_id = models.CharField("PatientID", max_length=64, blank=True)
    issuer = models.CharField("IssuerOfPatientID", max_length=64, blank=True)
    name = models.CharField(max_length=324, blank=True, help_text="DICOM person name, e.g. Doe^Jane")
    birth_date = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=16, blank=True)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="patient_records",
        help_text="The patient's own portal account, once linked",
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["patient_id", "issuer"], name="unique_patient_id_issuer")]
        ordering = ["name", "patient_id"]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.patient_id or 'no ID'})"

    @property
    def display_name(self) -> str:
        return self.name.replace("^", " ").strip() or "Unnamed patient"


class StudyQuerySet(models.QuerySet):
    def visible_to(self, user) -> StudyQuerySet:
        """Studies the user may see; the one rule every route reads (see studies.permissions)."""
        if not user or not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_admin:
            return self
        now = timezone.now()
        granted = AccessGrant.objects.active(now).filter(user=user).values("study_id")
        return self.filter(Q(pk__in=granted) | Q(patient__account=user))


class Study(models.Model):
    study_instance_uid = models.CharField("StudyInstanceUID", max_length=64, unique=True)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    study_date = models.DateField(null=True, blank=True, db_index=True)
    study_time = models.TimeField(null=True, blank=True)
    description = models.CharField(max_length=256, blank=True)
    accession_number = models.CharField(max_length=64, blank=True, db_index=True)
    study_id = models.CharField("StudyID", max_length=32, blank=True)
    referring_physician = models.CharField(max_length=324, blank=True)
    modalities = models.CharField(max_length=128, blank=True, help_text="ModalitiesInStudy, backslash-separated")
    num_series = models.PositiveIntegerField(default=0)
    num_instances = models.PositiveIntegerField(default=0)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="uploaded_studies"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = StudyQuerySet.as_manager()

    class Meta:
        ordering = ["-study_date", "-created_at"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return f"{self.description or 'Study'} {self.study_date or ''} ({self.patient.display_name})"

    @property
    def modality_list(self) -> list[str]:
        return [m for m in self.modalities.split("\\") if m]


class Series(models.Model):
    series_instance_uid = models.CharField("SeriesInstanceUID", max_length=64, unique=True)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    modality = models.CharField(max_length=16, blank=True, db_index=True)
    series_number = models.IntegerField(null=True, blank=True)
    description = models.CharField(max_length=256, blank=True)
    body_part = models.CharField(max_length=64, blank=True)
    num_instances = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["series_number", "created_at"]
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return f"{self.modality} {self.series_number or ''} {self.description}".strip()


class Instance(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for thumbnail"
        READY = "ready", "Ready"
        NO_IMAGE = "no_image", "No image (document or structured data)"
        FAILED = "failed", "Could not render"

    sop_instance_uid = models.CharField("SOPInstanceUID", max_length=64, unique=True)
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_class_uid = models.CharField("SOPClassUID", max_length=64)
    instance_number = models.IntegerField(null=True, blank=True)
    transfer_syntax_uid = models.CharField(max_length=64)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(default=1)
    bits_allocated = models.PositiveSmallIntegerField(null=True, blank=True)
    photometric_interpretation = models.CharField(max_length=32, blank=True)
    has_pixel_data = models.BooleanField(default=False)
    file = models.FileField(upload_to="dicom/", max_length=255)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    metadata = models.JSONField(
        default=dict, blank=True, help_text="DICOM JSON of the header; bulk data replaced by BulkDataURI at answer time"
    )
    thumbnail = models.FileField(upload_to="thumbnails/", max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    failure_reason = models.TextField(blank=True)
    render_attempts = models.PositiveSmallIntegerField(default=0)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["instance_number", "created_at"]

    def __str__(self) -> str:
        return self.sop_instance_uid

    @property
    def study(self) -> Study:
        return self.series.study

    def mark_rendered(self, thumbnail_name: str) -> None:
        self.thumbnail.name = thumbnail_name
        self.status = self.Status.READY
        self.failure_reason = ""
        self.save(update_fields=["thumbnail", "status", "failure_reason"])

    def mark_no_image(self) -> None:
        self.status = self.Status.NO_IMAGE
        self.failure_reason = ""
        self.save(update_fields=["status", "failure_reason"])

    def mark_failed(self, *, reason: str) -> None:
        self.status = self.Status.FAILED
        self.failure_reason = reason[:2000]
        self.save(update_fields=["status", "failure_reason"])


class AccessGrantQuerySet(models.QuerySet):
    def active(self, at=None) -> AccessGrantQuerySet:
        at = at or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(Q(until__isnull=True) | Q(until__gt=at))


class AccessGrant(models.Model):
    """One reason one user may see one study. Every permission check and the patient's
    "who has access" page read these rows."""

    class Reason(models.TextChoices):
        UPLOADER = "uploader", "Uploaded the study"
        SHARED = "shared", "Shared by a colleague"
        CONSULT = "consult", "Consult participant"
        PATIENT_GRANT = "patient_grant", "Granted by the patient"
        ADMIN = "admin", "Granted by an administrator"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="study_grants")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="grants")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    # What the grant came from (e.g. a consult's id), so the same reason can be revoked per source.
    source = models.CharField(max_length=64, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    since = models.DateTimeField(default=timezone.now)
    until = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = AccessGrantQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["user", "study"])]
        ordering = ["since"]

    def __str__(self) -> str:
        return f"{self.user} may see {self.study_id} ({self.get_reason_display()})"

    def revoke(self, *, by) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.revoked_by = by
            self.save(update_fields=["revoked_at", "revoked_by"])

"""Patients, studies, series and instances, and who may see them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Concat
from django.utils import timezone

from accounts.models import EmailInvitation

from .paging import Branch


class Patient(models.Model):
    """A patient as the images of one practice name them: PatientID within an issuer, within the
    practice. The same MRN in two practices is two records that never meet."""

    practice = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="patients")
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
        constraints = [
            models.UniqueConstraint(fields=["practice", "patient_id", "issuer"], name="unique_patient_per_practice")
        ]
        # QIDO's PatientID across the practices a user sees (the constraint's index starts with practice).
        indexes = [models.Index(fields=["patient_id"], name="patient_id_any_practice")]
        ordering = ["name", "patient_id"]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.patient_id or 'no ID'})"

    @property
    def display_name(self) -> str:
        return self.name.replace("^", " ").strip() or "Unnamed patient"


class AnyOf(models.Lookup):
    """``column = ANY(ARRAY(subquery))`` on PostgreSQL, ``column IN (subquery)`` elsewhere.

    PostgreSQL plans ``IN (subquery)`` inside an OR as a hashed filter it cannot size, and so
    walks a whole index of studies for a physician who sees 5,000 of a million; ``ANY(ARRAY(...))``
    is computed once and becomes an index condition (a bitmap scan of the primary key).
    """

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        rhs = rhs if rhs.startswith("(") else f"({rhs})"
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(ARRAY{rhs})", (*lhs_params, *rhs_params)
        return f"{lhs} IN {rhs}", (*lhs_params, *rhs_params)


class StudyQuerySet(models.QuerySet):
    def visible_to(self, user) -> StudyQuerySet:
        """Studies the user may see; the one rule every route reads (see studies.permissions).

        Three paths, each a plain index condition: the studies of the user's practices (a column
        compared with a short list), the studies of their access grants (a hashed subquery: grants
        are the exceptions to the practice rule, consults and shares, not one per study), and the
        studies of the patient records linked to their account.
        """
        if not user or not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_admin:
            return self
        now = timezone.now()
        granted = AccessGrant.objects.active(now).filter(user=user).order_by().values("study_id")
        own_records = Patient.objects.filter(account=user).order_by().values("pk")
        rule = Q(AnyOf(F("pk"), granted)) | Q(AnyOf(F("patient_id"), own_records))
        practices = user.practice_ids() if user.role != "patient" else []
        if practices:
            rule |= Q(practice_id__in=practices)
        return self.filter(rule)

    def visible_branches(self, user) -> list[Branch] | None:
        """``visible_to`` as the union of its three paths, for searches that read a first page in
        order (see studies.paging.ordered_keys); None where one query is as good (administrators
        see everything, nobody signed in sees nothing).

        The grants' path is walked along an index of the user's active grants, which keep a copy
        of their study's date, time and upload time, a window of studies at a time."""
        if not user or not user.is_authenticated or not user.is_active or user.is_admin:
            return None
        grants = AccessGrant.objects.active().filter(user=user)
        branches = [Branch(self, walk=grants, names=GRANT_SORT_COPIES)]
        # Linked records are a patient's (a handful, or none for clinicians): looked up first, so
        # that a search does not read a path that holds nothing.
        own_records = list(Patient.objects.filter(account=user).values_list("pk", flat=True))
        if own_records:
            branches.append(Branch(self.filter(patient__in=own_records)))
        practices = user.practice_ids() if user.role != "patient" else []
        if practices:
            branches.append(Branch(self.filter(practice_id__in=practices)))
        return branches


class Study(models.Model):
    study_instance_uid = models.CharField("StudyInstanceUID", max_length=64, unique=True)
    practice = models.ForeignKey("accounts.Organization", on_delete=models.PROTECT, related_name="studies")
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
    identities = models.PositiveSmallIntegerField(
        default=1, help_text="How many patients the images name (studies.identity); more than 1 is flagged"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="uploaded_studies"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = StudyQuerySet.as_manager()

    class Meta:
        ordering = ["-study_date", "-created_at"]
        verbose_name_plural = "studies"
        # QIDO's order (studies.dicomweb). The study list's order, with NULLS LAST, is an index of
        # migration 0006 on PostgreSQL only (SQLite takes no NULLS LAST in an index).
        indexes = [
            models.Index(F("study_date").desc(), F("study_time").desc(), F("id").desc(), name="study_qido_order"),
            # The same orders within a practice (studies.paging.ordered_keys reads a practice's
            # first page along them), and the study list's default, newest upload first.
            models.Index(
                F("practice"),
                F("study_date").desc(),
                F("study_time").desc(),
                F("id").desc(),
                name="study_practice_qido",
            ),
            models.Index(F("practice"), F("created_at").desc(), F("id").desc(), name="study_practice_uploaded"),
        ]

    def __str__(self) -> str:
        return f"{self.description or 'Study'} {self.study_date or ''} ({self.patient.display_name})"

    @property
    def modality_list(self) -> list[str]:
        return [m for m in self.modalities.split("\\") if m]

    @property
    def mixed_identity(self) -> bool:
        """The images name more than one patient: shown wherever the study is, confirmed at signing."""
        return self.identities > 1


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


class HeaderJSONField(models.JSONField):
    """A JSONField that bulk inserts with one placeholder per row.

    On PostgreSQL Django bulk inserts through UNNEST of one array per column, and the client quotes
    the whole array of documents as text, escaping every quote of every header in Python: most of
    the cost of storing a batch of instances. A placeholder of its own keeps each document a
    parameter of its own.
    """

    def get_placeholder(self, value, compiler, connection) -> str:
        return "%s"


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
    metadata = HeaderJSONField(
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

    def containing(self, *fragments: str) -> AccessGrantQuerySet:
        """Grants whose study's search text holds every fragment, in any case: a superset of the
        studies whose patient name, patient ID or accession number holds them (searches narrow a
        walk of grants with it before reading studies; see StudyQuerySet.visible_branches)."""
        grants = self
        for fragment in fragments:
            if fragment:
                grants = grants.filter(study_search_text__icontains=fragment)
        return grants

    def copy_study_keys(self) -> int:
        """Give these grants their study's copies (sort keys and search text) in one statement: for
        grants written in bulk without them, and after a study or its patient record changed
        (``grant_access`` and ``save`` set them one by one)."""
        of_study = Study.objects.filter(pk=OuterRef("study_id"))
        text = Concat(
            "patient__name",
            Value(SEARCH_TEXT_SEPARATOR),
            "patient__patient_id",
            Value(SEARCH_TEXT_SEPARATOR),
            "accession_number",
            output_field=models.TextField(),
        )
        return self.update(
            study_date=Subquery(of_study.values("study_date")[:1]),
            study_time=Subquery(of_study.values("study_time")[:1]),
            study_created_at=Subquery(of_study.values("created_at")[:1]),
            study_search_text=Coalesce(Subquery(of_study.annotate(text=text).values("text")[:1]), Value("")),
        )


# Between the fields of a grant's search text: no name, ID or accession number holds one.
SEARCH_TEXT_SEPARATOR = "\n"


def study_search_text(study: Study) -> str:
    """What a grant keeps of its study for narrowing searches: the patient's name and ID and the
    accession number, as stored (searches compare them case-insensitively, as the study's own)."""
    return SEARCH_TEXT_SEPARATOR.join([study.patient.name, study.patient.patient_id, study.accession_number])


# Study columns a search orders by -> the grant's copy of them (see AccessGrant).
GRANT_SORT_COPIES = {
    "study_date": "study_date",
    "study_time": "study_time",
    "created_at": "study_created_at",
    "pk": "study_id",
}


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
    # Copies of the study's sort keys, so a user's grants can be read in a study search's order
    # from an index of their own (see StudyQuerySet.visible_branches), and of the text a search
    # by patient or accession number reads, so such a search skips the grants that cannot match
    # before it reads their studies. Set with the grant, and again whenever the study or its
    # patient record is saved or merged (studies.signals).
    study_date = models.DateField(null=True, blank=True)
    study_time = models.TimeField(null=True, blank=True)
    study_created_at = models.DateTimeField(null=True, blank=True)
    study_search_text = models.TextField(blank=True, default="")

    objects = AccessGrantQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["user", "study"]),
            models.Index(
                F("user"),
                F("study_date").desc(),
                F("study_time").desc(),
                F("study").desc(),
                name="grant_user_study_order",
                condition=Q(revoked_at__isnull=True),
            ),
            models.Index(
                F("user"),
                F("study_created_at").desc(),
                F("study").desc(),
                name="grant_user_study_uploaded",
                condition=Q(revoked_at__isnull=True),
            ),
        ]
        ordering = ["since"]

    def __str__(self) -> str:
        return f"{self.user} may see {self.study_id} ({self.get_reason_display()})"

    def save(self, *args, **kwargs) -> None:
        if self.study_created_at is None and self.study_id is not None:
            self.copy_study_keys(self.study)
        super().save(*args, **kwargs)

    def copy_study_keys(self, study: Study) -> None:
        self.study_date, self.study_time, self.study_created_at = study.study_date, study.study_time, study.created_at
        self.study_search_text = study_search_text(study)

    def revoke(self, *, by) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.revoked_by = by
            self.save(update_fields=["revoked_at", "revoked_by"])


class PatientInvitation(EmailInvitation):
    """A practice member asked the person at ``email`` to link their portal account to ``patient``.

    Nothing is linked until a patient account that confirmed that address accepts (or it declines);
    see studies.invitations.
    """

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="invitations")
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    declined_at = models.DateTimeField(null=True, blank=True)

    ENDINGS = (("accepted_at", "accepted"), ("declined_at", "declined"))

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["email"])]

    def __str__(self) -> str:
        return f"Invitation of {self.email} to patient {self.patient_id}"

    def accept(self, *, by, at=None) -> None:
        at = at or timezone.now()
        status = self.status_at(at)
        if status != "pending":
            raise ValueError(f"An {status} invitation cannot be accepted.")
        self.accepted_at = at
        self.accepted_by = by
        self.save(update_fields=["accepted_at", "accepted_by"])

    def decline(self, *, at=None) -> None:
        at = at or timezone.now()
        status = self.status_at(at)
        if status != "pending":
            raise ValueError(f"An {status} invitation cannot be declined.")
        self.declined_at = at
        self.save(update_fields=["declined_at"])


class PatientMerge(models.Model):
    """What an administrator merged: the record that disappeared and where its studies went."""

    into = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="merges")
    merged_pk = models.PositiveIntegerField()
    merged_patient_id = models.CharField(max_length=64, blank=True)
    merged_issuer = models.CharField(max_length=64, blank=True)
    merged_name = models.CharField(max_length=324, blank=True)
    studies_moved = models.JSONField(default=list, help_text="StudyInstanceUIDs moved to the kept record")
    merged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    merged_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-merged_at"]

    def __str__(self) -> str:
        return f"Patient {self.merged_pk} merged into {self.into_id}"


class ShareLinkQuerySet(models.QuerySet):
    def usable(self, at=None) -> ShareLinkQuerySet:
        at = at or timezone.now()
        return self.filter(revoked_at__isnull=True, locked_at__isnull=True, expires_at__gt=at)


class ShareLink(models.Model):
    """A link that shows one study to whoever holds it, without an account.

    Only a SHA-256 of the token is stored (plus a short prefix to tell links apart), so the full
    link exists only in the answer that created it. A passcode is stored hashed; too many wrong
    tries lock the link.
    """

    MAX_FAILED_ATTEMPTS = 5

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="share_links")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(max_length=8)
    label = models.CharField(max_length=200, blank=True, help_text="Who the link is for, as a reminder")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    passcode_hash = models.CharField(max_length=256, blank=True)
    allow_download = models.BooleanField(default=False)
    # The study's latest signed report (released to the patient) goes with the images, also one
    # signed after the link was made (studies.sharing.reports).
    include_report = models.BooleanField(default=False)
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    locked_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Share link {self.token_prefix}… for study {self.study_id}"

    @property
    def has_passcode(self) -> bool:
        return bool(self.passcode_hash)

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.locked_at:
            return "locked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "active"

    @property
    def is_usable(self) -> bool:
        return self.status == "active"

    def revoke(self, *, by) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.revoked_by = by
            self.save(update_fields=["revoked_at", "revoked_by"])


class AccessEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AccessEventImmutableError("Access events are never changed.")

    def delete(self):
        raise AccessEventImmutableError("Access events are never deleted.")


class AccessEventImmutableError(Exception):
    """Access history is append-only."""


class AccessEvent(models.Model):
    """One access to patient data: who (an account or a share link), what, from where, when.

    Append-only: the application never changes or deletes a row.
    """

    class Action(models.TextChoices):
        STUDY_VIEW = "study_view", "Opened the study page"
        VIEWER_LOAD = "viewer_load", "Opened the viewer"
        WADO_RETRIEVE = "wado_retrieve", "Retrieved DICOM files"
        METADATA = "metadata", "Read image metadata"
        FRAMES = "frames", "Loaded image frames"
        RENDERED = "rendered", "Loaded rendered images"
        THUMBNAIL = "thumbnail", "Loaded thumbnails"
        FILE = "file", "Downloaded a DICOM file"
        DOWNLOAD = "download", "Downloaded the study"
        REPORT_VIEW = "report_view", "Read the report"
        REPORT_PDF = "report_pdf", "Downloaded the report PDF"
        SHARE_OPEN = "share_open", "Opened a share link"
        API_READ = "api_read", "Read through the API"
        LINK_REQUESTED = "link_requested", "Asked to link a portal account"
        LINK_ACCEPTED = "link_accepted", "Accepted the link to a record"
        LINK_DECLINED = "link_declined", "Declined the link to a record"
        UNLINKED = "unlinked", "Unlinked a portal account"
        DELETED = "deleted", "Deleted images"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="access_events"
    )
    share_link = models.ForeignKey(
        ShareLink, null=True, blank=True, on_delete=models.SET_NULL, related_name="access_events"
    )
    # Kept as text too, so the history still names who it was if the account or link goes away.
    actor = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices, db_index=True)
    study = models.ForeignKey(Study, null=True, on_delete=models.SET_NULL, related_name="access_events")
    study_uid = models.CharField(max_length=64, db_index=True, blank=True)
    # A patient record's own events (linking a portal account) name the record rather than a study.
    patient = models.ForeignKey(Patient, null=True, blank=True, on_delete=models.SET_NULL, related_name="access_events")
    object_id = models.CharField(max_length=128, blank=True, help_text="A UID or a report id")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)

    objects = AccessEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["study", "at"])]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.study_uid} at {self.at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None or kwargs.get("force_update"):
            raise AccessEventImmutableError("Access events are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AccessEventImmutableError("Access events are never deleted.")

    @property
    def who(self) -> str:
        return self.actor or "Unknown"


class DicomNode(models.Model):
    """A remote DICOM application entity (a PACS, a modality) allowed to send studies over DIMSE.

    Only known senders are accepted: an association is accepted when its calling AE title names an
    enabled node and it comes from that node's host. What it sends is filed under ``practice`` as
    if ``owner`` had uploaded it (same checks, refusals and access). Rules and changes live in
    ``studies.nodes``."""

    ae_title = models.CharField("AE title", max_length=16)
    host = models.CharField(max_length=253, help_text="The address or host name associations come from")
    port = models.PositiveIntegerField(help_text="The node's own DIMSE port (for sending results back)")
    practice = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="dicom_nodes")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="dicom_nodes",
        help_text="The account the node's studies are filed under, a member of the practice",
    )
    enabled = models.BooleanField(default=True)
    send_results = models.BooleanField(default=False, help_text="Send signed results back to the node")

    class Kind(models.TextChoices):
        DIMSE = "dimse", "DICOM (DIMSE)"
        DICOMWEB = "dicomweb", "DICOMweb server"

    class Retrieve(models.TextChoices):
        MOVE = "move", "C-MOVE to the portal's receiver"
        GET = "get", "C-GET on the query's association"

    # How priors are searched and pulled (studies.priors): DIMSE C-FIND and C-MOVE/C-GET at
    # host:port, or QIDO-RS and WADO-RS at ``dicomweb_url``.
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DIMSE)
    retrieve_with = models.CharField(max_length=4, choices=Retrieve.choices, default=Retrieve.MOVE)
    dicomweb_url = models.URLField("DICOMweb URL", max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["ae_title", "host", "pk"]
        constraints = [models.UniqueConstraint(fields=["ae_title", "host"], name="dicom_node_ae_title_host")]

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


class RejectedAssociation(models.Model):
    """Associations the DICOM receiver turned away, one row per calling AE title, address and
    reason, counted (a sender retrying every minute is one row, not thousands). ``node`` and
    ``practice`` are set when the AE title is a known node's, so its practice admins see it too."""

    class Reason(models.TextChoices):
        UNKNOWN_AE = "unknown_ae", "Unknown calling AE title"
        WRONG_ADDRESS = "wrong_address", "Known AE title from another address"
        DISABLED = "disabled", "Node disabled"
        OWNER_UNAVAILABLE = "owner_unavailable", "The node's owner may no longer upload to its practice"

    calling_ae = models.CharField(max_length=64)
    called_ae = models.CharField(max_length=64, blank=True)
    address = models.GenericIPAddressField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    node = models.ForeignKey(
        DicomNode, null=True, blank=True, on_delete=models.SET_NULL, related_name="rejected_associations"
    )
    practice = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    count = models.PositiveIntegerField(default=1)
    first_at = models.DateTimeField(default=timezone.now)
    last_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-last_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["calling_ae", "address", "reason"], name="rejected_association_ae_address_reason"
            )
        ]

    def __str__(self) -> str:
        return f"{self.calling_ae} from {self.address}: {self.reason} x{self.count}"


class NamedShare(EmailInvitation):
    """A study shared with a clinician named by email (studies.sharing.named).

    When a clinician's account confirmed the address, the share is an access grant at once
    (``grant``, its source ``named-share:<pk>``); otherwise it is an invitation to that address,
    which becomes the grant when the person signs up as a clinician and confirms it. The sharer
    ends either: revoking ends the grant, withdrawing ends an open invitation."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="named_shares")
    shared_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    grant = models.OneToOneField(
        AccessGrant, null=True, blank=True, on_delete=models.SET_NULL, related_name="named_share"
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # Withdrawn first: a share that was granted and then revoked reads "withdrawn".
    ENDINGS = (("withdrawn_at", "withdrawn"), ("accepted_at", "accepted"))

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["email"])]

    def __str__(self) -> str:
        return f"Study {self.study_id} shared with {self.email}"

    @property
    def source(self) -> str:
        return f"named-share:{self.pk}"


# -- priors pulled from nodes, and results sent back (studies.priors, studies.sending) ------------


class PriorRetrieval(models.Model):
    """One study pulled from a DICOM node for a clinician, with its progress.

    Filed under ``practice`` as ``requested_by``'s upload, whatever the node's own practice: the
    receiver consults the running retrievals of the calling node by StudyInstanceUID when C-MOVE
    sub-operations arrive (``studies.priors.filing_for``). Once in, ``grant_user_ids`` get access
    for ``grant_reason``/``grant_source`` (a consult's care team). Progress is the C-MOVE/C-GET
    sub-operation counts (instances for WADO-RS), written as the answers arrive."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Retrieving"
        DONE = "done", "Retrieved"
        PARTIAL = "partial", "Retrieved in part"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    node = models.ForeignKey(DicomNode, on_delete=models.CASCADE, related_name="retrievals")
    practice = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    target = models.CharField(max_length=64, help_text="What it was pulled for, e.g. consult:12 or patient:5")
    study_instance_uid = models.CharField("StudyInstanceUID", max_length=64)
    description = models.CharField(max_length=256, blank=True, help_text="What the search said of it")
    grant_user_ids = models.JSONField(default=list, blank=True)
    grant_reason = models.CharField(max_length=20, blank=True)
    grant_source = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    remaining = models.PositiveIntegerField(null=True, blank=True)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    warning = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    study = models.ForeignKey(Study, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["node", "study_instance_uid", "status"], name="prior_node_study_status"),
            models.Index(fields=["target", "-created_at"], name="prior_target_created"),
        ]

    def __str__(self) -> str:
        return f"{self.study_instance_uid} from {self.node_id}: {self.status}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def percent(self) -> int:
        """How far along, 0 to 100; 100 once finished, whatever the outcome."""
        if not self.is_active:
            return 100
        done = self.completed + self.failed + self.warning
        total = done + (self.remaining or 0)
        return int(done * 100 / total) if total else 0

    def mark_running(self) -> None:
        self.status, self.started_at = self.Status.RUNNING, timezone.now()
        self.save(update_fields=["status", "started_at"])

    def record_progress(self, *, remaining=None, completed=None, failed=None, warning=None) -> None:
        """Counts from a pending C-MOVE/C-GET answer (or a WADO-RS instance); unset ones are kept."""
        for name, value in (
            ("remaining", remaining),
            ("completed", completed),
            ("failed", failed),
            ("warning", warning),
        ):
            if value is not None:
                setattr(self, name, int(value))
        self.save(update_fields=["remaining", "completed", "failed", "warning"])

    def finish(self, *, study=None, error: str = "") -> None:
        if error and not self.completed and not self.warning:
            self.status = self.Status.FAILED
        elif error or self.failed:
            self.status = self.Status.PARTIAL
        else:
            self.status = self.Status.DONE
        self.study, self.error, self.finished_at, self.remaining = study, error, timezone.now(), 0
        self.save(update_fields=["status", "study", "error", "finished_at", "remaining"])


class NodeStudy(models.Model):
    """A study that came from a node (sent to the receiver, or pulled from it): where its results go back."""

    node = models.ForeignKey(DicomNode, on_delete=models.CASCADE, related_name="studies_received")
    study_instance_uid = models.CharField("StudyInstanceUID", max_length=64, db_index=True)
    first_at = models.DateTimeField(default=timezone.now)
    last_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["node", "study_instance_uid"], name="node_study_once")]

    def __str__(self) -> str:
        return f"{self.study_instance_uid} from {self.node_id}"


class ResultSend(models.Model):
    """One object the portal made (a signed report's PDF, a measurement SR) sent to a node with
    C-STORE by a Celery task, retried with back-off; its state is shown on the consult page."""

    class Status(models.TextChoices):
        PENDING = "pending", "Sending"
        RETRYING = "retrying", "Failed, retrying"
        SENT = "sent", "Sent to PACS"
        FAILED = "failed", "Failed"

    node = models.ForeignKey(DicomNode, on_delete=models.CASCADE, related_name="sends")
    study_instance_uid = models.CharField("StudyInstanceUID", max_length=64)
    sop_instance_uid = models.CharField("SOPInstanceUID", max_length=64)
    label = models.CharField(max_length=128, help_text="What it is, in words: Report PDF (version 1)")
    source = models.CharField(max_length=64, db_index=True, help_text="What it belongs to, e.g. consult:12")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["node", "sop_instance_uid"], name="result_send_node_instance")]

    def __str__(self) -> str:
        return f"{self.label} to {self.node_id}: {self.status}"

    def mark(self, status: str, error: str = "") -> None:
        self.status, self.error, self.updated_at = status, error, timezone.now()
        if status == self.Status.SENT:
            self.sent_at = self.updated_at
        self.save(update_fields=["status", "error", "updated_at", "sent_at", "attempts"])

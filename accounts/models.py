"""Users, roles and professional profiles."""

from __future__ import annotations

import datetime as dt
import unicodedata
import zoneinfo

from django.conf import settings
from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    PHYSICIAN = "physician", "Physician"
    SPECIALIST = "specialist", "Specialist"
    PATIENT = "patient", "Patient"
    ADMIN = "admin", "Administrator"


# Roles that handle other people's data and so must use a second factor when MFA is required.
MFA_ROLES = frozenset({Role.PHYSICIAN, Role.SPECIALIST, Role.ADMIN})


class Specialty(models.TextChoices):
    NEURORADIOLOGY = "neuroradiology", "Neuroradiology"
    CHEST = "chest", "Chest"
    ABDOMINAL = "abdominal", "Abdominal"
    MUSCULOSKELETAL = "musculoskeletal", "Musculoskeletal"
    BREAST = "breast", "Breast"
    CARDIAC = "cardiac", "Cardiac"
    PAEDIATRIC = "paediatric", "Paediatric"
    NUCLEAR_MEDICINE = "nuclear_medicine", "Nuclear medicine"
    DERMATOLOGY = "dermatology", "Dermatology"
    GENERAL_RADIOLOGY = "general_radiology", "General radiology"


# Unicode categories refused in a person's name: control characters (newline, tab, NUL, escape...)
# and the line and paragraph separators. A name travels into email subjects, where a line break
# is a header injection Django refuses to send, and into PDFs and DICOM, where it breaks the layout.
NAME_REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def validate_person_name(value: str) -> None:
    """A person's name is one line of printable text (letters of any script, marks, spaces)."""
    bad = sorted({f"U+{ord(ch):04X}" for ch in value if unicodedata.category(ch) in NAME_REFUSED_CATEGORIES})
    if bad:
        raise ValidationError(
            f"A name cannot contain line breaks, tabs or other control characters (found {', '.join(bad)}).",
            code="control_characters",
        )


# Free text typed by a person (a reason, a question, an answer) keeps its line breaks and tabs, but
# no other control character (NUL above all: PostgreSQL refuses it in text) and no lone surrogate
# (a JSON "\ud800", which no database can store as UTF-8).
FREE_TEXT_ALLOWED_CONTROLS = frozenset("\n\r\t")


def validate_free_text(value: str) -> None:
    """Free text may span lines but holds no control characters beyond line breaks and tabs."""
    bad = sorted(
        {
            f"U+{ord(ch):04X}"
            for ch in value
            if (unicodedata.category(ch) == "Cc" and ch not in FREE_TEXT_ALLOWED_CONTROLS)
            or unicodedata.category(ch) == "Cs"
        }
    )
    if bad:
        raise ValidationError(
            f"The text cannot contain control characters other than line breaks and tabs (found {', '.join(bad)}).",
            code="control_characters",
        )


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra.update(is_staff=True, is_superuser=True, role=Role.ADMIN)
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """A person who signs in with their email address."""

    username = None
    first_name = None
    last_name = None
    email = models.EmailField("email address", unique=True)
    name = models.CharField("display name", max_length=150, blank=True, validators=[validate_person_name])
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.PATIENT)
    default_practice = models.ForeignKey(
        "accounts.Organization",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The practice uploads are filed under when none is named",
    )

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []
    objects = UserManager()

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.name or self.email

    def get_full_name(self) -> str:
        return self.display_name

    def get_short_name(self) -> str:
        return self.display_name

    @property
    def is_physician(self) -> bool:
        return self.role == Role.PHYSICIAN

    @property
    def is_specialist(self) -> bool:
        return self.role == Role.SPECIALIST

    @property
    def is_patient(self) -> bool:
        return self.role == Role.PATIENT

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN or self.is_superuser

    @property
    def needs_mfa(self) -> bool:
        return self.role in MFA_ROLES or self.is_superuser

    def practice_ids(self) -> list[int]:
        """The practices this account is a member of (cached on the object for the request)."""
        cached = self.__dict__.get("_practice_ids")
        if cached is None:
            cached = list(self.memberships.values_list("practice_id", flat=True)) if self.pk else []
            self.__dict__["_practice_ids"] = cached
        return cached

    def forget_practices(self) -> None:
        self.__dict__.pop("_practice_ids", None)

    @property
    def has_clinical_access(self) -> bool:
        """A clinician works with patients once a practice has admitted them (administrators always)."""
        if not self.is_active:
            return False
        return self.is_admin or (self.role in (Role.PHYSICIAN, Role.SPECIALIST) and bool(self.practice_ids()))

    @property
    def awaiting_practice(self) -> bool:
        """A clinician no practice has admitted yet."""
        return self.role in (Role.PHYSICIAN, Role.SPECIALIST) and not self.practice_ids()

    @property
    def may_take_consults(self) -> bool:
        profile = getattr(self, "specialist_profile", None)
        return (
            self.is_specialist
            and self.is_active
            and profile is not None
            and profile.is_approved
            and not profile.is_suspended
            and self.has_clinical_access
        )


def validate_jurisdiction(value: str) -> None:
    """ISO 3166-1 alpha-2 (``DE``) or ISO 3166-2 (``US-CA``) code."""
    country, _, region = value.partition("-")
    if not (len(country) == 2 and country.isalpha() and country.isupper()):
        raise ValidationError(f"{value!r} is not an ISO 3166 code such as 'DE' or 'US-CA'.")
    if region and not (1 <= len(region) <= 3 and region.isalnum() and region.upper() == region):
        raise ValidationError(f"{value!r} is not an ISO 3166-2 code such as 'US-CA'.")


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known time zone such as 'Europe/Berlin'.")


def validate_on_call(value: object) -> None:
    """On-call windows: ``[{"day": 0-6 (Monday=0), "start": "HH:MM", "end": "HH:MM"}, ...]``.

    An ``end`` earlier than ``start`` runs past midnight into the next day.
    """
    if not isinstance(value, list):
        raise ValidationError("On-call windows must be a list.")
    for window in value:
        if not isinstance(window, dict) or set(window) != {"day", "start", "end"}:
            raise ValidationError("Each on-call window needs exactly day, start and end.")
        if not isinstance(window["day"], int) or not 0 <= window["day"] <= 6:
            raise ValidationError("An on-call day is 0 (Monday) to 6 (Sunday).")
        for key in ("start", "end"):
            try:
                dt.time.fromisoformat(window[key])
            except (TypeError, ValueError):
                raise ValidationError(f"On-call {key} must be a time such as '08:00'.") from None


class SpecialistProfile(models.Model):
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="specialist_profile")
    specialties = models.JSONField(default=list, blank=True, help_text="Specialty codes")
    jurisdictions = models.JSONField(default=list, blank=True, help_text="ISO 3166 codes, e.g. US-CA, DE")
    accepting_consults = models.BooleanField(default=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    on_call = models.JSONField(default=list, blank=True, validators=[validate_on_call])
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # A suspended specialist keeps their account and licences but is offered and may claim nothing
    # (accounts.specialists: suspend, reinstate).
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspension_reason = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"Specialist profile of {self.user}"

    @property
    def is_suspended(self) -> bool:
        return self.suspended_at is not None

    @property
    def is_approved(self) -> bool:
        return self.approved_at is not None

    def clean(self) -> None:
        valid = set(Specialty.values)
        unknown = [s for s in self.specialties if s not in valid]
        if unknown:
            raise ValidationError({"specialties": f"Unknown specialties: {', '.join(map(str, unknown))}."})
        for code in self.jurisdictions:
            try:
                validate_jurisdiction(code)
            except ValidationError as exc:
                raise ValidationError({"jurisdictions": exc.messages}) from None

    def approve(self, *, by: User | None) -> None:
        if self.approved_at is None:
            self.approved_at = timezone.now()
            self.approved_by = by
            self.save(update_fields=["approved_at", "approved_by"])

    def licensed_in(self, jurisdiction: str) -> bool:
        """Licensed for ``US-CA`` when licensed for ``US-CA`` or the whole of ``US``."""
        country = jurisdiction.split("-")[0]
        return jurisdiction in self.jurisdictions or country in self.jurisdictions

    def is_on_call(self, at: dt.datetime | None = None) -> bool:
        local = (at or timezone.now()).astimezone(zoneinfo.ZoneInfo(self.time_zone))
        now_t = local.time()
        for window in self.on_call:
            start, end = dt.time.fromisoformat(window["start"]), dt.time.fromisoformat(window["end"])
            if start <= end:
                if window["day"] == local.weekday() and start <= now_t < end:
                    return True
            else:  # past midnight
                if window["day"] == local.weekday() and now_t >= start:
                    return True
                if (window["day"] + 1) % 7 == local.weekday() and now_t < end:
                    return True
        return False


class PhysicianProfile(models.Model):
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="physician_profile")
    institution = models.CharField(max_length=200, blank=True)
    jurisdiction = models.CharField(
        max_length=10, blank=True, validators=[validate_jurisdiction], help_text="Where the institution is (ISO 3166)"
    )

    def __str__(self) -> str:
        return f"Physician profile of {self.user}"


class EmailInvitation(models.Model):
    """An invitation sent to an email address: answered once (``ENDINGS``: the timestamp fields that
    end it, and the status each gives), and lapsing ``TELECONSULT_INVITATION_DAYS`` after it was sent,
    so an old email in an inbox, or an address that later changes hands, opens nothing."""

    email = models.EmailField()
    created_at = models.DateTimeField(default=timezone.now)

    ENDINGS: tuple[tuple[str, str], ...] = (("accepted_at", "accepted"),)

    class Meta:
        abstract = True

    @staticmethod
    def lifetime() -> dt.timedelta:
        return dt.timedelta(days=settings.TELECONSULT_INVITATION_DAYS)

    @classmethod
    def pending(cls, at=None) -> models.QuerySet:
        """Invitations that may still be answered at ``at``."""
        at = at or timezone.now()
        unanswered = {f"{field}__isnull": True for field, _status in cls.ENDINGS}
        return cls.objects.filter(created_at__gt=at - cls.lifetime(), **unanswered)

    @classmethod
    def pending_for(cls, user) -> models.QuerySet:
        """Pending invitations sent to one of ``user``'s confirmed addresses."""
        from .addresses import confirmed_addresses  # allauth's models, loaded after this app's

        return cls.pending().filter(email__in=confirmed_addresses(user))

    @property
    def expires_at(self) -> dt.datetime:
        return self.created_at + self.lifetime()

    def status_at(self, at) -> str:
        for field, status in self.ENDINGS:
            if getattr(self, field) is not None:
                return status
        return "expired" if self.expires_at <= at else "pending"

    @property
    def status(self) -> str:
        return self.status_at(timezone.now())


class Organization(models.Model):
    """A practice: the tenant. A clinic, hospital, imaging site or reading group whose members share
    its patients and studies; nothing of one practice reaches another but by an explicit grant."""

    class Kind(models.TextChoices):
        CLINIC = "clinic", "Clinic"
        HOSPITAL = "hospital", "Hospital"
        IMAGING_SITE = "imaging_site", "Imaging site"
        READING_GROUP = "reading_group", "Reading group"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CLINIC)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "pk"]
        verbose_name = "practice"

    def __str__(self) -> str:
        return self.name

    def add_member(self, user: User, *, role: str | None = None, by: User | None = None) -> Membership:
        """Make ``user`` an active member (idempotent; an existing member keeps their role unless
        ``role`` is given)."""
        membership, created = Membership.objects.get_or_create(
            practice=self, user=user, defaults={"role": role or Membership.Role.CLINICIAN, "added_by": by}
        )
        if not created and role and membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
        if user.default_practice_id is None:
            User.objects.filter(pk=user.pk, default_practice__isnull=True).update(default_practice=self)
            user.default_practice = self
        return membership


class Membership(models.Model):
    """One clinician in one practice, as a clinician or as the practice's administrator."""

    class Role(models.TextChoices):
        CLINICIAN = "clinician", "Clinician"
        ADMIN = "admin", "Practice admin"

    practice = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CLINICIAN)
    added_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    since = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["practice", "user"], name="one_membership_per_practice")]
        ordering = ["practice__name", "since"]

    def __str__(self) -> str:
        return f"{self.user} in {self.practice} ({self.get_role_display()})"

    @property
    def is_admin(self) -> bool:
        return self.role == self.Role.ADMIN


class PracticeInvitation(EmailInvitation):
    """A practice admin asked the person at ``email`` to join; accepted by a signed-in clinician
    whose confirmed address it is, through the link in the email. Only a hash of the token is kept."""

    practice = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=16, choices=Membership.Role.choices, default=Membership.Role.CLINICIAN)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    ENDINGS = (("accepted_at", "accepted"), ("revoked_at", "revoked"))

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invitation of {self.email} to {self.practice}"


class SpecialistInvitation(EmailInvitation):
    """An administrator asked the person at ``email`` to join as a specialist of ``specialties``
    (and, when named, a member of ``practice``). The link in the email leads to sign-up; the account
    made with that address comes out a specialist (accounts.specialist_invitations). Only a hash of
    the token is kept."""

    specialties = models.JSONField(default=list, help_text="Specialty codes the account starts with")
    practice = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="specialist_invitations"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    ENDINGS = (("accepted_at", "accepted"), ("revoked_at", "revoked"))

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Specialist invitation of {self.email}"


def licence_document_path(licence: Licence, filename: str) -> str:
    """A random name: the stored path says nothing of whose licence it is (the file is served only
    through accounts.console and the API, never from a media URL)."""
    import uuid

    return f"licences/{uuid.uuid4().hex}.{licence.document_kind or 'bin'}"


class LicenceQuerySet(models.QuerySet):
    def verified(self) -> LicenceQuerySet:
        return self.filter(status=Licence.Status.VERIFIED)

    def valid_on(self, day: dt.date) -> LicenceQuerySet:
        """Verified and not expired on ``day`` (a licence is good through its expiry date)."""
        return self.verified().filter(expires_on__gte=day)

    def covering(self, jurisdiction: str) -> LicenceQuerySet:
        """Licences for ``jurisdiction`` (``US-CA``) or the whole of its country (``US``)."""
        country = jurisdiction.split("-")[0]
        return self.filter(jurisdiction__in={jurisdiction, country})

    def expiring_between(self, first: dt.date, last: dt.date) -> LicenceQuerySet:
        return self.exclude(status=Licence.Status.REJECTED).filter(expires_on__gte=first, expires_on__lte=last)


class Licence(models.Model):
    """A specialist's licence to practise in one jurisdiction, with the scanned document that
    proves it. It counts for routing and claiming only once an administrator verified it, and
    only until its expiry date; a change by the specialist sends it back for verification."""

    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting verification"
        VERIFIED = "verified", "Verified"
        REJECTED = "rejected", "Rejected"

    class DocumentKind(models.TextChoices):
        PDF = "pdf", "PDF"
        PNG = "png", "PNG image"
        JPEG = "jpeg", "JPEG image"

    specialist = models.ForeignKey(User, on_delete=models.CASCADE, related_name="licences")
    jurisdiction = models.CharField(
        max_length=10, validators=[validate_jurisdiction], help_text="ISO 3166 code, e.g. DE or US-CA"
    )
    number = models.CharField(max_length=64)
    expires_on = models.DateField()
    document = models.FileField(upload_to=licence_document_path, max_length=255)
    document_name = models.CharField(max_length=255)
    document_kind = models.CharField(max_length=8, choices=DocumentKind.choices)
    document_size = models.PositiveBigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rejection_reason = models.CharField(max_length=500, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True, help_text="When the expiry reminder went out")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = LicenceQuerySet.as_manager()

    class Meta:
        ordering = ["expires_on", "pk"]
        indexes = [models.Index(fields=["jurisdiction", "status", "expires_on"])]

    def __str__(self) -> str:
        return f"Licence {self.number} ({self.jurisdiction}) of {self.specialist}"

    @property
    def content_type(self) -> str:
        return {"pdf": "application/pdf", "png": "image/png", "jpeg": "image/jpeg"}[self.document_kind]

    def is_valid_on(self, day: dt.date) -> bool:
        return self.status == self.Status.VERIFIED and self.expires_on >= day


class SpecialistEvent(models.Model):
    """What was done to a specialist or their licences, by whom and when: append-only (the console
    shows it on the specialist's page)."""

    class Action(models.TextChoices):
        INVITED = "invited", "Invited"
        JOINED = "joined", "Signed up from the invitation"
        LICENCE_ADDED = "licence_added", "Licence added"
        LICENCE_CHANGED = "licence_changed", "Licence changed"
        LICENCE_VERIFIED = "licence_verified", "Licence verified"
        LICENCE_REJECTED = "licence_rejected", "Licence rejected"
        LICENCE_REMINDED = "licence_reminded", "Reminded of a licence's expiry"
        APPROVED = "approved", "Approved"
        SUSPENDED = "suspended", "Suspended"
        REINSTATED = "reinstated", "Reinstated"

    specialist = models.ForeignKey(User, null=True, on_delete=models.CASCADE, related_name="specialist_events")
    email = models.EmailField(help_text="The specialist's address at the time (invitations have no account yet)")
    action = models.CharField(max_length=20, choices=Action.choices)
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    licence = models.ForeignKey(Licence, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    detail = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.email}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("Specialist events are append-only.")
        super().save(*args, **kwargs)

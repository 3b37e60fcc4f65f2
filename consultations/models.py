"""Consult requests, their timeline, offers to specialists, reports and notifications.

State changes are named methods on ``ConsultRequest`` and ``Report``. Each checks who may make it,
writes a ``ConsultEvent`` and raises ``NotAllowedError`` (wrong person, HTTP 403) or ``IllegalTransitionError``
(wrong state, HTTP 409) with a reason a person can read. Notifying others and routing offers
happen in ``consultations.actions``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Case, IntegerField, Q, Value, When
from django.utils import timezone

from accounts.models import EmailInvitation, Specialty, validate_jurisdiction
from studies.models import AccessGrant, Study
from studies.permissions import grant_access, revoke_access


class ConsultError(Exception):
    """A consult change that cannot be made; the message says why."""

    status_code = 409
    code = "conflict"

    def __init__(self, message: str, **extra) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class IllegalTransitionError(ConsultError):
    status_code = 409
    code = "illegal_transition"


class NotAllowedError(ConsultError):
    status_code = 403
    code = "not_allowed"


class AlreadyTakenError(IllegalTransitionError):
    code = "already_taken"


class Priority(models.TextChoices):
    STAT = "stat", "Stat"
    URGENT = "urgent", "Urgent"
    ROUTINE = "routine", "Routine"


# Sort order on the worklist: lower is more pressing.
PRIORITY_RANK = {Priority.STAT: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


class State(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Waiting for a specialist"
    ACCEPTED = "accepted", "Accepted"
    INFO_REQUESTED = "info_requested", "Information requested"
    REPORTED = "reported", "Reported"
    CLOSED = "closed", "Closed"
    DECLINED = "declined", "Declined"
    CANCELLED = "cancelled", "Cancelled"


OPEN_STATES = (State.SUBMITTED, State.ACCEPTED, State.INFO_REQUESTED)
# States in which the SLA clock runs.
CLOCK_STATES = OPEN_STATES


class Agreement(models.TextChoices):
    AGREE = "agree", "Agree"
    MINOR = "minor", "Minor discrepancy"
    MAJOR = "major", "Major discrepancy"


class ConsultQuerySet(models.QuerySet):
    def open(self) -> ConsultQuerySet:
        return self.filter(state__in=OPEN_STATES)

    def overdue(self, at=None) -> ConsultQuerySet:
        return self.open().filter(due_at__lte=at or timezone.now())

    def requested_by(self, user) -> ConsultQuerySet:
        return self.filter(requester=user)

    def offered_to(self, user) -> ConsultQuerySet:
        """Waiting for a specialist and offered to ``user`` (who has not declined)."""
        return self.filter(
            state=State.SUBMITTED,
            offers__specialist=user,
            offers__declined_at__isnull=True,
        ).distinct()

    def assigned_to(self, user) -> ConsultQuerySet:
        return self.filter(assignee=user)

    def worklist_for(self, user) -> ConsultQuerySet:
        """Offered to the specialist, or theirs and not yet closed."""
        offered = self.offered_to(user).values("pk")
        mine = Q(assignee=user, state__in=(State.ACCEPTED, State.INFO_REQUESTED, State.REPORTED))
        return self.filter(Q(pk__in=offered) | mine)

    def in_worklist_order(self, at=None) -> ConsultQuerySet:
        """Overdue first, then priority (stat, urgent, routine), then the nearest due time."""
        at = at or timezone.now()
        return self.annotate(
            is_overdue_rank=Case(
                When(Q(state__in=OPEN_STATES) & Q(due_at__lte=at), then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            ),
            priority_rank=Case(
                *[When(priority=p, then=Value(rank)) for p, rank in PRIORITY_RANK.items()],
                default=Value(9),
                output_field=IntegerField(),
            ),
        ).order_by("is_overdue_rank", "priority_rank", "due_at", "pk")


class ConsultRequest(models.Model):
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="consults")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="consults_requested")
    question = models.TextField(help_text="The clinical question to answer")
    clinical_history = models.TextField(blank=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.ROUTINE)
    specialty = models.CharField(
        max_length=32, choices=Specialty.choices, blank=True, help_text="Pool to offer the consult to"
    )
    target_specialist = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="consults_targeted",
        help_text="A named specialist instead of (or before) the pool",
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="consults_assigned"
    )
    jurisdiction = models.CharField(
        max_length=10, validators=[validate_jurisdiction], help_text="Where the patient is (ISO 3166)"
    )
    outside_report = models.TextField(blank=True, help_text="The original report the second opinion compares with")
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT, db_index=True)

    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # SLA steps, each done once.
    sla_warned_at = models.DateTimeField(null=True, blank=True)
    sla_overdue_at = models.DateTimeField(null=True, blank=True)

    objects = ConsultQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Consult #{self.pk}: {self.question[:60]}"

    # -- reading -----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def is_overdue(self) -> bool:
        return self.is_open and self.due_at is not None and self.due_at <= timezone.now()

    def time_left(self, at=None):
        if self.due_at is None:
            return None
        return self.due_at - (at or timezone.now())

    def sla_fraction_used(self, at=None) -> float | None:
        if self.due_at is None or self.submitted_at is None:
            return None
        window = (self.due_at - self.submitted_at).total_seconds()
        if window <= 0:
            return 1.0
        return ((at or timezone.now()) - self.submitted_at).total_seconds() / window

    def urgency_class(self, at=None) -> str:
        """The colour of the time-left badge: ok, warn (past 75 % of the window), bad (overdue)."""
        used = self.sla_fraction_used(at)
        if used is None or not self.is_open:
            return ""
        if used >= 1:
            return "bad"
        if used >= settings.TELECONSULT_SLA_WARNING_FRACTION:
            return "warn"
        return "ok"

    def active_participants(self):
        return self.participants.filter(removed_at__isnull=True).select_related("user")

    def is_participant(self, user) -> bool:
        return self.participants.filter(user=user, removed_at__isnull=True).exists()

    def may_requester_act(self, user) -> bool:
        """The requester and the colleagues they added act for the referring side."""
        return user.pk == self.requester_id or self.is_participant(user)

    def has_open_offer(self, user) -> bool:
        return self.offers.filter(specialist=user, declined_at__isnull=True).exists()

    @property
    def current_report(self) -> Report | None:
        return self.reports.order_by("-version").first()

    @property
    def latest_signed_report(self) -> Report | None:
        return self.reports.filter(signed_at__isnull=False).order_by("-version").first()

    # -- transitions ---------------------------------------------------------------------------

    def _require_state(self, action: str, *states: str) -> None:
        if self.state not in states:
            allowed = ", ".join(State(s).label.lower() for s in states)
            raise IllegalTransitionError(
                f"Cannot {action} a consult that is {self.get_state_display().lower()} (only when {allowed})."
            )

    def _require_requester(self, user, action: str) -> None:
        if user.pk != self.requester_id:
            raise NotAllowedError(f"Only the requesting physician may {action} this consult.")

    def _require_assignee(self, user, action: str) -> None:
        if user.pk != self.assignee_id:
            raise NotAllowedError(f"Only the specialist who accepted this consult may {action} it.")

    def _log(self, kind: str, by, message: str = "", **data) -> ConsultEvent:
        return ConsultEvent.objects.create(consult=self, kind=kind, actor=by, message=message, data=data)

    def _save(self, *fields: str) -> None:
        self.save(update_fields=list(fields))

    def submit(self, *, by, at=None) -> None:
        """Send the consult out; the SLA clock starts now."""
        self._require_requester(by, "submit")
        self._require_state("submit", State.DRAFT, State.DECLINED)
        if not self.specialty and self.target_specialist_id is None:
            raise IllegalTransitionError("Choose a specialty or a specialist before submitting.")
        now = at or timezone.now()
        self.state = State.SUBMITTED
        self.submitted_at = now
        self.due_at = now + sla_window(self.priority)
        self.sla_warned_at = None
        self.sla_overdue_at = None
        self._save("state", "submitted_at", "due_at", "sla_warned_at", "sla_overdue_at")
        self._log(ConsultEvent.Kind.SUBMITTED, by, f"Submitted as {self.get_priority_display().lower()}.")

    def accept(self, *, by) -> None:
        """Claim the consult. Of several specialists accepting at once, exactly one wins."""
        self.refresh_from_db(fields=["state", "assignee", "target_specialist"])
        if self.state != State.SUBMITTED:
            self._raise_taken_or_illegal("accept")
        if not by.may_take_consults:
            raise NotAllowedError("Only an approved specialist may accept a consult.")
        if self.target_specialist_id and self.target_specialist_id != by.pk:
            raise NotAllowedError("This consult is addressed to another specialist.")
        if not self.target_specialist_id and not self.has_open_offer(by):
            raise NotAllowedError("This consult was not offered to you.")
        now = timezone.now()
        with transaction.atomic():
            # The conditional UPDATE is the claim: a second accept waits for the first to
            # commit, then finds the state changed and updates nothing.
            claimed = ConsultRequest.objects.filter(pk=self.pk, state=State.SUBMITTED).update(
                state=State.ACCEPTED, assignee=by, accepted_at=now
            )
            if not claimed:
                self.refresh_from_db(fields=["state", "assignee"])
                self._raise_taken_or_illegal("accept")
            self.state, self.assignee, self.accepted_at = State.ACCEPTED, by, now
            grant_access(
                user=by,
                study=self.study,
                reason=AccessGrant.Reason.CONSULT,
                granted_by=self.requester,
                source=str(self.pk),
            )
            self._log(ConsultEvent.Kind.ACCEPTED, by, f"Accepted by {by.display_name}.")

    def _raise_taken_or_illegal(self, action: str) -> None:
        if self.assignee_id is not None and self.state in (
            State.ACCEPTED,
            State.INFO_REQUESTED,
            State.REPORTED,
            State.CLOSED,
        ):
            taker = self.assignee
            raise AlreadyTakenError(
                f"{taker.display_name} already accepted this consult.",
                taken_by={"id": taker.pk, "name": taker.display_name},
            )
        self._require_state(action, State.SUBMITTED)

    def decline(self, *, by, reason: str) -> str:
        """A named specialist declines (back to the pool, or to the requester when there is no
        pool); a pool specialist declines only their own offer. Returns what happened."""
        reason = (reason or "").strip()
        if not reason:
            raise IllegalTransitionError("Give a reason for declining.")
        self._require_state("decline", State.SUBMITTED)
        if self.target_specialist_id == by.pk:
            self.offers.filter(specialist=by).update(declined_at=timezone.now(), decline_reason=reason)
            self.target_specialist = None
            if self.specialty:
                self._save("target_specialist")
                self._log(ConsultEvent.Kind.DECLINED, by, f"Declined: {reason} Returned to the pool.", to="pool")
                return "pool"
            self.state = State.DECLINED
            self._save("state", "target_specialist")
            self._log(ConsultEvent.Kind.DECLINED, by, f"Declined: {reason} Returned to the requester.", to="requester")
            return "requester"
        if self.has_open_offer(by):
            self.offers.filter(specialist=by).update(declined_at=timezone.now(), decline_reason=reason)
            self._log(ConsultEvent.Kind.OFFER_DECLINED, by, f"Offer declined: {reason}")
            return "offer"
        raise NotAllowedError("Only a specialist this consult was offered to may decline it.")

    def cancel(self, *, by, reason: str = "") -> None:
        self._require_requester(by, "cancel")
        self._require_state(
            "cancel", State.DRAFT, State.SUBMITTED, State.ACCEPTED, State.INFO_REQUESTED, State.DECLINED
        )
        self.state = State.CANCELLED
        self.closed_at = timezone.now()
        self._save("state", "closed_at")
        for grant in AccessGrant.objects.active().filter(
            study=self.study, reason=AccessGrant.Reason.CONSULT, source=str(self.pk)
        ):
            grant.revoke(by=by)
        self._log(ConsultEvent.Kind.CANCELLED, by, f"Cancelled. {reason}".strip())

    def request_info(self, *, by, question: str) -> None:
        question = (question or "").strip()
        if not question:
            raise IllegalTransitionError("Say what information you need.")
        self._require_assignee(by, "request information on")
        self._require_state("request information on", State.ACCEPTED)
        self.state = State.INFO_REQUESTED
        self._save("state")
        self._log(ConsultEvent.Kind.INFO_REQUESTED, by, question)

    def answer_info(self, *, by, answer: str) -> None:
        answer = (answer or "").strip()
        if not answer:
            raise IllegalTransitionError("Write an answer.")
        if not self.may_requester_act(by):
            raise NotAllowedError("Only the requesting physician or a colleague on the consult may answer.")
        self._require_state("answer", State.INFO_REQUESTED)
        self.state = State.ACCEPTED
        self._save("state")
        self._log(ConsultEvent.Kind.INFO_ANSWERED, by, answer)

    def mark_reported(self, *, by, report: Report) -> None:
        """Called by ``Report.sign`` for the first version: the consult has its answer."""
        self._require_assignee(by, "report")
        self._require_state("report", State.ACCEPTED)
        self.state = State.REPORTED
        self.reported_at = report.signed_at
        self._save("state", "reported_at")
        self._log(ConsultEvent.Kind.REPORTED, by, "Report signed.", report_version=report.version)

    def close(self, *, by) -> None:
        if not (by.pk == self.requester_id or by.is_admin):
            raise NotAllowedError("Only the requesting physician may close this consult.")
        self._require_state("close", State.REPORTED)
        self.state = State.CLOSED
        self.closed_at = timezone.now()
        self._save("state", "closed_at")
        self._log(ConsultEvent.Kind.CLOSED, by, "Closed.")

    def add_participant(self, *, by, user) -> ConsultParticipant:
        """The requester adds a colleague, who then sees the case and its study."""
        self._require_requester(by, "add colleagues to")
        if self.state in (State.CANCELLED, State.CLOSED):
            raise IllegalTransitionError(
                f"Cannot add colleagues to a consult that is {self.get_state_display().lower()}."
            )
        if not user.is_active or not (user.is_physician or user.is_specialist):
            raise IllegalTransitionError("Only active physicians and specialists can join a consult.")
        if user.pk in (self.requester_id, self.assignee_id):
            raise IllegalTransitionError(f"{user.display_name} is already on this consult.")
        participant, created = ConsultParticipant.objects.get_or_create(
            consult=self, user=user, removed_at=None, defaults={"added_by": by}
        )
        if created:
            grant_access(
                user=user, study=self.study, reason=AccessGrant.Reason.CONSULT, granted_by=by, source=str(self.pk)
            )
            self._log(ConsultEvent.Kind.PARTICIPANT_ADDED, by, f"{user.display_name} added.", user_id=user.pk)
        return participant

    def remove_participant(self, *, by, user) -> None:
        self._require_requester(by, "remove colleagues from")
        count = self.participants.filter(user=user, removed_at__isnull=True).update(removed_at=timezone.now())
        if not count:
            raise IllegalTransitionError(f"{user.display_name} is not on this consult.")
        revoke_access(user=user, study=self.study, reason=AccessGrant.Reason.CONSULT, source=str(self.pk), by=by)
        self._log(ConsultEvent.Kind.PARTICIPANT_REMOVED, by, f"{user.display_name} removed.", user_id=user.pk)


def sla_window(priority: str) -> dt.timedelta:
    return dt.timedelta(minutes=settings.TELECONSULT_SLA_MINUTES[priority])


class ConsultEvent(models.Model):
    """One line of the consult's timeline."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        SUBMITTED = "submitted", "Submitted"
        OFFERED = "offered", "Offered"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        OFFER_DECLINED = "offer_declined", "Offer declined"
        CANCELLED = "cancelled", "Cancelled"
        INFO_REQUESTED = "info_requested", "Information requested"
        INFO_ANSWERED = "info_answered", "Information given"
        REPORTED = "reported", "Reported"
        ADDENDUM = "addendum", "Addendum"
        CLOSED = "closed", "Closed"
        PARTICIPANT_INVITED = "participant_invited", "Colleague invited"
        PARTICIPANT_ADDED = "participant_added", "Colleague added"
        PARTICIPANT_REMOVED = "participant_removed", "Colleague removed"
        ATTACHMENT_ADDED = "attachment_added", "Attachment added"
        SLA_WARNING = "sla_warning", "Due soon"
        SLA_OVERDUE = "sla_overdue", "Overdue"
        ESCALATED = "escalated", "Escalated"

    consult = models.ForeignKey(ConsultRequest, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(default=timezone.now)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on consult {self.consult_id}"


class ConsultOffer(models.Model):
    """A consult shown on one specialist's worklist, from routing or escalation."""

    class Reason(models.TextChoices):
        TARGET = "target", "Addressed to this specialist"
        ON_CALL = "on_call", "On call and matching"
        MATCHING = "matching", "Matching (nobody on call)"
        ESCALATION = "escalation", "Escalated to every matching specialist"

    consult = models.ForeignKey(ConsultRequest, on_delete=models.CASCADE, related_name="offers")
    specialist = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="consult_offers")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    offered_at = models.DateTimeField(default=timezone.now)
    declined_at = models.DateTimeField(null=True, blank=True)
    decline_reason = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["consult", "specialist"], name="one_offer_per_specialist")]
        ordering = ["offered_at"]

    def __str__(self) -> str:
        return f"Consult {self.consult_id} offered to {self.specialist_id}"


class ConsultParticipant(models.Model):
    consult = models.ForeignKey(ConsultRequest, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="consult_participations")
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    added_at = models.DateTimeField(default=timezone.now)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["added_at"]

    def __str__(self) -> str:
        return f"{self.user} on consult {self.consult_id}"


class ColleagueInvitation(EmailInvitation):
    """The requester asked the person at ``email`` to join the consult's care team. They join only
    when a clinician's account that confirmed the address accepts; until then the consult shows
    the address as invited, whatever it belongs to, so adding someone tells nothing about who has
    an account here."""

    consult = models.ForeignKey(ConsultRequest, on_delete=models.CASCADE, related_name="colleague_invitations")
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    declined_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    ENDINGS = (("accepted_at", "accepted"), ("declined_at", "declined"), ("withdrawn_at", "withdrawn"))

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["email"])]

    def __str__(self) -> str:
        return f"{self.email} invited to consult {self.consult_id}"


class ConsultAttachment(models.Model):
    class Kind(models.TextChoices):
        PDF = "pdf", "PDF"
        PNG = "png", "PNG image"
        JPEG = "jpeg", "JPEG image"

    consult = models.ForeignKey(ConsultRequest, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to="consult_attachments/%Y/%m/", max_length=255)
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["uploaded_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def content_type(self) -> str:
        return {"pdf": "application/pdf", "png": "image/png", "jpeg": "image/jpeg"}[self.kind]


class ReportTemplate(models.Model):
    """Starting text for a report, by specialty and modality (e.g. neuroradiology + CT)."""

    name = models.CharField(max_length=100, unique=True)
    specialty = models.CharField(max_length=32, choices=Specialty.choices)
    modality = models.CharField(max_length=16, help_text="DICOM modality, e.g. CT, MR, CR, XC")
    findings = models.TextField(blank=True)
    impression = models.TextField(blank=True)
    recommendations = models.TextField(blank=True)

    class Meta:
        ordering = ["specialty", "modality", "name"]

    def __str__(self) -> str:
        return self.name


class ReportSignedError(ConsultError):
    code = "report_signed"


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
    content_sha256 = models.CharField(max_length=64, blank=True)

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
        return json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()

    def compute_hash(self) -> str:
        return hashlib.sha256(self.canonical_content()).hexdigest()

    def verify_hash(self) -> bool:
        return self.is_signed and self.compute_hash() == self.content_sha256

    def update_draft(self, *, by, **fields) -> None:
        if self.is_signed:
            raise ReportSignedError("A signed report never changes; write an addendum instead.")
        if by.pk != self.consult.assignee_id:
            raise NotAllowedError("Only the specialist who accepted this consult may write its report.")
        if self.consult.state not in (State.ACCEPTED, State.INFO_REQUESTED, State.REPORTED, State.CLOSED):
            raise IllegalTransitionError(
                f"Cannot write a report on a consult that is {self.consult.get_state_display().lower()}."
            )
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
        if by.pk != consult.assignee_id:
            raise NotAllowedError("Only the specialist who accepted this consult may sign its report.")
        missing = [name for name in ("findings", "impression") if not getattr(self, name).strip()]
        if missing:
            raise IllegalTransitionError(f"Write the {' and the '.join(missing)} before signing.", fields=missing)
        if self.is_addendum:
            consult._require_state("sign an addendum on", State.REPORTED, State.CLOSED)
        else:
            consult._require_state("sign a report on", State.ACCEPTED)
        with transaction.atomic():
            self.signed_by = by
            self.signed_at = at or timezone.now()
            self.content_sha256 = self.compute_hash()
            super().save(update_fields=["signed_by", "signed_at", "content_sha256", "updated_at"])
            if self.is_addendum:
                consult._log(
                    ConsultEvent.Kind.ADDENDUM,
                    by,
                    f"Addendum (version {self.version}) signed: {self.addendum_reason}",
                    report_version=self.version,
                )
            else:
                consult.mark_reported(by=by, report=self)


class Notification(models.Model):
    class Kind(models.TextChoices):
        OFFER = "offer", "New consult offered"
        ACCEPTED = "accepted", "Consult accepted"
        DECLINED = "declined", "Consult declined"
        INFO_REQUESTED = "info_requested", "Information requested"
        INFO_ANSWERED = "info_answered", "Information given"
        REPORT_SIGNED = "report_signed", "Report signed"
        ADDENDUM = "addendum", "Addendum to a report"
        SLA_WARNING = "sla_warning", "Consult due soon"
        ESCALATION = "escalation", "Consult overdue"
        CANCELLED = "cancelled", "Consult cancelled"
        PARTICIPANT_ADDED = "participant_added", "Added to a consult"
        COLLEAGUE_INVITED = "colleague_invited", "Invited to a consult"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    consult = models.ForeignKey(ConsultRequest, null=True, blank=True, on_delete=models.CASCADE)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "read_at"])]

    def __str__(self) -> str:
        return self.title


# Kinds that also go out by email unless the user turned them off.
EMAIL_KINDS = (
    Notification.Kind.OFFER,
    Notification.Kind.ACCEPTED,
    Notification.Kind.INFO_REQUESTED,
    Notification.Kind.REPORT_SIGNED,
    Notification.Kind.ADDENDUM,
    Notification.Kind.ESCALATION,
)


class NotificationPreference(models.Model):
    """Email on or off for one kind; no row means email on."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_prefs")
    kind = models.CharField(max_length=24, choices=Notification.Kind.choices)
    email = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="one_pref_per_kind")]

    def __str__(self) -> str:
        return f"{self.user}: {self.kind} email {'on' if self.email else 'off'}"


class ChatMessage(models.Model):
    """A message in a consult's room. ``client_id`` (chosen by the sending client) is stored once
    per author and consult, so a resend after a reconnect is never a duplicate."""

    consult = models.ForeignKey(ConsultRequest, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    client_id = models.CharField(max_length=64, blank=True)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["consult", "author", "client_id"],
                condition=~models.Q(client_id=""),
                name="chat_client_id_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.author}: {self.text[:40]}"


class ChatReadMark(models.Model):
    """How far one user has read a consult's chat (a read receipt)."""

    consult = models.ForeignKey(ConsultRequest, on_delete=models.CASCADE, related_name="read_marks")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    up_to_id = models.BigIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["consult", "user"], name="one_read_mark_per_user")]

    def __str__(self) -> str:
        return f"{self.user} read consult {self.consult_id} up to {self.up_to_id}"


class Annotation(models.Model):
    """A measurement or mark on one frame of one image of the consult's study.

    The id is chosen by the viewer that drew it, so a save that is sent again after a network
    failure finds the same row. Geometry is in image pixel coordinates; ``values`` holds what the
    viewer computed (length in mm, ellipse statistics in modality units, ...). Each change bumps
    ``version``; an update naming an older version is refused as a conflict.
    """

    class Tool(models.TextChoices):
        LENGTH = "length", "Length"
        ANGLE = "angle", "Angle"
        ELLIPSE = "ellipse", "Ellipse ROI"
        ARROW = "arrow", "Arrow"
        TEXT = "text", "Text label"
        KEY_IMAGE = "key_image", "Key image"

    id = models.UUIDField(primary_key=True)
    consult = models.ForeignKey(ConsultRequest, on_delete=models.CASCADE, related_name="annotations")
    sop_instance_uid = models.CharField("SOPInstanceUID", max_length=64)
    frame = models.PositiveIntegerField(default=1)
    tool = models.CharField(max_length=16, choices=Tool.choices)
    geometry = models.JSONField(default=dict, blank=True)
    values = models.JSONField(default=dict, blank=True)
    label = models.CharField(max_length=500, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["consult", "sop_instance_uid"])]

    def __str__(self) -> str:
        return f"{self.get_tool_display()} on {self.sop_instance_uid} frame {self.frame}"

"""Consult requests and what hangs off them: timeline, offers, colleagues, attachments.

State changes are named methods on ``ConsultRequest``. Each checks who may make it against the
table in ``consultations.transitions`` and writes a ``ConsultEvent``; a refusal is a
``NotAllowedError`` (wrong person, HTTP 403) or an ``IllegalTransitionError`` (wrong state, HTTP 409)
with a reason a person can read. Notifying others and routing offers happen in
``consultations.actions``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models, transaction
from django.db.models import Case, IntegerField, Q, Value, When
from django.utils import timezone

from accounts.models import EmailInvitation, Specialty, validate_jurisdiction
from studies.models import AccessGrant, Study
from studies.permissions import grant_access, revoke_access

from .. import transitions
from ..errors import AlreadyTakenError, IllegalTransitionError
from ..transitions import OPEN_STATES, TAKEN_STATES, WORKLIST_STATES, State

if TYPE_CHECKING:
    from .reports import Report


class Priority(models.TextChoices):
    STAT = "stat", "Stat"
    URGENT = "urgent", "Urgent"
    ROUTINE = "routine", "Routine"


# Sort order on the worklist: lower is more pressing.
PRIORITY_RANK = {Priority.STAT: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


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
        mine = Q(assignee=user, state__in=WORKLIST_STATES)
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
    # The patient and study as they were when the consult was made (consultations.identity): what
    # signing compares with the study as it is then.
    identity = models.JSONField(default=dict, blank=True, editable=False)
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
    # Who may take each one from which state is ``consultations.transitions.TRANSITIONS``;
    # ``consultations.actions`` calls these and tells people.

    def require(self, action: str, by) -> None:
        """Raise unless ``by`` may start ``action`` now (see consultations.transitions)."""
        transitions.require(self, action, by)

    def record_event(self, kind: str, by, message: str = "", **data) -> ConsultEvent:
        """One line on the timeline (the actions module writes them)."""
        return ConsultEvent.objects.create(consult=self, kind=kind, actor=by, message=message, data=data)

    def _save(self, *fields: str) -> None:
        self.save(update_fields=list(fields))

    def submit(self, *, by, at=None) -> None:
        """Send the consult out; the SLA clock starts now."""
        self.require("submit", by)
        if not self.specialty and self.target_specialist_id is None:
            raise IllegalTransitionError("Choose a specialty or a specialist before submitting.")
        now = at or timezone.now()
        self.state = State.SUBMITTED
        self.submitted_at = now
        self.due_at = now + sla_window(self.priority)
        self.sla_warned_at = None
        self.sla_overdue_at = None
        self._save("state", "submitted_at", "due_at", "sla_warned_at", "sla_overdue_at")
        self.record_event(ConsultEvent.Kind.SUBMITTED, by, f"Submitted as {self.get_priority_display().lower()}.")

    def accept(self, *, by) -> None:
        """Claim the consult. Of several specialists accepting at once, exactly one wins."""
        self.refresh_from_db(fields=["state", "assignee", "target_specialist"])
        if self.state != State.SUBMITTED:
            self._raise_taken_or_illegal(by)
        self.require("accept", by)
        now = timezone.now()
        with transaction.atomic():
            # The conditional UPDATE is the claim: a second accept waits for the first to
            # commit, then finds the state changed and updates nothing.
            claimed = ConsultRequest.objects.filter(pk=self.pk, state=State.SUBMITTED).update(
                state=State.ACCEPTED, assignee=by, accepted_at=now
            )
            if not claimed:
                self.refresh_from_db(fields=["state", "assignee"])
                self._raise_taken_or_illegal(by)
            self.state, self.assignee, self.accepted_at = State.ACCEPTED, by, now
            for study in self.shared_studies():
                grant_access(
                    user=by,
                    study=study,
                    reason=AccessGrant.Reason.CONSULT,
                    granted_by=self.requester,
                    source=str(self.pk),
                )
            self.record_event(ConsultEvent.Kind.ACCEPTED, by, f"Accepted by {by.display_name}.")

    def _raise_taken_or_illegal(self, by) -> None:
        if self.assignee_id is not None and self.state in TAKEN_STATES:
            taker = self.assignee
            raise AlreadyTakenError(
                f"{taker.display_name} already accepted this consult.",
                taken_by={"id": taker.pk, "name": taker.display_name},
            )
        transitions.require_state(self, "accept")

    def decline(self, *, by, reason: str) -> str:
        """A named specialist declines (back to the pool, or to the requester when there is no
        pool); a pool specialist declines only their own offer. Returns what happened."""
        reason = (reason or "").strip()
        if not reason:
            raise IllegalTransitionError("Give a reason for declining.")
        self.require("decline", by)
        if self.target_specialist_id == by.pk:
            self.offers.filter(specialist=by).update(declined_at=timezone.now(), decline_reason=reason)
            self.target_specialist = None
            if self.specialty:
                self._save("target_specialist")
                self.record_event(
                    ConsultEvent.Kind.DECLINED, by, f"Declined: {reason} Returned to the pool.", to="pool"
                )
                return "pool"
            self.state = State.DECLINED
            self._save("state", "target_specialist")
            self.record_event(
                ConsultEvent.Kind.DECLINED, by, f"Declined: {reason} Returned to the requester.", to="requester"
            )
            return "requester"
        self.offers.filter(specialist=by).update(declined_at=timezone.now(), decline_reason=reason)
        self.record_event(ConsultEvent.Kind.OFFER_DECLINED, by, f"Offer declined: {reason}")
        return "offer"

    def cancel(self, *, by, reason: str = "") -> None:
        self.require("cancel", by)
        self.state = State.CANCELLED
        self.closed_at = timezone.now()
        self._save("state", "closed_at")
        self.end_access(by=by)
        self.record_event(ConsultEvent.Kind.CANCELLED, by, f"Cancelled. {reason}".strip())

    def request_info(self, *, by, question: str) -> None:
        question = (question or "").strip()
        if not question:
            raise IllegalTransitionError("Say what information you need.")
        self.require("request-info", by)
        self.state = State.INFO_REQUESTED
        self._save("state")
        self.record_event(ConsultEvent.Kind.INFO_REQUESTED, by, question)

    def answer_info(self, *, by, answer: str) -> None:
        answer = (answer or "").strip()
        if not answer:
            raise IllegalTransitionError("Write an answer.")
        self.require("answer-info", by)
        self.state = State.ACCEPTED
        self._save("state")
        self.record_event(ConsultEvent.Kind.INFO_ANSWERED, by, answer)

    def mark_reported(self, *, by, report: Report) -> None:
        """Called by ``Report.sign`` for the first version: the consult has its answer."""
        self.require("report", by)
        self.state = State.REPORTED
        self.reported_at = report.signed_at
        self._save("state", "reported_at")
        self.record_event(ConsultEvent.Kind.REPORTED, by, "Report signed.", report_version=report.version)

    def close(self, *, by) -> None:
        self.require("close", by)
        self.state = State.CLOSED
        self.closed_at = timezone.now()
        self._save("state", "closed_at")
        self.record_event(ConsultEvent.Kind.CLOSED, by, "Closed.")

    def add_participant(self, *, by, user) -> ConsultParticipant:
        """The requester adds a colleague, who then sees the case and its study."""
        self.require("add-participant", by)
        if not user.is_active or not (user.is_physician or user.is_specialist):
            raise IllegalTransitionError("Only active physicians and specialists can join a consult.")
        if user.pk in (self.requester_id, self.assignee_id):
            raise IllegalTransitionError(f"{user.display_name} is already on this consult.")
        participant, created = ConsultParticipant.objects.get_or_create(
            consult=self, user=user, removed_at=None, defaults={"added_by": by}
        )
        if created:
            for study in self.shared_studies():
                grant_access(
                    user=user, study=study, reason=AccessGrant.Reason.CONSULT, granted_by=by, source=str(self.pk)
                )
            self.record_event(ConsultEvent.Kind.PARTICIPANT_ADDED, by, f"{user.display_name} added.", user_id=user.pk)
        return participant

    def remove_participant(self, *, by, user) -> None:
        self.require("remove-participant", by)
        count = self.participants.filter(user=user, removed_at__isnull=True).update(removed_at=timezone.now())
        if not count:
            raise IllegalTransitionError(f"{user.display_name} is not on this consult.")
        self.end_access(by=by, user=user)
        self.record_event(ConsultEvent.Kind.PARTICIPANT_REMOVED, by, f"{user.display_name} removed.", user_id=user.pk)

    def shared_studies(self) -> list[Study]:
        """The studies this consult shows its care team: its own, and the priors pulled for it
        (whose grants name the consult as their source, studies.priors)."""
        priors = Study.objects.filter(
            grants__in=AccessGrant.objects.active().filter(reason=AccessGrant.Reason.CONSULT, source=str(self.pk))
        ).exclude(pk=self.study_id)
        return [self.study, *priors.distinct()]

    def end_access(self, *, by, user=None) -> int:
        """Revoke the study access this consult gave, on its study and on the priors pulled for it:
        one person's, or everyone's (a cancel). Always through ``studies.permissions.revoke_access``,
        the one way grants end."""
        holders = AccessGrant.objects.active().filter(reason=AccessGrant.Reason.CONSULT, source=str(self.pk))
        if user is not None:
            holders = holders.filter(user=user)
        pairs = {(grant.user, grant.study) for grant in holders.select_related("user", "study")}
        return sum(
            revoke_access(user=u, study=s, reason=AccessGrant.Reason.CONSULT, source=str(self.pk), by=by)
            for u, s in pairs
        )

    # -- SLA steps (taken by consultations.actions under the sla module's row lock) ----------------

    def mark_sla_warned(self, *, at) -> None:
        self.sla_warned_at = at
        self._save("sla_warned_at")

    def mark_sla_overdue(self, *, at) -> None:
        self.sla_overdue_at = at
        self._save("sla_overdue_at")

    def release_to_pool(self) -> None:
        """The named specialist did not answer in time: the specialty pool may take it now."""
        self.target_specialist = None
        self._save("target_specialist")


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

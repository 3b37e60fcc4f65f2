"""Webhook subscriptions: where a practice (or, globally, the administrators) wants events pushed,
and the log of what was sent there (consultations.webhooks does the work; docs/webhooks.md).

The secret signs every delivery, so it is kept as it was made (an HMAC needs the key itself, unlike
a password); it is shown to its owner once, when made or rotated, and never again.
"""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from studies.signals import study_received

from .consults import ConsultEvent

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class WebhookEvent(models.TextChoices):
    """What a subscription may ask for (docs/webhooks.md has each payload)."""

    CONSULT_CREATED = "consult.created", "Consult created (sent out to specialists)"
    CONSULT_ACCEPTED = "consult.accepted", "Consult accepted by a specialist"
    CONSULT_INFO_REQUESTED = "consult.info_requested", "Information requested by the specialist"
    REPORT_SIGNED = "report.signed", "Report signed"
    REPORT_AMENDED = "report.amended", "Report amended (addendum signed)"
    STUDY_RECEIVED = "study.received", "Study received (its first images stored)"


# Sent by "Send a test event" whatever the subscription asks for; never subscribed to.
TEST_EVENT = "webhook.test"


class WebhookSubscriptionQuerySet(models.QuerySet):
    def active(self):
        return self.filter(state=WebhookSubscription.State.ACTIVE)

    def for_practice(self, practice_id: int | None):
        """Those told about something of ``practice_id``: that practice's and the global ones."""
        return self.filter(Q(practice__isnull=True) | Q(practice_id=practice_id))


class WebhookSubscription(models.Model):
    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    # None: a global subscription (administrators), told about every practice's events.
    practice = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks"
    )
    url = models.URLField("target URL", max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, help_text="WebhookEvent values")
    include_resource = models.BooleanField(
        default=False, help_text="Payloads carry the consult, report or study as the REST API gives it (PHI)"
    )
    secret = models.CharField(max_length=80, default=new_secret)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.ACTIVE)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=300, blank=True)
    # Deliveries that failed for good in a row (every try), and when the first of them was made.
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WebhookSubscriptionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Webhook {self.pk} to {self.url}"

    @property
    def is_active(self) -> bool:
        return self.state == self.State.ACTIVE

    @property
    def is_global(self) -> bool:
        return self.practice_id is None

    @property
    def secret_hint(self) -> str:
        """Enough of the secret to tell two apart, never enough to sign with."""
        return f"{SECRET_PREFIX}…{self.secret[-4:]}"

    def wants(self, event: str) -> bool:
        return event in self.events


class WebhookDelivery(models.Model):
    """One event for one subscription: the body, fixed when the event happened, is sent again as it
    is on each try; ``uuid`` is the ``Teleconsult-Delivery`` header receivers dedupe on."""

    class Status(models.TextChoices):
        PENDING = "pending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Not sent (subscription paused)"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["subscription", "-created_at"], name="webhook_delivery_recent")]

    def __str__(self) -> str:
        return f"{self.event} {self.uuid} ({self.status})"

    @property
    def is_test(self) -> bool:
        return self.event == TEST_EVENT


class WebhookAttempt(models.Model):
    """One try of a delivery: the receiver's status code, or why there was none."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"Try {self.number} of {self.delivery_id}: {self.status_code or self.error}"

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# Events come from the consult's timeline and from the ingest; the receivers only hand over keys
# (consultations.webhooks.events decides what, if anything, goes out after commit).


@receiver(post_save, sender=ConsultEvent, dispatch_uid="webhooks-consult-event")
def _consult_event_recorded(sender, instance: ConsultEvent, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        from ..webhooks import events

        events.consult_event_recorded(instance)


@receiver(study_received, dispatch_uid="webhooks-study-received")
def _study_received(sender, study_pks: list[int], **kwargs) -> None:
    from ..webhooks import events

    events.studies_received(study_pks)

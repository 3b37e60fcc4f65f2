"""Notifications and each user's email preferences."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from .consults import ConsultRequest


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
        MESSAGE = "message", "Chat message while away"
        QUESTION_ANSWERED = "question_answered", "Answer to your question"
        LICENCE_EXPIRING = "licence_expiring", "Licence expiring"
        WEBHOOK_PAUSED = "webhook_paused", "Webhook paused"

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
        constraints = [
            # Chat messages to someone away: one notification per consult while it is unread,
            # updated by each new message (consultations.notifications.notify_chat_message).
            models.UniqueConstraint(
                fields=["user", "consult"],
                condition=models.Q(kind="message", read_at__isnull=True),
                name="one_unread_message_notification",
            )
        ]

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
    Notification.Kind.MESSAGE,
    Notification.Kind.QUESTION_ANSWERED,
)
# What a patient is told (their email settings show only these): their report or its addendum is
# ready to read, an answer to their question. The email says so and links to the portal, nothing more.
PATIENT_EMAIL_KINDS = (
    Notification.Kind.REPORT_SIGNED,
    Notification.Kind.ADDENDUM,
    Notification.Kind.QUESTION_ANSWERED,
)
# Kinds emailed later and together (one email for all of a user's unread ones, by a beat task),
# never one email per notification.
BATCHED_EMAIL_KINDS = (Notification.Kind.MESSAGE,)


class NotificationPreference(models.Model):
    """Email on or off for one kind; no row means email on."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_prefs")
    kind = models.CharField(max_length=24, choices=Notification.Kind.choices)
    email = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="one_pref_per_kind")]

    def __str__(self) -> str:
        return f"{self.user}: {self.kind} email {'on' if self.email else 'off'}"

"""The consult app's models, one module per concern; everything is importable from here."""

from ..errors import (
    AlreadyTakenError,
    ConsultError,
    IllegalTransitionError,
    NotAllowedError,
    ReportSignedError,
)
from ..transitions import CLOCK_STATES, OPEN_STATES, State
from .consults import (
    PRIORITY_RANK,
    ColleagueInvitation,
    ConsultAttachment,
    ConsultEvent,
    ConsultOffer,
    ConsultParticipant,
    ConsultQuerySet,
    ConsultRequest,
    Priority,
    sla_window,
)
from .notifications import EMAIL_KINDS, PATIENT_EMAIL_KINDS, Notification, NotificationPreference
from .questions import PatientQuestion
from .reports import Agreement, Report, ReportTemplate
from .room import Annotation, ChatMessage, ChatReadMark
from .webhooks import WebhookAttempt, WebhookDelivery, WebhookEvent, WebhookSubscription

__all__ = [
    "CLOCK_STATES",
    "EMAIL_KINDS",
    "OPEN_STATES",
    "PATIENT_EMAIL_KINDS",
    "PRIORITY_RANK",
    "Agreement",
    "AlreadyTakenError",
    "Annotation",
    "ChatMessage",
    "ChatReadMark",
    "ColleagueInvitation",
    "ConsultAttachment",
    "ConsultError",
    "ConsultEvent",
    "ConsultOffer",
    "ConsultParticipant",
    "ConsultQuerySet",
    "ConsultRequest",
    "IllegalTransitionError",
    "NotAllowedError",
    "Notification",
    "NotificationPreference",
    "PatientQuestion",
    "Priority",
    "Report",
    "ReportSignedError",
    "ReportTemplate",
    "State",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookSubscription",
    "sla_window",
]

"""Background work: the SLA check every minute, and notification emails."""

from __future__ import annotations

from celery import shared_task

from . import notifications, sla
from .models import Notification


@shared_task
def check_sla() -> dict:
    """Beat task (every minute): warn at 75 % of the window, escalate at 100 %."""
    return sla.check_all()


@shared_task
def send_notification_email(*, notification_pk: int) -> bool:
    notification = Notification.objects.select_related("user").filter(pk=notification_pk).first()
    if notification is None or notification.emailed_at is not None:
        return False
    return notifications.email_notification(notification)

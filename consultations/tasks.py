"""Background work: the SLA check, unread-chat emails and report releases every minute, notification
emails, and signed reports stored as DICOM."""

from __future__ import annotations

import logging

from celery import shared_task

from . import dicom_export, notifications, release, sla
from .models import Notification, Report

logger = logging.getLogger(__name__)


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


@shared_task
def notify_chat_message(*, message_pk: int) -> int:
    """Tell the care team members who are not in the room about a message (queued after commit)."""
    return len(notifications.notify_chat_message(message_pk))


@shared_task
def email_unread_messages() -> int:
    """Beat task (every minute): one email per user for chat messages still unread after
    TELECONSULT_CHAT_EMAIL_DELAY_MINUTES; ``emailed_at`` makes a second run send nothing."""
    return notifications.email_unread_messages()


@shared_task
def release_reports() -> int:
    """Beat task (every minute): signed reports whose release time has come reach the patient (told
    once, ``released_at`` records it; see consultations.release). Returns how many."""
    return release.release_due()


@shared_task
def store_report_pdf(*, report_pk: int) -> str:
    """Store a signed report version in its study as an Encapsulated PDF; returns its SOPInstanceUID."""
    report = Report.objects.select_related("consult__study__patient", "signed_by").filter(pk=report_pk).first()
    if report is None or not report.is_signed:
        return ""
    try:
        stored = dicom_export.store_report_pdf(report)
    except dicom_export.ExportFailedError:
        # The report is signed either way; the refusal is logged and the PDF stays downloadable.
        logger.exception("Signed report %s could not be stored in its study as DICOM", report_pk)
        return ""
    return stored.sop_instance_uid if stored is not None else dicom_export.report_pdf_uids(report)[1]

"""In-app notifications, pushed live over ``/ws/notifications/`` and, per kind, by email.

Rows are written inside the caller's transaction; the push and the email go out after commit,
so nobody is told about a change that was rolled back.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from .groups import notifications_group
from .models import EMAIL_KINDS, ConsultRequest, Notification, NotificationPreference


def unread_count(user) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def wants_email(user, kind: str) -> bool:
    if kind not in EMAIL_KINDS or not user.email or not user.is_active:
        return False
    pref = NotificationPreference.objects.filter(user=user, kind=kind).first()
    return pref is None or pref.email


def set_email_preferences(user, enabled: dict[str, bool]) -> None:
    for kind in EMAIL_KINDS:
        NotificationPreference.objects.update_or_create(
            user=user, kind=kind, defaults={"email": bool(enabled.get(kind, False))}
        )


def serialize(notification: Notification) -> dict:
    return {
        "id": notification.pk,
        "kind": notification.kind,
        "title": notification.title,
        "body": notification.body,
        "url": notification.url,
        "consult_id": notification.consult_id,
        "created_at": notification.created_at.isoformat(),
        "read": notification.read_at is not None,
    }


def notify(
    users, *, kind: str, consult: ConsultRequest | None, title: str, body: str = "", url: str | None = None
) -> list[Notification]:
    """Tell each distinct user once; push and email after commit. ``url``: where the notification
    leads (the consult's page unless given)."""
    if url is None:
        url = reverse("consultations:detail", args=[consult.pk]) if consult else ""
    seen: set[int] = set()
    created = []
    for user in users:
        if user is None or user.pk in seen or not user.is_active:
            continue
        seen.add(user.pk)
        created.append(
            Notification.objects.create(user=user, kind=kind, consult=consult, title=title, body=body, url=url)
        )
    for notification in created:
        transaction.on_commit(lambda n=notification: deliver(n.pk))
    return created


def deliver(notification_pk: int) -> None:
    """Push to the user's open tabs and queue the email when they want one."""
    from .tasks import send_notification_email

    notification = Notification.objects.select_related("user").filter(pk=notification_pk).first()
    if notification is None:
        return
    push(notification)
    if wants_email(notification.user, notification.kind):
        send_notification_email.delay(notification_pk=notification.pk)


def push(notification: Notification) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(
        notifications_group(notification.user_id),
        {
            "type": "notification.created",
            "notification": serialize(notification),
            "unread": unread_count(notification.user),
        },
    )


def push_unread(user) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(
            notifications_group(user.pk), {"type": "notification.unread", "unread": unread_count(user)}
        )


def email_notification(notification: Notification) -> bool:
    """Send one notification by email, once. The email carries no patient details, only a link."""
    if notification.emailed_at is not None:
        return False
    base = settings.TELECONSULT_BASE_URL
    lines = [notification.title, ""]
    if notification.body:
        lines += [notification.body, ""]
    if notification.url:
        lines += [f"Open it in teleconsult: {base}{notification.url}", ""]
    lines.append(
        f"You get this email because email is on for '{notification.get_kind_display()}'. "
        f"Turn it off under Notifications > Email settings."
    )
    send_mail(
        subject=f"[teleconsult] {notification.title}",
        message="\n".join(lines),
        from_email=None,
        recipient_list=[notification.user.email],
    )
    Notification.objects.filter(pk=notification.pk).update(emailed_at=timezone.now())
    return True


def mark_read(user, ids: list[int] | None = None) -> int:
    qs = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    count = qs.update(read_at=timezone.now())
    if count:
        transaction.on_commit(lambda: push_unread(user))
    return count

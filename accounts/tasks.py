"""Background work for accounts: ending expired sessions. Outgoing email is teleconsult.mail's;
``deliver_email`` stays under its old name only so that messages queued before an upgrade are still
delivered."""

from __future__ import annotations

from celery import shared_task
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone

from teleconsult.mail import send_email


@shared_task(name="accounts.tasks.deliver_email")
def deliver_email(**message) -> None:
    send_email.delay(**message)


@shared_task(name="accounts.tasks.end_expired_sessions", ignore_result=True)
def end_expired_sessions(batch: int = 500, most: int = 20_000) -> int:
    """Delete sessions past their expiry date (what Django's ``clearsessions`` does), a batch at a
    time: each deletion closes the WebSockets opened with that session (accounts.revocation), so a
    socket left open in an idle tab ends within a beat of its session. Returns how many ended."""
    ended = 0
    while ended < most:
        keys = list(
            Session.objects.filter(expire_date__lt=timezone.now()).values_list("session_key", flat=True)[:batch]
        )
        if not keys:
            break
        with transaction.atomic():
            # A session moved on since it was read (its socket in use) is no longer expired: kept.
            deleted, _ = Session.objects.filter(session_key__in=keys, expire_date__lt=timezone.now()).delete()
        ended += deleted
    return ended

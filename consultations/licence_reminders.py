"""Reminders of licences about to expire: the specialist and the administrators are told once,
``TELECONSULT_LICENCE_REMINDER_DAYS`` (30) days ahead, by email and by an in-portal notification.

The daily beat task lives here rather than in ``accounts`` because the portal's notifications are
this app's (``consultations.notifications.notify``) and ``accounts`` imports nothing from above it.
Each licence is claimed (``reminded_at``) under a row lock in its own transaction, so two
overlapping runs never remind twice, and a renewed licence (a new expiry date) is reminded again.
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.db import transaction
from django.urls import reverse

from accounts import licences
from accounts.outbox import send_after_commit
from accounts.timeformat import format_date
from teleconsult.links import absolute_url

from .models import Notification
from .notifications import notify

# A licence has no consult: the notification links to the licences page.
KIND = Notification.Kind.LICENCE_EXPIRING


def remind_expiring(on: dt.date | None = None) -> int:
    """Remind of every licence due a reminder on ``on``; the number reminded."""
    day = on or licences.today()
    admins = list(licences.administrators())
    sent = 0
    for pk in list(licences.due_reminders(day).values_list("pk", flat=True)):
        with transaction.atomic():
            licence = licences.mark_reminded(pk)
            if licence is None:
                continue
            _tell(licence, day, admins)
        sent += 1
    return sent


def _tell(licence, day: dt.date, admins: list) -> None:
    specialist = licence.specialist
    days = (licence.expires_on - day).days
    when = f"on {format_date(licence.expires_on)} (in {days} day{'s' if days != 1 else ''})"
    own = reverse("console:licences")
    title = f"Your licence {licence.number} ({licence.jurisdiction}) expires {when}"
    body = "Enter the renewed licence (new expiry date and scan) before then, or consults there stop reaching you."
    notify([specialist], kind=KIND, consult=None, title=title[:200], body=body, url=own)
    send_after_commit(
        f"Licence {licence.number} expires {when}",
        f"Hello,\n\n{title}.\n{body}\n\n{absolute_url(own)}\n",
        [specialist.email],
    )
    page = reverse("console:specialist", args=[specialist.pk])
    admin_title = f"Licence of {specialist.display_name} ({licence.jurisdiction} {licence.number}) expires {when}"
    notify(admins, kind=KIND, consult=None, title=admin_title[:200], url=page)
    addresses = [admin.email for admin in admins if admin.email]
    if addresses:
        send_after_commit(admin_title[:200], f"Hello,\n\n{admin_title}.\n\n{absolute_url(page)}\n", addresses)


@shared_task
def remind_expiring_licences() -> int:
    """Daily (beat): remind of licences expiring within the reminder window."""
    return remind_expiring()

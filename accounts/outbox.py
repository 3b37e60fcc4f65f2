"""Email that a change sends: queued once the change commits (never for one rolled back), and
delivered by the task queue (teleconsult.mail: retried while the mail server fails, logged when
it never gets through), so a slow or failing mail server never fails the request."""

from __future__ import annotations

from django.db import transaction

from teleconsult.mail import queue_email


def send_after_commit(subject: str, body: str, to: list[str]) -> None:
    transaction.on_commit(lambda: queue_email(subject=subject, body=body, to=list(to)))

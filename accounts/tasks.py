"""Background work for accounts. Outgoing email is teleconsult.mail's; ``deliver_email`` stays
under its old name only so that messages queued before an upgrade are still delivered."""

from __future__ import annotations

from celery import shared_task

from teleconsult.mail import send_email


@shared_task(name="accounts.tasks.deliver_email")
def deliver_email(**message) -> None:
    send_email.delay(**message)

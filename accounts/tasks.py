"""Background work for accounts: outgoing email leaves the request through the task queue."""

from __future__ import annotations

from celery import shared_task
from django.core.mail import EmailMultiAlternatives


@shared_task(autoretry_for=(OSError,), retry_backoff=30, retry_kwargs={"max_retries": 5})
def deliver_email(
    *,
    subject: str,
    body: str,
    to: list[str],
    from_email: str | None = None,
    html: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Send one rendered message; an unreachable mail server is retried with back-off.

    The message is rendered in the request (it needs the request for absolute links), so the task
    carries text rather than primary keys and reads nothing from the database.
    """
    message = EmailMultiAlternatives(subject, body, from_email, to, headers=headers)
    if html:
        message.attach_alternative(html, "text/html")
    message.send()

"""Outgoing email: sent by the task queue, retried while the mail server fails, logged when it never
gets through.

A message is rendered where it is sent from (it may need the request for absolute links), so the
task carries text, not primary keys. An unreachable or refusing mail server (``OSError``, which
``smtplib.SMTPException`` is) is retried with exponential back-off; a message that fails for good,
after the last retry or because it cannot be sent at all (a bad address), is logged as an error
naming its subject and recipients, so no email is dropped without a trace.

Header values are made one line before the message is built: a name typed with a line break
(saved before names were checked) would otherwise make Django refuse the whole message
(``BadHeaderError``).
"""

from __future__ import annotations

import logging
import unicodedata

from celery import Task, shared_task
from django.core.mail import EmailMultiAlternatives

logger = logging.getLogger(__name__)

# Retries after the first attempt, waiting about 30 s, 1, 2, 4 and 8 minutes (with jitter), well
# inside the broker's visibility timeout (STYLE.md: no countdown longer than it).
MAX_RETRIES = 5
RETRY_BACKOFF_SECONDS = 30
RETRY_BACKOFF_MAX_SECONDS = 10 * 60

# What breaks a header line: control characters and the Unicode line and paragraph separators.
_BREAKING = frozenset({"Cc", "Zl", "Zp"})


def header_safe(value: str) -> str:
    """``value`` on one line: each run of control characters becomes one space."""
    parts: list[str] = []
    in_run = False
    for ch in value:
        breaking = unicodedata.category(ch) in _BREAKING
        if not (breaking and in_run):
            parts.append(" " if breaking else ch)
        in_run = breaking
    return "".join(parts).strip()


class EmailTask(Task):
    """Logs a message that could not be sent, once, when it finally fails.

    Run in-process (``CELERY_TASK_EAGER_PROPAGATES`` on, no broker: development and the tests),
    the retries happen at once and a final failure is logged, not raised: an email never fails
    the change that sent it, with a worker or without.
    """

    def apply(self, *args, throw=None, **kwargs):
        # Celery runs each eager retry through apply() again, so this holds for every attempt.
        return super().apply(*args, throw=False, **kwargs)

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        logger.error(
            "Email %r to %s was not sent (task %s, after %d attempt(s)): %s: %s",
            kwargs.get("subject", ""),
            ", ".join(kwargs.get("to") or []),
            task_id,
            self.request.retries + 1,
            type(exc).__name__,
            exc,
        )


@shared_task(
    base=EmailTask,
    autoretry_for=(OSError,),
    max_retries=MAX_RETRIES,
    retry_backoff=RETRY_BACKOFF_SECONDS,
    retry_backoff_max=RETRY_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
)
def send_email(
    *,
    subject: str,
    body: str,
    to: list[str],
    from_email: str | None = None,
    html: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Send one rendered message (``html``: an HTML alternative of ``body``)."""
    message = EmailMultiAlternatives(
        header_safe(subject),
        body,
        from_email,
        list(to),
        headers={name: header_safe(str(value)) for name, value in (headers or {}).items()} or None,
    )
    if html:
        message.attach_alternative(html, "text/html")
    message.send()


def queue_email(
    *,
    subject: str,
    body: str,
    to: list[str],
    from_email: str | None = None,
    html: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Hand a message to the task queue (callers inside a transaction call this on commit).

    Only a broker that refuses the message raises here; a mail server that fails is the task's
    business (retried, then logged).
    """
    message = {"subject": subject, "body": body, "to": list(to), "from_email": from_email, "html": html}
    if headers:
        message["headers"] = dict(headers)
    send_email.delay(**message)

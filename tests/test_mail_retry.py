"""Outgoing email goes through the task queue (teleconsult.mail): retried while the mail server
fails, logged as an error when it never gets through, never failing the change that sent it, and
sent on one subject line even for a name saved with a line break.

Only the SMTP side is replaced: an email backend that fails like an unreachable server would.
"""

from __future__ import annotations

import logging
import smtplib

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.utils import timezone

from consultations import notifications
from consultations.models import Notification
from consultations.tasks import send_notification_email
from teleconsult.mail import MAX_RETRIES, queue_email, send_email

from .accounts.test_signup import signup


class FlakySMTPBackend(LocmemBackend):
    """Fails the first ``failures`` sends as an SMTP server that drops the connection, then delivers
    to the locmem outbox. ``attempts`` counts every send."""

    failures = 0
    attempts = 0

    def send_messages(self, messages):
        type(self).attempts += 1
        if type(self).attempts <= type(self).failures:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return super().send_messages(messages)


@pytest.fixture
def flaky_smtp(settings):
    FlakySMTPBackend.attempts = 0
    FlakySMTPBackend.failures = 0
    settings.EMAIL_BACKEND = f"{__name__}.FlakySMTPBackend"
    return FlakySMTPBackend


def test_message_reaches_the_outbox_in_eager_mode(db):
    queue_email(subject="Hello", body="Text", to=["someone@example.com"], html="<p>Text</p>")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Hello"
    assert mail.outbox[0].alternatives[0][1] == "text/html"


def test_a_failing_mail_server_is_retried_until_it_takes_the_message(flaky_smtp, caplog):
    flaky_smtp.failures = 2
    with caplog.at_level(logging.ERROR, logger="teleconsult.mail"):
        queue_email(subject="Report signed", body="Text", to=["someone@example.com"])
    assert flaky_smtp.attempts == 3
    assert [m.subject for m in mail.outbox] == ["Report signed"]
    assert not [r for r in caplog.records if r.name == "teleconsult.mail"]


def test_a_message_that_never_gets_through_is_logged_once_and_does_not_fail_the_sender(flaky_smtp, caplog):
    flaky_smtp.failures = 100
    with caplog.at_level(logging.ERROR, logger="teleconsult.mail"):
        queue_email(subject="Report signed", body="Text", to=["someone@example.com"])  # no exception
    assert flaky_smtp.attempts == 1 + MAX_RETRIES
    assert mail.outbox == []
    errors = [r for r in caplog.records if r.name == "teleconsult.mail" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    text = errors[0].getMessage()
    assert "Report signed" in text and "someone@example.com" in text and "SMTPServerDisconnected" in text
    assert f"after {1 + MAX_RETRIES} attempt(s)" in text


def test_task_retries_mail_server_errors_with_backoff():
    assert send_email.autoretry_for == (OSError,)
    assert issubclass(smtplib.SMTPException, OSError)
    assert send_email.retry_backoff and send_email.max_retries == MAX_RETRIES


def test_subject_with_a_line_break_is_sent_on_one_line(db):
    queue_email(subject="[teleconsult] Dr Evil\r\nBcc: victim@example.org asks", body="Text", to=["a@example.com"])
    assert [m.subject for m in mail.outbox] == ["[teleconsult] Dr Evil Bcc: victim@example.org asks"]
    assert "Bcc" not in str(mail.outbox[0].message()["Bcc"] or "")


def _notification(user, title: str) -> Notification:
    return Notification.objects.create(user=user, kind=Notification.Kind.INFO_REQUESTED, title=title, url="/x/")


def test_notification_email_for_a_name_saved_with_a_line_break_is_sent(physician):
    note = _notification(physician, "Dr Broken\nName needs more information on consult #1")
    assert send_notification_email(notification_pk=note.pk) is True
    assert [m.subject for m in mail.outbox] == ["[teleconsult] Dr Broken Name needs more information on consult #1"]
    assert mail.outbox[0].to == [physician.email]


def test_notification_email_is_retried_then_sent_once(physician, flaky_smtp):
    flaky_smtp.failures = 1
    note = _notification(physician, "Consult accepted")
    assert send_notification_email(notification_pk=note.pk) is True
    assert send_notification_email(notification_pk=note.pk) is False  # emailed_at: never twice
    assert flaky_smtp.attempts == 2
    assert len(mail.outbox) == 1


def test_notification_email_that_never_gets_through_is_logged(physician, flaky_smtp, caplog):
    flaky_smtp.failures = 100
    note = _notification(physician, "Consult accepted")
    with caplog.at_level(logging.ERROR, logger="teleconsult.mail"):
        notifications.email_notification(note)
    assert any("Consult accepted" in r.getMessage() for r in caplog.records if r.name == "teleconsult.mail")
    note.refresh_from_db()
    assert note.emailed_at is not None and note.emailed_at <= timezone.now()


def test_sign_up_succeeds_and_logs_when_the_confirmation_email_cannot_be_sent(client, db, flaky_smtp, caplog):
    flaky_smtp.failures = 100
    with caplog.at_level(logging.ERROR, logger="teleconsult.mail"):
        response = signup(client)
    assert response.status_code == 302
    errors = [r.getMessage() for r in caplog.records if r.name == "teleconsult.mail"]
    assert len(errors) == 1 and "newperson@example.com" in errors[0]

"""Sending one delivery: one try, signed, to the checked address, and what its outcome does.

Each try is a POST with the delivery's fixed JSON body, ``Teleconsult-Event``,
``Teleconsult-Delivery`` (the same on every try) and a fresh ``Teleconsult-Signature``; 5 s to
connect, 10 s for each read, no redirect followed (a 3xx is a failure, since following it would
send the body somewhere no one checked). A 2xx answer delivers it. Any other answer, or none,
fails the try: the task tries again later (``tasks.deliver``); after the last try the delivery has
failed for good, and a subscription whose deliveries keep failing is paused and its owners told.
"""

from __future__ import annotations

import time
from datetime import timedelta

import urllib3
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.outbox import send_after_commit
from teleconsult.links import absolute_url

from .. import notifications
from ..models import Notification
from ..models.webhooks import WebhookAttempt, WebhookDelivery, WebhookSubscription
from . import signing, targets
from .subscriptions import owners

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
USER_AGENT = "teleconsult-webhooks/1"
# The notification kind for a paused subscription (told in the portal and by email).
PAUSED_KIND = Notification.Kind.WEBHOOK_PAUSED


class DeliveryFailedError(Exception):
    """A try failed and another will be made (the task retries on this)."""


def _host_header(target: targets.Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def post(target: targets.Target, body: bytes, headers: dict[str, str]) -> int:
    """POST ``body`` to the checked address of ``target``; the answer's status code. The TLS
    certificate is checked against the host name typed, not the address."""
    timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT)
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            timeout=timeout,
            retries=False,
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout, retries=False)
    with pool:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": _host_header(target)},
            redirect=False,
            preload_content=False,
        )
        try:
            return response.status
        finally:
            response.close()


def headers_for(delivery: WebhookDelivery, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.EVENT_HEADER: delivery.event,
        signing.DELIVERY_HEADER: str(delivery.uuid),
        signing.SIGNATURE_HEADER: signing.header(delivery.subscription.secret, body),
    }


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return f"no connection within {CONNECT_TIMEOUT:g} s"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return f"no answer within {READ_TIMEOUT:g} s"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return f"TLS failed: {exc}"[:300]
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "connection refused or unreachable"
    return f"{type(exc).__name__}: {exc}"[:300]


def attempt(delivery_pk: int, *, number: int, last: bool) -> str:
    """Make try ``number`` of a pending delivery; its status afterwards. Raises DeliveryFailedError when
    the try failed and ``last`` is false (so the task tries again)."""
    delivery = WebhookDelivery.objects.select_related("subscription").filter(pk=delivery_pk).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return delivery.status if delivery else "gone"
    subscription = delivery.subscription
    if not subscription.is_active and not delivery.is_test:
        _finish(delivery, WebhookDelivery.Status.SKIPPED)
        return delivery.status
    body = delivery.body.encode()
    status_code, error = None, ""
    started = time.monotonic()
    try:
        status_code = post(targets.check(subscription.url), body, headers_for(delivery, body))
    except targets.WebhookTargetError as exc:
        error = exc.message[:300]
    except urllib3.exceptions.HTTPError as exc:
        error = _describe(exc)
    duration_ms = int((time.monotonic() - started) * 1000)
    if status_code is not None and not 200 <= status_code < 300:
        error = f"HTTP {status_code}" + (" (redirects are not followed)" if 300 <= status_code < 400 else "")
    WebhookAttempt.objects.create(
        delivery=delivery, number=number, status_code=status_code, error=error, duration_ms=duration_ms
    )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=number)
    if not error:
        _finish(delivery, WebhookDelivery.Status.DELIVERED)
        if not delivery.is_test:
            _succeeded(subscription)
        return delivery.status
    if not last:
        raise DeliveryFailedError(f"delivery {delivery.uuid} try {number}: {error}")
    _finish(delivery, WebhookDelivery.Status.FAILED)
    if not delivery.is_test:
        failed_for_good(subscription, delivery, error)
    return delivery.status


def _finish(delivery: WebhookDelivery, status: str) -> None:
    delivery.status = status
    delivery.completed_at = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=status, completed_at=delivery.completed_at)


def _succeeded(subscription: WebhookSubscription) -> None:
    WebhookSubscription.objects.filter(pk=subscription.pk).exclude(consecutive_failures=0).update(
        consecutive_failures=0, failing_since=None
    )


@transaction.atomic
def failed_for_good(subscription: WebhookSubscription, delivery: WebhookDelivery, error: str) -> bool:
    """Count a delivery that failed every try; pause the subscription (and tell its owners) after
    ``TELECONSULT_WEBHOOK_PAUSE_AFTER_FAILURES`` in a row, or once deliveries have failed for
    ``TELECONSULT_WEBHOOK_PAUSE_AFTER_HOURS``. True when this paused it."""
    sub = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    sub.consecutive_failures += 1
    sub.failing_since = sub.failing_since or delivery.created_at
    fields = ["consecutive_failures", "failing_since"]
    failing_for = timezone.now() - sub.failing_since
    due = sub.consecutive_failures >= settings.TELECONSULT_WEBHOOK_PAUSE_AFTER_FAILURES or failing_for >= timedelta(
        hours=settings.TELECONSULT_WEBHOOK_PAUSE_AFTER_HOURS
    )
    paused = sub.is_active and due
    if paused:
        sub.state = WebhookSubscription.State.PAUSED
        sub.paused_at = timezone.now()
        sub.paused_reason = (
            f"Paused after {sub.consecutive_failures} deliver{'y' if sub.consecutive_failures == 1 else 'ies'} "
            f"in a row failed every try (the last: {error})."
        )[:300]
        fields += ["state", "paused_at", "paused_reason"]
    sub.save(update_fields=fields)
    if paused:
        _tell_owners(sub)
    return paused


def _tell_owners(subscription: WebhookSubscription) -> None:
    url = reverse("consultations:webhook", args=[subscription.pk])
    whose = subscription.practice.name if subscription.practice_id else "all practices"
    title = f"Webhook to {subscription.url[:120]} paused"
    body = (
        f"{subscription.paused_reason} Nothing is sent to it for {whose} until it is resumed. Check the "
        "receiver, send a test event from the webhook's page, then resume it there."
    )
    people = owners(subscription)
    notifications.notify(people, kind=PAUSED_KIND, consult=None, title=title, body=body, url=url)
    text = f"{title}\n\n{body}\n\nOpen it in teleconsult: {absolute_url(url)}\n"
    for person in people:
        if person.email:
            send_after_commit(f"[teleconsult] {title}", text, [person.email])

"""Who manages which webhook subscriptions, and every change to one (pages and API alike).

Practice admins manage their practices' subscriptions; administrators manage those and the global
ones (told about every practice). Anyone else, and another practice's admin, gets a 404.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.utils import timezone

from accounts.models import Membership, Organization, Role, User
from accounts.practices import managed_practices
from teleconsult.errors import PortalError

from ..models.webhooks import WebhookEvent, WebhookSubscription, new_secret
from . import targets


class WebhookError(PortalError):
    """A subscription that cannot be made or changed as asked; the message names the problem."""

    code = "invalid_webhook"


def may_manage_webhooks(user) -> bool:
    return bool(user.is_authenticated and user.is_active and (user.is_admin or managed_practices(user).exists()))


def subscriptions_for(user):
    """The subscriptions ``user`` manages: all for administrators, their practices' for practice admins."""
    rows = WebhookSubscription.objects.select_related("practice", "created_by")
    if not user.is_authenticated or not user.is_active:
        return rows.none()
    if user.is_admin:
        return rows
    return rows.filter(practice__in=managed_practices(user))


def get_subscription_to_manage(user, pk) -> WebhookSubscription:
    """The subscription ``pk`` when ``user`` manages it; Http404 otherwise (existence does not leak)."""
    try:
        return subscriptions_for(user).get(pk=int(pk))
    except (WebhookSubscription.DoesNotExist, ValueError, TypeError):
        raise Http404("No such webhook.") from None


def practice_choices(user) -> list[Organization]:
    return list(managed_practices(user).distinct().order_by("name", "pk"))


def clean_events(events) -> list[str]:
    """The events asked for, deduplicated in the table's order; WebhookError naming any unknown one."""
    if isinstance(events, str):
        events = [events]
    if not isinstance(events, list | tuple) or not all(isinstance(event, str) for event in events):
        raise WebhookError("events must be a list of event names.", field="events", allowed=WebhookEvent.values)
    unknown = [event for event in events if event not in WebhookEvent.values]
    if unknown:
        raise WebhookError(
            f"Unknown event {unknown[0]!r}: choose from {', '.join(WebhookEvent.values)}.",
            field="events",
            allowed=WebhookEvent.values,
        )
    if not events:
        raise WebhookError("Choose at least one event.", field="events", allowed=WebhookEvent.values)
    return [event for event in WebhookEvent.values if event in events]


def _practice_for(user, practice_id) -> Organization | None:
    """The practice a new subscription belongs to: one ``user`` manages; None (global) only for
    administrators. Another practice reads as one that does not exist."""
    if practice_id in (None, ""):
        if user.is_admin:
            return None
        raise WebhookError("Choose the practice the webhook is for.", field="practice")
    try:
        return managed_practices(user).distinct().get(pk=int(practice_id))
    except (Organization.DoesNotExist, ValueError, TypeError):
        raise WebhookError(f"No practice {str(practice_id)[:20]!r} that you administer.", field="practice") from None


def create(
    user, *, url: str, events, practice_id=None, include_resource: bool = False, description: str = ""
) -> WebhookSubscription:
    """A new active subscription with a new secret (the caller shows it once)."""
    if not may_manage_webhooks(user):
        raise Http404("No such page.")
    practice = _practice_for(user, practice_id)
    return WebhookSubscription.objects.create(
        practice=practice,
        url=targets.clean_url(url),
        events=clean_events(events),
        include_resource=bool(include_resource),
        description=(description or "").strip()[:200],
        created_by=user,
    )


def update(subscription: WebhookSubscription, **changes) -> WebhookSubscription:
    """Change the URL, events, description or ``include_resource``; the rest is kept."""
    fields = []
    if "url" in changes:
        subscription.url = targets.clean_url(changes["url"])
        fields.append("url")
    if "events" in changes:
        subscription.events = clean_events(changes["events"])
        fields.append("events")
    if "include_resource" in changes:
        subscription.include_resource = bool(changes["include_resource"])
        fields.append("include_resource")
    if "description" in changes:
        subscription.description = (changes["description"] or "").strip()[:200]
        fields.append("description")
    if fields:
        subscription.save(update_fields=[*fields, "updated_at"])
    return subscription


def rotate_secret(subscription: WebhookSubscription) -> str:
    """A new secret, in force at once (deliveries still being retried are signed with it)."""
    subscription.secret = new_secret()
    subscription.secret_rotated_at = timezone.now()
    subscription.save(update_fields=["secret", "secret_rotated_at", "updated_at"])
    return subscription.secret


def pause(subscription: WebhookSubscription, *, reason: str = "Paused by hand.") -> None:
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        state=WebhookSubscription.State.PAUSED, paused_at=timezone.now(), paused_reason=reason[:300]
    )
    subscription.refresh_from_db()


def resume(subscription: WebhookSubscription) -> None:
    """Active again, with a clean record: the next failure starts a new count."""
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        state=WebhookSubscription.State.ACTIVE,
        paused_at=None,
        paused_reason="",
        consecutive_failures=0,
        failing_since=None,
    )
    subscription.refresh_from_db()


@transaction.atomic
def delete(subscription: WebhookSubscription) -> None:
    subscription.delete()


def owners(subscription: WebhookSubscription) -> list[User]:
    """Who is told when a subscription is paused: its practice's admins, or, for a global one,
    the administrators."""
    if subscription.practice_id is None:
        users = User.objects.filter(Q(role=Role.ADMIN) | Q(is_superuser=True))
    else:
        users = User.objects.filter(
            memberships__practice_id=subscription.practice_id, memberships__role=Membership.Role.ADMIN
        )
    return list(users.filter(is_active=True).distinct().order_by("pk"))

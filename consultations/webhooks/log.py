"""The delivery log is bounded: per subscription, the newest ``KEEP_DELIVERIES`` deliveries of the
last ``KEEP_DAYS`` days, each with its tries. Pruned as deliveries are added, so it never grows
with traffic and needs no beat task."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from ..models.webhooks import WebhookDelivery, WebhookSubscription

KEEP_DELIVERIES = 200
KEEP_DAYS = 30


def prune(subscription: WebhookSubscription) -> int:
    """Delete what falls outside the bound (the tries go with their delivery); how many deliveries."""
    rows = WebhookDelivery.objects.filter(subscription=subscription)
    label = WebhookDelivery._meta.label
    deleted = rows.filter(created_at__lt=timezone.now() - timedelta(days=KEEP_DAYS)).delete()[1].get(label, 0)
    newest = list(rows.order_by("-created_at", "-pk").values_list("pk", flat=True)[: KEEP_DELIVERIES + 1])
    if len(newest) > KEEP_DELIVERIES:
        deleted += rows.exclude(pk__in=newest[:KEEP_DELIVERIES]).delete()[1].get(label, 0)
    return deleted


def recent(subscription: WebhookSubscription, limit: int = 50):
    return subscription.deliveries.prefetch_related("attempt_log").order_by("-created_at", "-pk")[:limit]

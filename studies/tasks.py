"""Background work on stored images: thumbnails, a safety net for lost render messages, and the
daily sweep of stored files no row refers to."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from studies import rendering, sweep
from studies.models import Instance

logger = logging.getLogger(__name__)

MAX_RENDER_ATTEMPTS = 3
# An instance still waiting this long after it was stored lost its render message (or its worker).
PENDING_GRACE = timedelta(minutes=5)
# How many instances one pass of the safety net queues; the next pass takes the rest.
PENDING_BATCH = 500


@shared_task
def render_instance(*, instance_pk: int) -> None:
    """Make the instance's thumbnail, or record why there is none. Safe to run twice."""
    with transaction.atomic():
        instance = Instance.objects.select_for_update().filter(pk=instance_pk).first()
        if instance is None or instance.status != Instance.Status.PENDING:
            return
        if instance.render_attempts >= MAX_RENDER_ATTEMPTS:
            instance.mark_failed(
                reason=f"Gave up after {instance.render_attempts} attempts: rendering did not finish "
                f"(the worker may have run out of memory or time)"
            )
            return
        # Counted and committed before decoding, so a decoder that takes the whole worker down
        # still uses up an attempt and the message cannot loop forever.
        instance.render_attempts += 1
        instance.save(update_fields=["render_attempts"])

    with transaction.atomic():
        instance = Instance.objects.select_for_update().filter(pk=instance_pk).first()
        if instance is None or instance.status != Instance.Status.PENDING:
            return
        try:
            with transaction.atomic():
                rendering.make_thumbnail(instance)
        except BaseException as exc:
            if not (isinstance(exc, Exception) or rendering.is_decoder_panic(exc)):
                raise
            logger.exception("Rendering instance %s failed", instance_pk)
            instance.mark_failed(reason=f"Rendering failed: {type(exc).__name__}: {exc}")


@shared_task
def render_instances(*, instance_pks: list[int]) -> None:
    """Queue a render of each instance: ingest sends one message per batch and the worker fans it
    out, so a decoder that takes a worker down loses one instance's message, not the batch's."""
    for pk in instance_pks:
        render_instance.delay(instance_pk=pk)


@shared_task
def render_pending() -> int:
    """Queue thumbnails for instances that have waited too long; returns how many were queued."""
    cutoff = timezone.now() - PENDING_GRACE
    pks = list(
        Instance.objects.filter(status=Instance.Status.PENDING, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:PENDING_BATCH]
    )
    for pk in pks:
        render_instance.delay(instance_pk=pk)
    return len(pks)


@shared_task
def sweep_files() -> int:
    """Remove stored files no row refers to, older than TELECONSULT_SWEEP_GRACE_HOURS (run daily by
    beat); how many. Safe to run twice, or on two workers at once."""
    grace = timedelta(hours=settings.TELECONSULT_SWEEP_GRACE_HOURS)
    return sweep.sweep_unreferenced_files(grace=grace).removed

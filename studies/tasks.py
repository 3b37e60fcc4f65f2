"""Background work on stored images: thumbnails, a safety net for lost render messages, the
daily sweep of stored files no row refers to, priors pulled from DICOM nodes and results sent back."""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from celery import Task, shared_task
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


# -- priors and results back (studies.priors, studies.sending) ------------------------------------


@shared_task
def retrieve_prior(*, retrieval_pk: int) -> str:
    """Pull one prior study from its node (C-MOVE, C-GET or WADO-RS); its final status."""
    from studies import priors

    return priors.run(retrieval_pk)


# A result sent back is tried this many times, the waits growing from
# TELECONSULT_RESULTS_RETRY_SECONDS and capped at 30 minutes (half the broker's visibility timeout).
SEND_TRIES = 8
SEND_BACKOFF_MAX_SECONDS = 30 * 60


class _RecordLastFailure(Task):
    def apply(self, *args, throw=None, **kwargs):
        # Run in-process (no broker), each eager retry comes through apply(): the last failure is
        # recorded on the row, never raised into the change that queued the send.
        return super().apply(*args, throw=False, **kwargs)


def send_countdown(number: int) -> float:
    """Seconds before try ``number + 1``: exponential, with full jitter, within the cap."""
    ceiling = min(settings.TELECONSULT_RESULTS_RETRY_SECONDS * 2 ** (number - 1), SEND_BACKOFF_MAX_SECONDS)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - spreading retries, not a secret


@shared_task(bind=True, base=_RecordLastFailure, max_retries=SEND_TRIES - 1)
def send_result(self, *, send_pk: int) -> str:
    """C-STORE one result (a report PDF, a measurement SR) to the node its study came from."""
    from studies import sending

    number = self.request.retries + 1
    try:
        return sending.attempt(send_pk, number=number, last=number >= SEND_TRIES)
    except sending.SendFailedError as exc:
        raise self.retry(exc=exc, countdown=send_countdown(number)) from None

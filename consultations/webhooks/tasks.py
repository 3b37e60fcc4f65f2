"""Webhook tasks: fanning an event out to its subscribers, and delivering one delivery.

``deliver`` is retried with exponential back-off and full jitter: up to ``MAX_TRIES`` tries, the
waits growing from 30 s and capped at 30 minutes, so no countdown outlives the broker's visibility
timeout (an hour, teleconsult/settings.py; STYLE.md). All the tries of one delivery take about an
hour at most. Run in-process (no broker: development and unit tests) the retries follow at once and
the last failure is recorded, not raised into the change that queued it.
"""

from __future__ import annotations

from celery import Task, shared_task

from . import delivery, events

MAX_TRIES = 8
RETRY_BACKOFF_SECONDS = 30
RETRY_BACKOFF_MAX_SECONDS = 30 * 60


class DeliveryTask(Task):
    def apply(self, *args, throw=None, **kwargs):
        # Celery runs each eager retry through apply() again, so this holds for every try.
        return super().apply(*args, throw=False, **kwargs)


@shared_task
def fan_out_consult_event(*, event_pk: int) -> int:
    return len(events.fan_out_consult_event(event_pk))


@shared_task
def fan_out_study(*, study_pk: int) -> int:
    return len(events.fan_out_study(study_pk))


@shared_task(
    bind=True,
    base=DeliveryTask,
    autoretry_for=(delivery.DeliveryFailedError,),
    max_retries=MAX_TRIES - 1,
    retry_backoff=RETRY_BACKOFF_SECONDS,
    retry_backoff_max=RETRY_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
)
def deliver(self, *, delivery_pk: int) -> str:
    number = self.request.retries + 1
    return delivery.attempt(delivery_pk, number=number, last=number >= MAX_TRIES)

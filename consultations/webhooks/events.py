"""Which happenings are webhook events, and who is told.

A consult's timeline is the source (``ConsultEvent``, written by ``consultations.actions`` for every
change), mapped by ``CONSULT_EVENTS``:

| timeline kind | webhook event |
|---|---|
| submitted (the first time only) | ``consult.created`` |
| accepted | ``consult.accepted`` |
| info requested | ``consult.info_requested`` |
| reported | ``report.signed`` |
| addendum | ``report.amended`` |

A draft (timeline "created") is the requester's own until submitted, so ``consult.created`` is its
first submission; sending it out again after a decline is the same consult, not a new one. Studies
come from ``studies.signals.study_received`` (the ingest stored new studies' first files).

An event reaches the active subscriptions that ask for it, of the practice the study belongs to
and the global ones. The work is done after commit, by a task (nothing is sent about a change that
was rolled back, and the change's own request does not wait on it).
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.db.models import Q

from studies.models import Study

from ..models import ConsultEvent, ConsultRequest, Report
from ..models.webhooks import TEST_EVENT, WebhookDelivery, WebhookEvent, WebhookSubscription
from . import log, payloads

CONSULT_EVENTS = {
    ConsultEvent.Kind.SUBMITTED: WebhookEvent.CONSULT_CREATED,
    ConsultEvent.Kind.ACCEPTED: WebhookEvent.CONSULT_ACCEPTED,
    ConsultEvent.Kind.INFO_REQUESTED: WebhookEvent.CONSULT_INFO_REQUESTED,
    ConsultEvent.Kind.REPORTED: WebhookEvent.REPORT_SIGNED,
    ConsultEvent.Kind.ADDENDUM: WebhookEvent.REPORT_AMENDED,
}


def consult_event_recorded(event: ConsultEvent) -> None:
    """Inside the change's transaction: queue the fan-out after commit when the kind is an event."""
    if event.kind not in CONSULT_EVENTS:
        return
    from .tasks import fan_out_consult_event

    transaction.on_commit(lambda: fan_out_consult_event.delay(event_pk=event.pk))


def studies_received(study_pks: list[int]) -> None:
    """Inside the ingest's transaction: when a subscription may want to hear of these new studies,
    queue their fan-out after commit (an ingest nobody listens to queues nothing)."""
    practices = set(Study.objects.filter(pk__in=study_pks).values_list("practice_id", flat=True))
    listening = WebhookSubscription.objects.active().filter(Q(practice__isnull=True) | Q(practice__in=practices))
    if not any(sub.wants(WebhookEvent.STUDY_RECEIVED) for sub in listening.only("events")):
        return
    from .tasks import fan_out_study

    transaction.on_commit(lambda: [fan_out_study.delay(study_pk=pk) for pk in study_pks])


def _subscribers(event: str, practice_id: int):
    return [
        sub
        for sub in WebhookSubscription.objects.active().for_practice(practice_id).select_related("created_by")
        if sub.wants(event)
    ]


def _queue(subscription: WebhookSubscription, event: str, occurred_at, **about) -> WebhookDelivery:
    delivery_id = uuid.uuid4()
    payload = payloads.build(subscription, event, delivery_id=str(delivery_id), occurred_at=occurred_at, **about)
    delivery = WebhookDelivery.objects.create(
        uuid=delivery_id, subscription=subscription, event=event, body=payloads.encode(payload)
    )
    log.prune(subscription)
    from .tasks import deliver

    transaction.on_commit(lambda: deliver.delay(delivery_pk=delivery.pk))
    return delivery


def fan_out_consult_event(event_pk: int) -> list[WebhookDelivery]:
    """One delivery per subscriber of the timeline event ``event_pk``'s webhook event."""
    event = ConsultEvent.objects.select_related("consult__study").filter(pk=event_pk).first()
    if event is None or event.kind not in CONSULT_EVENTS:
        return []
    consult: ConsultRequest = event.consult
    if event.kind == ConsultEvent.Kind.SUBMITTED and consult.events.filter(kind=event.kind, pk__lt=event.pk).exists():
        return []  # sent out again after a decline: not a new consult
    name = CONSULT_EVENTS[event.kind]
    report = None
    if event.kind in (ConsultEvent.Kind.REPORTED, ConsultEvent.Kind.ADDENDUM):
        report = Report.objects.filter(consult=consult, version=event.data.get("report_version")).first()
    with transaction.atomic():
        return [
            _queue(sub, name, event.at, consult=consult, report=report)
            for sub in _subscribers(name, consult.study.practice_id)
        ]


def fan_out_study(study_pk: int) -> list[WebhookDelivery]:
    study = Study.objects.filter(pk=study_pk).first()
    if study is None:
        return []
    name = WebhookEvent.STUDY_RECEIVED
    with transaction.atomic():
        return [_queue(sub, name, study.created_at, study=study) for sub in _subscribers(name, study.practice_id)]


def send_test(subscription: WebhookSubscription) -> WebhookDelivery:
    """A ``webhook.test`` delivery, sent even while the subscription is paused (to check a receiver
    before resuming); it counts neither as a failure nor as a success of the subscription."""
    with transaction.atomic():
        return _queue(subscription, TEST_EVENT, None)

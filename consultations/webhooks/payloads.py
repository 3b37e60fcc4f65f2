"""What a delivery says: ids and FHIR references, no patient details, unless the subscription asks
for the resource itself.

``data`` names what the event is about by the portal's ids and by the references of the FHIR API
(``ServiceRequest/<consult id>``, ``DiagnosticReport/<consult id>``, ``ImagingStudy/<StudyInstanceUID>``),
which a receiver reads with its own credentials. With ``include_resource`` on, ``resource`` also
carries the consult, report or study as the REST API gives it to the person who made the
subscription, while they still manage it and may see it (else ``resource`` is null and
``resource_withheld`` says why): that is patient information, so it is off by default.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from studies.api.studies import StudySummarySerializer
from studies.models import Study

from .. import permissions
from ..api.serializers import ConsultReportSerializer, ConsultSerializer
from ..models import ConsultRequest, Report
from ..models.webhooks import TEST_EVENT, WebhookSubscription

API_VERSION = "1"


def consult_ref(consult: ConsultRequest) -> dict:
    return {
        "id": consult.pk,
        "reference": f"ServiceRequest/{consult.pk}",
        "state": consult.state,
        "priority": consult.priority,
        "specialty": consult.specialty,
    }


def report_ref(report: Report) -> dict:
    return {
        "id": report.pk,
        "version": report.version,
        # One DiagnosticReport per consult, its signed versions inside (the FHIR API's shape).
        "reference": f"DiagnosticReport/{report.consult_id}",
        "signed_at": report.signed_at,
    }


def study_ref(study: Study) -> dict:
    return {
        "id": study.pk,
        "reference": f"ImagingStudy/{study.study_instance_uid}",
        "modalities": study.modality_list,
        "num_series": study.num_series,
        "num_instances": study.num_instances,
    }


def _viewer(subscription: WebhookSubscription):
    """The account resources are shown as: the subscription's maker, while they still manage it."""
    from .subscriptions import subscriptions_for

    user = subscription.created_by
    if user is None or not subscriptions_for(user).filter(pk=subscription.pk).exists():
        return None
    return user


def _resource(subscription: WebhookSubscription, consult, report, study) -> tuple[dict | None, str]:
    viewer = _viewer(subscription)
    if viewer is None:
        return None, "The account that made this webhook no longer manages it."
    context = {"request": SimpleNamespace(user=viewer)}
    resource: dict = {}
    if consult is not None:
        visible = permissions.visible_consults(viewer).filter(pk=consult.pk).exists()
        if not visible or permissions.is_offer_only(viewer, consult):
            return None, "The account that made this webhook may not see this consult."
        resource["consult"] = ConsultSerializer(consult, context=context).data
    if report is not None:
        if not permissions.visible_reports(viewer, report.consult).filter(pk=report.pk).exists():
            return None, "The account that made this webhook may not read this report."
        resource["report"] = ConsultReportSerializer(report, context=context).data
    if study is not None and consult is None:
        if not Study.objects.visible_to(viewer).filter(pk=study.pk).exists():
            return None, "The account that made this webhook may not see this study."
        resource["study"] = StudySummarySerializer(study, context=context).data
    return resource, ""


def build(
    subscription: WebhookSubscription,
    event: str,
    *,
    delivery_id: str,
    occurred_at=None,
    consult: ConsultRequest | None = None,
    report: Report | None = None,
    study: Study | None = None,
) -> dict:
    data: dict = {}
    if consult is not None:
        data["consult"] = consult_ref(consult)
        study = consult.study
    if report is not None:
        data["report"] = report_ref(report)
    if study is not None:
        data["study"] = study_ref(study)
    practice_id = study.practice_id if study is not None else subscription.practice_id
    payload = {
        "id": delivery_id,
        "event": event,
        "api_version": API_VERSION,
        "occurred_at": occurred_at or timezone.now(),
        "practice": {"id": practice_id} if practice_id is not None else None,
        "data": data,
    }
    if subscription.include_resource and event != TEST_EVENT:
        payload["resource"], withheld = _resource(subscription, consult, report, study)
        if withheld:
            payload["resource_withheld"] = withheld
    return payload


def encode(payload: dict) -> str:
    """The body as sent (and signed): compact JSON, keys in a stable order."""
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"), sort_keys=True)

"""The patient portal (mobile first): my studies with a plain-language timeline, one study with
its images, signed reports and who looked at it, and the report PDF. Clinicians are sent to their
own pages; anything that is not the patient's is a 404."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe

from studies import audit
from studies.invitations import requests_for
from studies.models import AccessEvent, Instance
from studies.permissions import get_study_for_user, visible_studies

from .. import permissions
from ..portal import consults_for_study, signed_versions
from ..responses import report_pdf_response

RECENT_EVENTS = 10


def _first_thumbnail(study) -> Instance | None:
    return (
        Instance.objects.filter(series__study=study, status=Instance.Status.READY)
        .exclude(thumbnail="")
        .defer("metadata")
        .order_by("series__series_number", "series_id", "instance_number", "pk")
        .first()
    )


@require_safe
@login_required
def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_patient:
        return redirect("studies:list")
    studies = visible_studies(request.user).select_related("patient").order_by("-study_date", "-created_at")
    cards = [
        {"study": study, "thumbnail": _first_thumbnail(study), "consults": consults_for_study(request.user, study)}
        for study in studies
    ]
    waiting = list(requests_for(request.user))
    return render(request, "portal/home.html", {"cards": cards, "link_requests": waiting})


@require_safe
@login_required
def study(request: HttpRequest, study_uid: str) -> HttpResponse:
    if not request.user.is_patient:
        get_study_for_user(request.user, study_uid)
        return redirect("studies:detail", study_uid=study_uid)
    found = get_study_for_user(request.user, study_uid)
    consults = consults_for_study(request.user, found)
    audit.record(request, AccessEvent.Action.STUDY_VIEW, found)
    for _consult, report in consults.reports:
        audit.record(request, AccessEvent.Action.REPORT_VIEW, found, f"report:{report.pk}")
    thumbnails = list(
        Instance.objects.filter(series__study=found, status=Instance.Status.READY)
        .exclude(thumbnail="")
        .defer("metadata")
        .order_by("series__series_number", "series_id", "instance_number", "pk")[:12]
    )
    events = audit.visible_events(request.user).filter(study=found)[:RECENT_EVENTS]
    context = {"study": found, "consults": consults, "thumbnails": thumbnails, "events": events}
    return render(request, "portal/study.html", context)


@require_safe
@login_required
def report_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    consult = permissions.get_consult_for_user(request.user, pk)
    get_study_for_user(request.user, consult.study.study_instance_uid)
    response = report_pdf_response(consult, signed_versions(request.user, consult))
    response["Cache-Control"] = "private, no-store"
    audit.record(request, AccessEvent.Action.REPORT_PDF, consult.study, f"consult:{consult.pk}")
    return response

"""The patient portal (mobile first): my studies with a plain-language timeline, one study with
its images, signed reports (once released to the patient), questions to the care team about them
and who looked at it, and the report PDF. Clinicians are sent to their own pages; anything that is
not the patient's is a 404."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from studies import audit
from studies.invitations import requests_for
from studies.models import AccessEvent, Instance
from studies.permissions import get_study_for_user, visible_studies
from teleconsult.errors import on_refusal

from .. import actions, permissions, questions
from ..errors import FieldError
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
    return _study_page(request, get_study_for_user(request.user, study_uid))


def _study_page(request: HttpRequest, found, *, asking: dict | None = None, status: int = 200) -> HttpResponse:
    """``asking``: a question sent back with its refusal (``consult``, ``text``, ``error``), shown in its form."""
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
    context = {
        "study": found,
        "consults": consults,
        "thumbnails": thumbnails,
        "events": events,
        "asking": asking or {},
        "question_max": questions.MAX_TEXT,
    }
    return render(request, "portal/study.html", context, status=status)


@require_POST
@login_required
def ask_question(request: HttpRequest, pk: int) -> HttpResponse:
    """The patient asks the care team about their signed report (form under the report)."""
    consult = permissions.get_consult_for_user(request.user, pk)
    if not request.user.is_patient:
        raise Http404("No such question form.")
    found = get_study_for_user(request.user, consult.study.study_instance_uid)
    page = reverse("portal:study", args=[found.study_instance_uid])
    on_refusal(request, page + "#questions")
    text = request.POST.get("text", "")
    try:
        actions.ask_question(consult, by=request.user, text=text)
    except FieldError as exc:
        # Shown beside the field with what they wrote, so a long question is never lost.
        asking = {"consult": consult.pk, "text": text, "error": exc.message}
        return _study_page(request, found, asking=asking, status=400)
    messages.success(request, "Your question was sent to your care team. You will be told when they answer.")
    return redirect(page + "#questions")


@require_safe
@login_required
def report_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    consult = permissions.get_consult_for_user(request.user, pk)
    get_study_for_user(request.user, consult.study.study_instance_uid)
    response = report_pdf_response(consult, signed_versions(request.user, consult))
    response["Cache-Control"] = "private, no-store"
    audit.record(request, AccessEvent.Action.REPORT_PDF, consult.study, f"consult:{consult.pk}")
    return response

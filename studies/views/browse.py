"""Study browser pages: the study list, a study, a patient, and a study's processing status."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import F, Prefetch
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .. import audit, invitations, panels
from ..browse import StudyFilterForm, keys_in_order, search_studies, status_counts, with_summary
from ..models import AccessEvent, Instance
from ..paging import CappedPaginator
from ..permissions import get_patient_for_user, get_study_for_user, visible_studies
from .delete import deletion_panel

STUDIES_PER_PAGE = 25


def upload_url(user) -> str | None:
    """The upload page, for users who may upload and once that page exists."""
    if user.is_patient:
        return None
    try:
        return reverse("studies:upload")
    except NoReverseMatch:
        return None


def thumbnail_url(study_uid: str, sop_uid: str) -> str:
    return reverse("studies:thumbnail", kwargs={"study_uid": study_uid, "sop_uid": sop_uid})


@require_safe
@login_required
def study_list(request: HttpRequest) -> HttpResponse:
    visible = visible_studies(request.user)
    form = StudyFilterForm(request.GET or None)
    filters = form.valid_filters()
    paginator = CappedPaginator(
        with_summary(search_studies(visible, filters)),
        STUDIES_PER_PAGE,
        keys_for=keys_in_order(request.user, filters),
    )
    page = paginator.get_page(request.GET.get("page"))
    filtered = any(name != "sort" for name in filters)
    context = {
        "form": form,
        "page": page,
        "filtered": filtered,
        # Only asked when the page is empty, to tell "nothing yet" from "nothing matches".
        "has_any": bool(page.object_list) or (filtered and visible.exists()),
        "upload_url": upload_url(request.user),
    }
    return render(request, "studies/study_list.html", context)


def _series_with_instances(study):
    # Instance.metadata holds the whole DICOM header and is not needed to draw a strip.
    instances = Instance.objects.defer("metadata").order_by("instance_number", "created_at", "pk")
    return study.series.order_by(F("series_number").asc(nulls_last=True), "created_at", "pk").prefetch_related(
        Prefetch("instances", queryset=instances)
    )


@require_safe
@login_required
def study_detail(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    audit.record(request, AccessEvent.Action.STUDY_VIEW, study)
    series = list(_series_with_instances(study))
    instances = [instance for s in series for instance in s.instances.all()]
    context = {
        "study": study,
        "patient": study.patient,
        "series_list": series,
        "counts": status_counts(instance.status for instance in instances),
        "instance_total": len(instances),
        "upload_url": upload_url(request.user),
        "panels": panels.study_panels(request, study),
        "actions": panels.study_actions(request, study),
        "deletion": deletion_panel(request.user, study),
    }
    return render(request, "studies/study_detail.html", context)


@require_safe
@login_required
@never_cache
def study_status(request: HttpRequest, study_uid: str) -> JsonResponse:
    """Processing status of every instance of the study, polled by static/js/study.js."""
    study = get_study_for_user(request.user, study_uid)
    instances = list(
        Instance.objects.filter(series__study=study)
        .order_by("pk")
        .values_list("sop_instance_uid", "status", "failure_reason", "thumbnail")
    )
    counts = status_counts(status for _, status, _, _ in instances)
    rows = []
    for sop_uid, status, reason, thumbnail in instances:
        ready = status == Instance.Status.READY and bool(thumbnail)
        rows.append(
            {
                "sop_instance_uid": sop_uid,
                "status": status,
                "failure_reason": reason if status == Instance.Status.FAILED else "",
                "thumbnail_url": thumbnail_url(study.study_instance_uid, sop_uid) if ready else None,
            }
        )
    return JsonResponse(
        {
            "study_instance_uid": study.study_instance_uid,
            "total": len(rows),
            "counts": counts,
            "done": counts[Instance.Status.PENDING] == 0,
            "instances": rows,
        }
    )


@require_safe
@login_required
def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_patient_for_user(request.user, pk)
    studies = with_summary(search_studies(visible_studies(request.user).filter(patient=patient), {}))
    context = {
        "patient": patient,
        "studies": list(studies),
        "upload_url": upload_url(request.user),
        "may_invite": invitations.may_invite(request.user, patient),
        "panels": panels.patient_panels(request, patient),
    }
    return render(request, "studies/patient_detail.html", context)

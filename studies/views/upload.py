"""The browser upload page: files, folders and zip archives, each sent to the upload API with progress,
and what the page shows once they are in (each study the files went to)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

from accounts.practices import choosable_practices, default_practice

from .. import panels
from ..permissions import can_upload, get_study_for_user
from ..web import upload_refusal

# The upload page asks about the studies of one upload at a time; more is not a page's question.
MAX_SUMMARY_STUDIES = 50


@require_safe
@login_required
@ensure_csrf_cookie
def upload_page(request: HttpRequest) -> HttpResponse:
    if not can_upload(request.user):
        return render(request, "studies/upload.html", {"refusal": upload_refusal(request.user)}, status=403)
    practices = list(choosable_practices(request.user))
    chosen = default_practice(request.user)
    # "?then=<action>": reached from a button such as "Upload and ask for a second opinion"; the
    # page offers that study action first once a single study is in.
    then = request.GET.get("then", "")
    return render(
        request,
        "studies/upload.html",
        {
            "api_url": reverse("api-uploads"),
            "summary_url": reverse("studies:upload-summary"),
            "studies_url": reverse("studies:list"),
            "opened_at": timezone.now().isoformat(),
            "then": then if panels.is_study_action(then) else "",
            "max_file_size": settings.TELECONSULT_MAX_FILE_SIZE,
            "max_request_size": settings.TELECONSULT_MAX_REQUEST_SIZE,
            "practices": practices,
            "chosen_practice": chosen,
        },
    )


@require_safe
@login_required
@never_cache
def upload_summary(request: HttpRequest) -> JsonResponse:
    """The studies an upload's files went to (``?study=<uid>`` repeated), each with what the page
    shows above its files: description, modalities, how many images it holds, whether this upload
    started it (created since ``?since=``, the page's opening time) and the buttons other apps offer
    for it. Studies the user may not see are left out, like any study they may not see."""
    since = parse_datetime(request.GET.get("since", ""))
    uids = list(dict.fromkeys(request.GET.getlist("study")))
    if since is None or timezone.is_naive(since):
        return JsonResponse({"detail": "since must be a date and time with its offset (ISO 8601)."}, status=400)
    if not uids or len(uids) > MAX_SUMMARY_STUDIES:
        return JsonResponse({"detail": f"Name 1 to {MAX_SUMMARY_STUDIES} studies as ?study=<uid>."}, status=400)
    studies = []
    for uid in uids:
        try:
            study = get_study_for_user(request.user, uid)
        except Http404:
            continue
        studies.append(
            {
                "study_instance_uid": study.study_instance_uid,
                "description": study.description,
                "modalities": study.modality_list,
                "patient": study.patient.display_name,
                "study_date": study.study_date.isoformat() if study.study_date else None,
                "num_instances": study.num_instances,
                "is_new": study.created_at >= since,
                "url": reverse("studies:detail", kwargs={"study_uid": study.study_instance_uid}),
                "actions": [action.as_dict() for action in panels.study_actions(request, study)],
            }
        )
    return JsonResponse({"studies": studies})

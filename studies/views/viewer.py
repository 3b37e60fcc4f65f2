"""The study viewer page: the images of one study, in the browser, for anyone who may see it."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .. import audit
from ..models import AccessEvent
from ..permissions import get_study_for_user
from ..viewer import viewer_context


@require_GET
@login_required
def study_viewer(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    audit.record(request, AccessEvent.Action.VIEWER_LOAD, study)
    context = viewer_context(request.user, study, series_uid=request.GET.get("series", "")[:64])
    return render(request, "viewer/viewer.html", context)

"""The study viewer page: the images of one study, in the browser, for anyone who may see it."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .permissions import get_study_for_user


def viewer_is_read_only(user) -> bool:
    """Patients look at their images; clinicians may also measure and annotate."""
    return not (user.is_physician or user.is_specialist or user.is_admin)


@require_GET
@login_required
def study_viewer(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    context = {
        "study": study,
        "read_only": viewer_is_read_only(request.user),
        "series_uid": request.GET.get("series", "")[:64],
    }
    return render(request, "viewer/viewer.html", context)

"""The de-identified copy of a study, for clinicians: a zip download (see studies.deid).

The copy is a download only: a share link shows the stored study itself, so a de-identified copy
is shared by sending the downloaded archive.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.http import require_safe

from . import audit, deid
from .models import AccessEvent
from .permissions import get_study_for_user

DOWNLOAD_OBJECT = "deidentified"


def may_deidentify(user) -> bool:
    return bool(user.is_physician or user.is_specialist or user.is_admin)


def wants_flagged(request: HttpRequest) -> bool:
    return request.GET.get("include_burned_in", "").lower() in ("1", "true", "yes", "on")


@require_safe
@login_required
def deidentified_zip(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    if not may_deidentify(request.user):
        return HttpResponseForbidden("De-identified copies are made by the clinicians caring for the study.")
    include_flagged = wants_flagged(request)
    audit.record(
        request,
        AccessEvent.Action.DOWNLOAD,
        study,
        DOWNLOAD_OBJECT + ("+burned-in" if include_flagged else ""),
    )
    return deid.copy_response(study, include_flagged=include_flagged)

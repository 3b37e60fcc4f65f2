"""The de-identified copy of a study, for clinicians: a zip download (see studies.deid), from the
study page (``/studies/<uid>/deidentified.zip``) or the API (``/api/v1/studies/<uid>/deidentified/``).

The copy is a download only: a share link shows the stored study itself, so a de-identified copy
is shared by sending the downloaded archive.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.http import require_safe
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.views import APIView

from . import audit, deid
from .models import AccessEvent
from .permissions import get_study_for_user

DOWNLOAD_OBJECT = "deidentified"


def may_deidentify(user) -> bool:
    return bool(user.is_physician or user.is_specialist or user.is_admin)


def wants_flagged(request: HttpRequest) -> bool:
    return request.GET.get("include_burned_in", "").lower() in ("1", "true", "yes", "on")


REFUSAL = "De-identified copies are made by the clinicians caring for the study."


def _download(request, study) -> HttpResponse:
    include_flagged = wants_flagged(request)
    audit.record(
        request,
        AccessEvent.Action.DOWNLOAD,
        study,
        DOWNLOAD_OBJECT + ("+burned-in" if include_flagged else ""),
    )
    return deid.copy_response(study, include_flagged=include_flagged)


@require_safe
@login_required
def deidentified_zip(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    if not may_deidentify(request.user):
        return HttpResponseForbidden(REFUSAL)
    return _download(request, study)


class DeidentifiedCopyView(APIView):
    """The study as a zip of de-identified DICOM files (PS3.15 basic profile) with a README.txt
    that lists the files left out because their pixels or content may identify the patient."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "include_burned_in", bool, description="Include the flagged files anyway (check them before sharing)"
            )
        ],
        responses={(200, "application/zip"): OpenApiTypes.BINARY, 403: None, 404: None},
    )
    def get(self, request, study_uid: str):
        study = get_study_for_user(request.user, study_uid)
        if not may_deidentify(request.user):
            raise PermissionDenied(REFUSAL)
        return _download(request, study)

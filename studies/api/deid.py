"""``/api/v1/studies/{uid}/deidentified/``: the de-identified copy of a study (see studies.deid;
the page's download is ``studies.views.deid``)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.views import APIView

from ..permissions import get_study_for_user
from ..web import DEID_REFUSAL, deidentified_download, may_deidentify


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
            raise PermissionDenied(DEID_REFUSAL)
        return deidentified_download(request, study)

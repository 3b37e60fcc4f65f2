"""``DELETE /api/v1/studies/{study}/`` (on ``studies.StudyDetailView``), and the same for one series
(``.../series/{series}/``) or instance (``.../series/{series}/instances/{instance}/``): the rules of
``studies.deletion``, as DICOMweb's DELETE and the study page apply them."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import deletion

DELETE_RESPONSES = {
    204: OpenApiResponse(description="Deleted; the files go after TELECONSULT_SWEEP_GRACE_HOURS."),
    403: OpenApiResponse(description="You see the study but may not delete it (code may_not_delete)."),
    404: OpenApiResponse(description="No such study, series or instance, or one you may not see."),
    409: OpenApiResponse(description="A consult refers to the study (code study_in_use); detail says which."),
}


def delete_response(request, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None) -> Response:
    deletion.delete(request, request.user, study_uid, series_uid, sop_uid)
    return Response(status=status.HTTP_204_NO_CONTENT)


class SeriesDeleteView(APIView):
    """Delete one series of a study (its instances; the study too when it was its last series)."""

    @extend_schema(responses=DELETE_RESPONSES)
    def delete(self, request, study_uid: str, series_uid: str):
        return delete_response(request, study_uid, series_uid)


class InstanceDeleteView(APIView):
    """Delete one instance (its series and study too when it was their last)."""

    @extend_schema(responses=DELETE_RESPONSES)
    def delete(self, request, study_uid: str, series_uid: str, sop_uid: str):
        return delete_response(request, study_uid, series_uid, sop_uid)

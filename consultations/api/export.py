"""``POST /api/v1/consults/{id}/export-sr/``: the consult's measurements as a DICOM SR in its study."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import dicom_export, permissions
from .serializers import Conflict


class StoredObjectSerializer(serializers.Serializer):
    study_instance_uid = serializers.CharField()
    series_instance_uid = serializers.CharField(help_text="The new series that holds the SR")
    sop_instance_uid = serializers.CharField()
    sop_class_uid = serializers.CharField(help_text="Comprehensive 3D SR")
    retrieve_url = serializers.CharField(help_text="WADO-RS URL of the stored SR")


class ExportMeasurementsView(APIView):
    @extend_schema(
        request=None,
        responses={
            201: StoredObjectSerializer,
            403: Conflict,
            404: OpenApiResponse(description="No such consult, or you may not see it"),
            409: Conflict,
        },
        summary="Export the consult's measurements as a DICOM SR (TID 1500)",
        description="Lengths, angles and ellipse ROIs become an Imaging Measurement Report stored as a new "
        "series of the consult's study, retrievable over DICOMweb. Only the requester and the assigned "
        "specialist may export; 409 with code nothing_to_export when there are no measurements.",
    )
    def post(self, request, pk: int):
        consult = permissions.get_consult_for_user(request.user, pk)
        stored = dicom_export.export_measurements(consult, by=request.user)
        data = StoredObjectSerializer(
            {
                "study_instance_uid": stored.study_instance_uid,
                "series_instance_uid": stored.series_instance_uid,
                "sop_instance_uid": stored.sop_instance_uid,
                "sop_class_uid": stored.sop_class_uid,
                "retrieve_url": stored.retrieve_url,
            }
        ).data
        return Response(data, status=status.HTTP_201_CREATED)

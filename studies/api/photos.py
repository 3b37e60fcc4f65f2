"""``/api/v1/studies/{uid}/photos/``: add a photo or a PDF to a study (the page is
``studies.views.photos``). A refused file answers ``{"code", "detail"}`` with its status
(``studies.photos.PhotoRefusedError``, rendered by the API's error handler)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import photos
from ..models import Instance
from ..web import get_study_to_add_to, photo_request_too_large, photo_upload


def instance_body(instance: Instance) -> dict:
    study_uid = instance.series.study.study_instance_uid
    kwargs = {"study_uid": study_uid, "sop_uid": instance.sop_instance_uid}
    return {
        "instance_id": instance.pk,
        "sop_instance_uid": instance.sop_instance_uid,
        "sop_class_uid": instance.sop_class_uid,
        "series_instance_uid": instance.series.series_instance_uid,
        "study_instance_uid": study_uid,
        "modality": instance.series.modality,
        "status": instance.status,
        "thumbnail_url": reverse("studies:thumbnail", kwargs=kwargs),
        "file_url": reverse("studies:file", kwargs=kwargs),
    }


PhotoRequest = inline_serializer(
    "PhotoRequest", {"file": serializers.FileField(help_text="A JPEG, PNG or HEIC photo, or a PDF")}
)
PhotoResponse = inline_serializer(
    "PhotoInstance",
    {
        "instance_id": serializers.IntegerField(),
        "sop_instance_uid": serializers.CharField(),
        "sop_class_uid": serializers.CharField(help_text="VL Photographic Image or Encapsulated PDF"),
        "series_instance_uid": serializers.CharField(),
        "study_instance_uid": serializers.CharField(),
        "modality": serializers.CharField(help_text="XC for photos, DOC for documents"),
        "status": serializers.CharField(),
        "thumbnail_url": serializers.CharField(),
        "file_url": serializers.CharField(),
    },
)
PhotoError = inline_serializer(
    "PhotoError",
    {
        "code": serializers.CharField(help_text="empty, too_large, not_image, unsupported_image, not_pdf, no_file"),
        "detail": serializers.CharField(),
    },
)


class StudyPhotoView(APIView):
    """Add a photo (stored as a VL Photographic Image) or a PDF (an Encapsulated PDF) to a study."""

    parser_classes = [MultiPartParser]

    def initial(self, request, *args, **kwargs):
        # Measured before authentication: a session's CSRF check would read (and spool) the whole body.
        self.too_large = photo_request_too_large(request)
        if not self.too_large:
            super().initial(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": PhotoRequest},
        responses={201: PhotoResponse, 400: PhotoError, 404: None, 413: PhotoError},
    )
    def post(self, request, study_uid: str):
        if self.too_large:
            detail = f"The request is over the limit of {photos.max_size() // (1024 * 1024)} MB for one file."
            return Response({"code": "too_large", "detail": detail}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        study = get_study_to_add_to(request.user, study_uid)
        upload = photo_upload(request.FILES)
        if upload is None:
            return Response(
                {"code": "no_file", "detail": "Send the photo or PDF in the multipart field 'file'."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        instance = photos.add_to_study(study, upload, size=upload.size, filename=upload.name, user=request.user)
        return Response(instance_body(instance), status=status.HTTP_201_CREATED)

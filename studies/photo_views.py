"""Adding a photo or a PDF to a study from a phone: a mobile page and an API endpoint.

Both check the study first (404 for anyone who may not see it), then who may add to it, then hand
the file to ``studies.photos``. Every refusal names the problem; none is a server error.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from . import photos
from .models import Instance, Study
from .permissions import get_study_for_user

# Multipart framing around one file: a request much larger than the file limit is refused unread.
MULTIPART_ALLOWANCE = 64 * 1024


def _study_for_adding(user, study_uid: str) -> Study:
    study = get_study_for_user(user, study_uid)
    if not photos.may_add(user, study):
        raise Http404("No such study.")
    return study


def _too_large(request) -> bool:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > photos.max_size() + MULTIPART_ALLOWANCE


def _upload(files):
    return files.get("file") or files.get("document")


def study_page_url(user, study: Study) -> str:
    if user.is_patient:
        return reverse("portal:study", kwargs={"study_uid": study.study_instance_uid})
    return reverse("studies:detail", kwargs={"study_uid": study.study_instance_uid})


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


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def add_photo_page(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = _study_for_adding(request.user, study_uid)
    context = {
        "study": study,
        "patient": study.patient,
        "back_url": study_page_url(request.user, study),
        "max_size": photos.max_size(),
    }
    if request.method != "POST":
        return render(request, "studies/add_photo.html", context)
    if _too_large(request):
        context["error"] = f"The file is over the limit of {photos.max_size() // (1024 * 1024)} MB."
        return render(request, "studies/add_photo.html", context, status=413)
    upload = _upload(request.FILES)
    if upload is None:
        context["error"] = "Choose a photo or a PDF first."
        return render(request, "studies/add_photo.html", context, status=400)
    try:
        photos.add_to_study(study, upload, size=upload.size, filename=upload.name, user=request.user)
    except photos.PhotoRefusedError as exc:
        context["error"] = exc.reason
        return render(request, "studies/add_photo.html", context, status=exc.status)
    messages.success(request, "Added to the study. It appears with the other images in a moment.")
    return redirect(context["back_url"])


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
        self.too_large = _too_large(request)
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
        study = _study_for_adding(request.user, study_uid)
        upload = _upload(request.FILES)
        if upload is None:
            return Response(
                {"code": "no_file", "detail": "Send the photo or PDF in the multipart field 'file'."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            instance = photos.add_to_study(study, upload, size=upload.size, filename=upload.name, user=request.user)
        except photos.PhotoRefusedError as exc:
            return Response({"code": exc.code, "detail": exc.reason}, status=exc.status)
        return Response(instance_body(instance), status=status.HTTP_201_CREATED)

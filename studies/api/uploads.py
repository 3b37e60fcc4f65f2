"""``/api/v1/uploads/``: DICOM files or zip archives, each file answered with its own result."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import TooManyFilesSent
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.practices import PracticeError, upload_practice

from ..ingest import ALREADY_STORED, REFUSAL_CODES, STORED, ingest_files
from ..permissions import can_upload
from ..web import PATIENT_UPLOAD_MESSAGE, upload_refusal


class MayUpload(BasePermission):
    message = PATIENT_UPLOAD_MESSAGE

    def has_permission(self, request, view) -> bool:
        if can_upload(request.user):
            return True
        if request.user.is_authenticated:
            self.message = upload_refusal(request.user)
        return False


class IngestResultSerializer(serializers.Serializer):
    filename = serializers.CharField()
    status = serializers.ChoiceField(choices=["stored", "already_stored", "refused"])
    code = serializers.CharField(
        help_text="Why a file was refused: "
        + "; ".join(f"{code}: {meaning}" for code, meaning in REFUSAL_CODES.items())
    )
    reason = serializers.CharField(help_text="What is wrong with a refused file, in words")
    sop_class_uid = serializers.CharField()
    sop_instance_uid = serializers.CharField()
    study_instance_uid = serializers.CharField()
    series_instance_uid = serializers.CharField()
    instance_id = serializers.IntegerField(allow_null=True)
    coerced = serializers.BooleanField(help_text="Stored, but pydicom read it with warnings (see reason)")


UploadResponse = inline_serializer(
    "UploadResponse",
    {
        "results": IngestResultSerializer(many=True),
        "stored": serializers.IntegerField(),
        "already_stored": serializers.IntegerField(),
        "refused": serializers.IntegerField(),
        "detail": serializers.CharField(required=False),
    },
)
UploadRequest = inline_serializer(
    "UploadRequest",
    {
        "files": serializers.ListField(child=serializers.FileField(), help_text="DICOM files or zip archives"),
        "practice": serializers.IntegerField(
            required=False,
            help_text="The practice new studies are filed under (one you are a member of); "
            "your default practice when absent",
        ),
        "per_file": serializers.BooleanField(
            required=False,
            help_text="1: answer 200 with the results even when every file was refused (for clients that "
            "read each file's result, such as the upload page, a refused file is not a failed request)",
        ),
    },
)


def upload_response(results, *, per_file: bool = False) -> tuple[dict, int]:
    """The body and status of an upload: 201 when something was stored, 200 when nothing new but
    something already there, 400 when everything was refused (200 when ``per_file``: the client
    reads each file's result) or nothing was sent."""
    counts = {
        "stored": sum(r.status == STORED for r in results),
        "already_stored": sum(r.status == ALREADY_STORED for r in results),
    }
    counts["refused"] = len(results) - counts["stored"] - counts["already_stored"]
    body = {"results": [r.as_dict() for r in results], **counts}
    if not results:
        body["detail"] = "No files were sent: attach DICOM files or zip archives in the multipart field 'files'."
        return body, status.HTTP_400_BAD_REQUEST
    if counts["stored"]:
        return body, status.HTTP_201_CREATED
    if counts["already_stored"]:
        return body, status.HTTP_200_OK
    body["detail"] = (
        f"None of the {len(results)} file(s) was stored: each result says why it was refused."
        if len(results) > 1
        else f"The file was refused: {results[0].reason}"
    )
    return body, status.HTTP_200_OK if per_file else status.HTTP_400_BAD_REQUEST


def request_too_large(request) -> str | None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    limit = settings.TELECONSULT_MAX_REQUEST_SIZE
    if length > limit:
        return f"The upload is {length} bytes, over the limit of {limit} bytes per request; send fewer files at a time."
    return None


class UploadView(APIView):
    """Upload DICOM files (or zip archives of them); each file gets its own result."""

    permission_classes = [MayUpload]
    parser_classes = [MultiPartParser]

    def initial(self, request, *args, **kwargs):
        # Measured before authentication: a session's CSRF check would read (and spool) the whole body.
        self.too_large = request_too_large(request)
        if not self.too_large:
            super().initial(request, *args, **kwargs)

    @extend_schema(request={"multipart/form-data": UploadRequest}, responses={201: UploadResponse, 400: UploadResponse})
    def post(self, request):
        if self.too_large:
            return Response({"detail": self.too_large, "results": []}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        try:
            uploads = request.FILES.getlist("files")
        except TooManyFilesSent:
            return Response(
                {
                    "detail": f"Too many files in one request (at most {settings.DATA_UPLOAD_MAX_NUMBER_FILES}); "
                    "send them in several requests or as a zip archive.",
                    "results": [],
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            practice = upload_practice(
                request.user,
                request.data.get("practice") or request.query_params.get("practice"),
                remember=request.data.get("remember_practice") == "1",
            )
        except PracticeError as exc:
            # Named as the field at fault too, and with the (empty) results every upload answer has.
            return Response({"detail": exc.message, "practice": [exc.message], "results": []}, status=400)
        results = ingest_files([(upload.name, upload) for upload in uploads], user=request.user, practice=practice)
        body, code = upload_response(results, per_file=request.data.get("per_file") == "1")
        return Response(body, status=code)

"""Stored DICOM files and thumbnails, served only to users who may see the study.

Nothing under the media storage is public: every file goes through these views, which ask
``studies.permissions`` first and answer 404 to anyone else, so existence does not leak.
"""

from __future__ import annotations

import mimetypes
import os

from django.contrib.auth.decorators import login_required
from django.core.files import File
from django.db.models.fields.files import FieldFile
from django.http import Http404, HttpRequest
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_safe

from teleconsult.responses import FileStreamResponse

from .. import audit
from ..models import AccessEvent, Instance
from ..permissions import get_study_for_user

THUMBNAIL_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def get_instance_in_study_for_user(user, study_uid: str, sop_uid: str) -> Instance:
    study = get_study_for_user(user, study_uid)
    try:
        return Instance.objects.defer("metadata").get(series__study=study, sop_instance_uid=sop_uid)
    except Instance.DoesNotExist:
        raise Http404("No such instance.") from None


def _open(field: FieldFile) -> File:
    try:
        return field.open("rb")
    except FileNotFoundError:
        raise Http404("The stored file is missing.") from None


def _private(response: FileStreamResponse, max_age: int) -> FileStreamResponse:
    # Browsers may reuse the bytes, shared caches and proxies must not keep patient images.
    patch_cache_control(response, private=True, max_age=max_age)
    response["Vary"] = "Cookie"
    return response


@require_safe
@login_required
def instance_thumbnail(request: HttpRequest, study_uid: str, sop_uid: str) -> FileStreamResponse:
    instance = get_instance_in_study_for_user(request.user, study_uid, sop_uid)
    if instance.status != Instance.Status.READY or not instance.thumbnail:
        raise Http404("This instance has no thumbnail.")
    audit.record(request, AccessEvent.Action.THUMBNAIL, instance.series.study, sop_uid)
    extension = os.path.splitext(instance.thumbnail.name)[1].lower()
    content_type = THUMBNAIL_TYPES.get(extension) or mimetypes.guess_type(instance.thumbnail.name)[0]
    response = FileStreamResponse(_open(instance.thumbnail), content_type=content_type or "application/octet-stream")
    return _private(response, max_age=300)


@require_safe
@login_required
def instance_file(request: HttpRequest, study_uid: str, sop_uid: str) -> FileStreamResponse:
    instance = get_instance_in_study_for_user(request.user, study_uid, sop_uid)
    if not instance.file:
        raise Http404("This instance has no stored file.")
    audit.record(request, AccessEvent.Action.FILE, instance.series.study, sop_uid)
    response = FileStreamResponse(
        _open(instance.file),
        content_type="application/dicom",
        as_attachment=True,
        filename=f"{sop_uid}.dcm",
    )
    return _private(response, max_age=0)

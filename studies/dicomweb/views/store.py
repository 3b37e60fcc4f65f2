"""STOW-RS routes. They share their URLs with search (/studies) and retrieve (/studies/{study}):
``studies_root`` and ``study_root`` hand each method to its route."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

from accounts.practices import PracticeError, upload_practice

from ... import storage
from ...ingest import IngestBatch, ingest_paths
from ...models import Study
from ...permissions import get_study_for_user
from ..errors import DicomwebError
from ..media_types import DICOM_JSON, parse_media_type
from ..multipart import Part, read_multipart
from ..stow import RefusedPart, add_missing_preamble, stow_boundary, stow_response
from ..stow_body import SCOPE_KEY
from .common import Urls, dicomweb_route
from .retrieve import retrieve_study
from .search import search_studies


@csrf_exempt
def studies_root(request: HttpRequest) -> HttpResponse:
    """/dicomweb/studies: QIDO search (GET) and STOW store (POST)."""
    if request.method == "POST":
        return store(request)
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD", "POST"])
    return dicomweb_route()(search_studies)(request)


@csrf_exempt
def study_root(request: HttpRequest, study_uid: str) -> HttpResponse:
    """/dicomweb/studies/{study}: retrieve (GET) and STOW into that study (POST)."""
    if request.method == "POST":
        return store(request, study_uid=study_uid)
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD", "POST"])
    return dicomweb_route()(retrieve_study)(request, study_uid=study_uid)


@dicomweb_route(methods=("POST",))
def _store(request: HttpRequest, user, study_uid: str | None = None) -> HttpResponse:
    if user.is_patient:
        raise DicomwebError("Patient accounts cannot store studies.", status=403)
    try:
        practice = upload_practice(user, request.GET.get("practice"))
    except PracticeError as exc:
        raise DicomwebError(str(exc), status=400) from None
    if study_uid is not None and Study.objects.filter(study_instance_uid=study_uid).exists():
        get_study_for_user(user, study_uid)
    limit = settings.TELECONSULT_MAX_REQUEST_SIZE
    boundary = stow_boundary(request.META.get("CONTENT_TYPE", ""), request.META.get("CONTENT_LENGTH"), limit)

    urls = Urls(request)
    results: list = []
    with _received_parts(request, boundary, limit) as parts:
        accepted = []
        for number, part in enumerate(parts, start=1):
            name = (part.headers.get("content-location") or f"part {number}")[:255]
            part_media_type = parse_media_type(part.content_type)[0] if part.content_type else "application/dicom"
            if part_media_type != "application/dicom":
                reason = f"Part media type {part_media_type} is not accepted; send application/dicom."
                results.append(RefusedPart(filename=name, reason=reason))
                continue
            add_missing_preamble(part.path)
            accepted.append((name, part))
        # The whole request is one batch: its rows are written together and committed once.
        with IngestBatch(user, practice=practice) as batch:
            files = [(name, part.path) for name, part in accepted]
            results += ingest_paths(files, batch=batch, study_uid=study_uid, owned=True)
    status, dataset = stow_response(results, urls.instance, urls.study)
    return HttpResponse(json.dumps(dataset, separators=(",", ":")), status=status, content_type=DICOM_JSON)


@contextlib.contextmanager
def _received_parts(request: HttpRequest, boundary: str, limit: int) -> Iterator[list[Part]]:
    """The parts of a STOW-RS body: split as daphne handed it over (``studies.dicomweb.stow_body``, in front of
    Django), else split now from the body Django read. The files go when the block ends."""
    received = getattr(request, "scope", {}).get(SCOPE_KEY)
    if received is not None:
        if received.error is not None:
            raise received.error
        yield received.parts
        return
    with storage.request_dir() as directory:
        yield read_multipart(request, boundary, directory, max_size=limit)


def store(request: HttpRequest, study_uid: str | None = None) -> HttpResponse:
    return _store(request, study_uid=study_uid)

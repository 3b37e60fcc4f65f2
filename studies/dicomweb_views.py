"""DICOMweb (PS3.18) routes under /dicomweb/: QIDO-RS search, WADO-RS retrieve, STOW-RS store.

Each view authenticates (API token or session), finds what the user may see through
``studies.permissions`` and hands the work to ``studies.dicomweb``. Anything the user may not
see is a 404, exactly like something that does not exist; a search shows them nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator
from functools import partial, wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.http.response import Http404
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from PIL import Image
from rest_framework.authentication import CSRFCheck
from rest_framework.exceptions import AuthenticationFailed

from accounts.authentication import BearerlessTokenAuthentication
from accounts.practices import PracticeError, upload_practice
from teleconsult.responses import StreamingResponse

from . import audit, storage
from . import dicomweb as dw
from .ingest import IngestBatch, ingest_paths
from .models import Instance, Series, Study
from .permissions import get_instance_for_user, get_series_for_user, get_study_for_user, visible_studies
from .rendering import NotAnImage, RenderError, fit_within, middle_frame, read_header, render_frame
from .stow_body import SCOPE_KEY

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
THUMBNAIL_VIEWPORT = (256, 256)


# --- Plumbing ------------------------------------------------------------------------------


def error_response(message: str, status: int) -> HttpResponse:
    response = HttpResponse(json.dumps({"detail": message}), status=status, content_type="application/json")
    if status == 401:
        response["WWW-Authenticate"] = 'Token realm="dicomweb"'
    return response


def json_response(request: HttpRequest, data, status: int = 200) -> HttpResponse:
    media_type = dw.accepts_any(dw.parse_accept(request.headers.get("Accept")), dw.DICOM_JSON, "application/json")
    if media_type is None:
        raise dw.DicomwebError("This resource is available as application/dicom+json.", status=406)
    return HttpResponse(json.dumps(data, separators=(",", ":")), status=status, content_type=media_type)


def authenticate(request: HttpRequest):
    """The user behind an API token or a session; session writes must carry the CSRF token."""
    share_access = getattr(request, "share_access", None)
    if share_access is not None:  # mounted under a share link (studies.share_dicomweb)
        return share_access
    try:
        authenticated = BearerlessTokenAuthentication().authenticate(request)
    except AuthenticationFailed as exc:
        raise dw.DicomwebError(str(exc.detail), status=401) from None
    if authenticated is not None:
        return authenticated[0]
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_active:
        raise dw.DicomwebError("Authentication credentials were not provided.", status=401)
    if request.method not in SAFE_METHODS:
        check = CSRFCheck(lambda _request: None)
        check.process_request(request)
        reason = check.process_view(request, None, (), {})
        if reason:
            raise dw.DicomwebError(f"CSRF failed: {reason}", status=403)
    return user


def dicomweb_route(methods: tuple[str, ...] = ("GET", "HEAD")) -> Callable:
    """Method check, authentication and the error shape shared by every DICOMweb route.

    CSRF middleware is bypassed because token clients have no cookie; ``authenticate`` applies
    the same check to session-authenticated writes.
    """

    def decorate(view: Callable) -> Callable:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                return HttpResponseNotAllowed(methods)
            try:
                user = authenticate(request)
                response = view(request, user, *args, **kwargs)
                audit.record_dicomweb(request, user, response, kwargs)
                return response
            except dw.DicomwebError as exc:
                return error_response(exc.message, exc.status)
            except Http404 as exc:
                return error_response(str(exc) or "Not found.", 404)

        return wrapper

    return decorate


class Urls:
    """Absolute DICOMweb URLs for RetrieveURL and BulkDataURI, from the request's own origin."""

    def __init__(self, request: HttpRequest) -> None:
        share_root = getattr(request, "share_dicomweb_root", None)
        self.root = request.build_absolute_uri(f"{share_root}/studies" if share_root else reverse("dicomweb:studies"))

    def study(self, study_uid: str) -> str:
        return f"{self.root}/{study_uid}"

    def series(self, study_uid: str, series_uid: str) -> str:
        return f"{self.root}/{study_uid}/series/{series_uid}"

    def instance(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        return f"{self.root}/{study_uid}/series/{series_uid}/instances/{sop_uid}"


def open_stored(instance: Instance):
    try:
        return instance.file.storage.open(instance.file.name, "rb")
    except FileNotFoundError:
        raise Http404("The stored file is missing.") from None


# --- QIDO-RS -----------------------------------------------------------------------------


def qido_response(request: HttpRequest, data: list, query: dw.QidoQuery, more: bool) -> HttpResponse:
    response = json_response(request, data)
    warnings = []
    if query.unsupported:
        warnings.append(f'299 teleconsult "Matching is not supported on: {", ".join(query.unsupported)}"')
    if more:
        warnings.append(
            f'299 teleconsult "There are more than {dw.QIDO_MAX_RESULTS} results; '
            'ask for the rest with limit and offset"'
        )
    if warnings:
        response["Warning"] = ", ".join(warnings)
    return response


def search_studies(request: HttpRequest, user) -> HttpResponse:
    query = dw.parse_qido(request.GET, "study")
    urls = Urls(request)
    data, more = dw.search_studies(visible_studies(user), query, urls.study)
    return qido_response(request, data, query, more)


def _series_url(urls: Urls) -> Callable:
    return lambda s: urls.series(s.study.study_instance_uid, s.series_instance_uid)


def _instance_url(urls: Urls) -> Callable:
    return lambda i: urls.instance(i.series.study.study_instance_uid, i.series.series_instance_uid, i.sop_instance_uid)


@dicomweb_route()
def search_all_series(request: HttpRequest, user) -> HttpResponse:
    query = dw.parse_qido(request.GET, "series")
    series = Series.objects.filter(study__in=visible_studies(user))
    data, more = dw.search_series(series, query, _series_url(Urls(request)), with_study=True)
    return qido_response(request, data, query, more)


@dicomweb_route()
def search_study_series(request: HttpRequest, user, study_uid: str) -> HttpResponse:
    query = dw.parse_qido(request.GET, "series")
    study = get_study_for_user(user, study_uid)
    data, more = dw.search_series(
        Series.objects.filter(study=study), query, _series_url(Urls(request)), with_study=False
    )
    return qido_response(request, data, query, more)


@dicomweb_route()
def search_all_instances(request: HttpRequest, user) -> HttpResponse:
    query = dw.parse_qido(request.GET, "instance")
    instances = Instance.objects.filter(series__study__in=visible_studies(user))
    data, more = dw.search_instances(instances, query, _instance_url(Urls(request)))
    return qido_response(request, data, query, more)


@dicomweb_route()
def search_study_instances(request: HttpRequest, user, study_uid: str) -> HttpResponse:
    query = dw.parse_qido(request.GET, "instance")
    study = get_study_for_user(user, study_uid)
    instances = Instance.objects.filter(series__study=study)
    data, more = dw.search_instances(instances, query, _instance_url(Urls(request)))
    return qido_response(request, data, query, more)


@dicomweb_route()
def search_series_instances(request: HttpRequest, user, study_uid: str, series_uid: str) -> HttpResponse:
    query = dw.parse_qido(request.GET, "instance")
    series = get_series_for_user(user, study_uid, series_uid)
    data, more = dw.search_instances(series.instances.all(), query, _instance_url(Urls(request)))
    return qido_response(request, data, query, more)


# --- WADO-RS: instances and metadata ------------------------------------------------------


def retrieve_response(request: HttpRequest, instances) -> HttpResponse:
    instances = list(instances.only("pk", "file", "transfer_syntax_uid"))
    if not instances:
        raise Http404("Nothing to retrieve.")
    ranges = dw.parse_accept(request.headers.get("Accept"))
    if not dw.accepts_dicom(ranges, {i.transfer_syntax_uid for i in instances}):
        raise dw.DicomwebError(
            'Instances are sent as multipart/related; type="application/dicom" in their stored transfer syntax '
            "(ask with transfer-syntax=* or leave it out).",
            status=406,
        )
    boundary = dw.new_boundary()
    parts = (
        (
            f"application/dicom; transfer-syntax={instance.transfer_syntax_uid}",
            dw.file_chunks(partial(open_stored, instance)),
        )
        for instance in instances
    )
    return StreamingResponse(
        dw.multipart_stream(parts, boundary), content_type=dw.multipart_content_type("application/dicom", boundary)
    )


def ordered(instances):
    return instances.order_by("series__series_number", "series_id", "instance_number", "pk")


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


def retrieve_study(request: HttpRequest, user, study_uid: str) -> HttpResponse:
    study = get_study_for_user(user, study_uid)
    return retrieve_response(request, ordered(Instance.objects.filter(series__study=study)))


@dicomweb_route()
def retrieve_series(request: HttpRequest, user, study_uid: str, series_uid: str) -> HttpResponse:
    series = get_series_for_user(user, study_uid, series_uid)
    return retrieve_response(request, ordered(series.instances.all()))


@dicomweb_route()
def retrieve_instance(request: HttpRequest, user, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponse:
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    return retrieve_response(request, Instance.objects.filter(pk=instance.pk))


def metadata_response(request: HttpRequest, instances, study_uid: str) -> HttpResponse:
    urls = Urls(request)
    documents = [
        dw.instance_metadata_json(
            text,
            urls.instance(study_uid, series_uid, sop_uid),
            has_pixel_data=has_pixel_data,
            number_of_frames=frames,
            transfer_syntax=transfer_syntax,
            bits_allocated=bits,
        )
        for sop_uid, series_uid, has_pixel_data, frames, transfer_syntax, bits, text in dw.metadata_rows(
            ordered(instances)
        )
    ]
    media_type = dw.accepts_any(dw.parse_accept(request.headers.get("Accept")), dw.DICOM_JSON, "application/json")
    if media_type is None:
        raise dw.DicomwebError("Metadata is available as application/dicom+json.", status=406)
    return HttpResponse(f"[{','.join(documents)}]", content_type=media_type)


@dicomweb_route()
def study_metadata(request: HttpRequest, user, study_uid: str) -> HttpResponse:
    study = get_study_for_user(user, study_uid)
    return metadata_response(request, Instance.objects.filter(series__study=study), study.study_instance_uid)


@dicomweb_route()
def series_metadata(request: HttpRequest, user, study_uid: str, series_uid: str) -> HttpResponse:
    series = get_series_for_user(user, study_uid, series_uid)
    return metadata_response(request, series.instances.all(), study_uid)


@dicomweb_route()
def instance_metadata(request: HttpRequest, user, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponse:
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    return metadata_response(request, Instance.objects.filter(pk=instance.pk), study_uid)


# --- WADO-RS: frames ---------------------------------------------------------------------------


class ClosingIterator:
    """An iterator that closes its file when the response is closed, even if never started."""

    def __init__(self, iterator: Iterator[bytes], closer: Callable[[], None]) -> None:
        self.iterator = iterator
        self.closer = closer

    def __iter__(self) -> Iterator[bytes]:
        return self.iterator

    def close(self) -> None:
        self.closer()


@dicomweb_route()
def frames(request: HttpRequest, user, study_uid: str, series_uid: str, sop_uid: str, frame_list: str) -> HttpResponse:
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    if not instance.has_pixel_data:
        raise Http404("This instance has no pixel data.")
    numbers = dw.parse_frame_list(frame_list, instance.number_of_frames or 1)
    encoding = dw.frame_encoding(dw.parse_accept(request.headers.get("Accept")), instance.transfer_syntax_uid)
    if encoding is None:
        raise dw.DicomwebError(
            'Frames are sent as multipart/related; type="application/octet-stream" (native) or, with '
            f"transfer-syntax=* or {instance.transfer_syntax_uid}, in their stored encoding.",
            status=406,
        )
    handle = open_stored(instance)
    try:
        reader = dw.FrameReader(handle, instance.transfer_syntax_uid)
        # The first frame is read before answering, so a frame that cannot be read is an error status.
        first = reader.frame(numbers[0], keep_stored=encoding.keep_stored)
    except BaseException:
        handle.close()
        raise
    content_type = encoding.part_content_type

    def parts():
        yield content_type, [first]
        for number in numbers[1:]:
            yield content_type, [reader.frame(number, keep_stored=encoding.keep_stored)]

    boundary = dw.new_boundary()
    body = ClosingIterator(dw.multipart_stream(parts(), boundary), handle.close)
    return StreamingResponse(
        body,
        content_type=dw.multipart_content_type(encoding.media_type, boundary, encoding.transfer_syntax),
    )


@dicomweb_route()
def bulkdata(request: HttpRequest, user, study_uid: str, series_uid: str, sop_uid: str, tag: str) -> HttpResponse:
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    with open_stored(instance) as handle:
        value = dw.bulk_value(handle, tag)
    boundary = dw.new_boundary()
    body = b"".join(dw.multipart_stream([("application/octet-stream", [value])], boundary))
    return HttpResponse(body, content_type=dw.multipart_content_type("application/octet-stream", boundary))


# --- WADO-RS: rendered and thumbnails ----------------------------------------------------------


def encode_image(image: Image.Image, media_type: str, quality: int = 90) -> bytes:
    out = io.BytesIO()
    if media_type == "image/png":
        image.save(out, format="PNG")
    else:
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def render(instance: Instance, frame: int, params: dw.RenderParams) -> bytes:
    handle = open_stored(instance)
    try:
        image = render_frame(handle, frame=frame, window=params.window, viewport=params.viewport)
    except NotAnImage:
        raise dw.DicomwebError(f"Instance {instance.sop_instance_uid} holds no image to render.", status=404) from None
    except RenderError as exc:
        raise dw.DicomwebError(f"Instance {instance.sop_instance_uid} cannot be rendered: {exc}", status=422) from None
    finally:
        handle.close()
    return encode_image(image, params.media_type, params.quality)


def image_response(data: bytes, media_type: str) -> HttpResponse:
    response = HttpResponse(data, content_type=media_type)
    response["Cache-Control"] = "private, max-age=300"
    return response


@dicomweb_route()
def rendered_instance(request: HttpRequest, user, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponse:
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    params = dw.parse_render_params(request.GET, request.headers.get("Accept"))
    return image_response(render(instance, 1, params), params.media_type)


@dicomweb_route()
def rendered_frame(
    request: HttpRequest, user, study_uid: str, series_uid: str, sop_uid: str, frame_list: str
) -> HttpResponse:
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    params = dw.parse_render_params(request.GET, request.headers.get("Accept"))
    numbers = dw.parse_frame_list(frame_list, instance.number_of_frames or 1)
    if len(numbers) != 1:
        raise dw.DicomwebError("frame: ask for one frame number to render.")
    return image_response(render(instance, numbers[0], params), params.media_type)


@dicomweb_route()
def rendered_series(request: HttpRequest, user, study_uid: str, series_uid: str) -> HttpResponse:
    series = get_series_for_user(user, study_uid, series_uid)
    params = dw.parse_render_params(request.GET, request.headers.get("Accept"))
    instances = list(ordered(series.instances.filter(has_pixel_data=True)).defer("metadata"))
    if not instances:
        raise Http404("This series holds no images.")
    first = render(instances[0], 1, params)

    def parts():
        yield params.media_type, [first]
        for instance in instances[1:]:
            try:
                yield params.media_type, [render(instance, 1, params)]
            except dw.DicomwebError:
                continue  # an instance that cannot be rendered is left out of the series

    boundary = dw.new_boundary()
    return StreamingResponse(
        dw.multipart_stream(parts(), boundary), content_type=dw.multipart_content_type(params.media_type, boundary)
    )


def representative(instances) -> Instance:
    """The middle image of the first series with images: what a study or series thumbnail shows."""
    images = ordered(instances.filter(has_pixel_data=True)).defer("metadata")
    first = images.first()
    if first is None:
        raise Http404("There is no image to show.")
    in_series = images.filter(series_id=first.series_id)
    count = in_series.count()
    return in_series[count // 2] if count > 1 else first


def thumbnail_response(request: HttpRequest, instance: Instance) -> HttpResponse:
    params = dw.parse_render_params(request.GET, request.headers.get("Accept"))
    ranges = dw.parse_accept(request.GET.get("accept") or request.headers.get("Accept"))
    # The stored thumbnail serves unless a window is asked for or the viewport is larger than it.
    if instance.status == Instance.Status.READY and instance.thumbnail and params.window is None:
        name = instance.thumbnail.name.lower()
        stored_type = "image/png" if name.endswith(".png") else "image/jpeg"
        try:
            with instance.thumbnail.storage.open(instance.thumbnail.name, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            data = b""
        image = Image.open(io.BytesIO(data)) if data else None
        fits = image is not None and (
            params.viewport is None or (image.width <= params.viewport[0] and image.height <= params.viewport[1])
        )
        if fits and dw.accepts_any(ranges, stored_type):
            return image_response(data, stored_type)
        if fits or (image is not None and params.viewport and max(image.size) >= max(params.viewport)):
            if params.viewport:
                image = fit_within(image, params.viewport)
            return image_response(encode_image(image, params.media_type, params.quality), params.media_type)
    handle = open_stored(instance)
    try:
        frame = middle_frame(read_header(handle))
    except RenderError as exc:
        raise dw.DicomwebError(f"Instance {instance.sop_instance_uid} cannot be rendered: {exc}", status=422) from None
    finally:
        handle.close()
    viewport = params.viewport or THUMBNAIL_VIEWPORT
    thumb = dw.RenderParams(params.media_type, params.window, viewport, params.quality)
    return image_response(render(instance, frame, thumb), params.media_type)


@dicomweb_route()
def study_thumbnail(request: HttpRequest, user, study_uid: str) -> HttpResponse:
    study = get_study_for_user(user, study_uid)
    return thumbnail_response(request, representative(Instance.objects.filter(series__study=study)))


@dicomweb_route()
def series_thumbnail(request: HttpRequest, user, study_uid: str, series_uid: str) -> HttpResponse:
    series = get_series_for_user(user, study_uid, series_uid)
    return thumbnail_response(request, representative(series.instances.all()))


@dicomweb_route()
def instance_thumbnail(request: HttpRequest, user, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponse:
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    return thumbnail_response(request, instance)


# --- STOW-RS -----------------------------------------------------------------------------------


@dicomweb_route(methods=("POST",))
def _store(request: HttpRequest, user, study_uid: str | None = None) -> HttpResponse:
    if user.is_patient:
        raise dw.DicomwebError("Patient accounts cannot store studies.", status=403)
    try:
        practice = upload_practice(user, request.GET.get("practice"))
    except PracticeError as exc:
        raise dw.DicomwebError(str(exc), status=400) from None
    if study_uid is not None and Study.objects.filter(study_instance_uid=study_uid).exists():
        get_study_for_user(user, study_uid)
    limit = settings.TELECONSULT_MAX_REQUEST_SIZE
    boundary = dw.stow_boundary(request.META.get("CONTENT_TYPE", ""), request.META.get("CONTENT_LENGTH"), limit)

    urls = Urls(request)
    results: list = []
    with _received_parts(request, boundary, limit) as parts:
        accepted = []
        for number, part in enumerate(parts, start=1):
            name = (part.headers.get("content-location") or f"part {number}")[:255]
            part_media_type = dw.parse_media_type(part.content_type)[0] if part.content_type else "application/dicom"
            if part_media_type != "application/dicom":
                reason = f"Part media type {part_media_type} is not accepted; send application/dicom."
                results.append(dw.RefusedPart(filename=name, reason=reason))
                continue
            dw.add_missing_preamble(part.path)
            accepted.append((name, part))
        # The whole request is one batch: its rows are written together and committed once.
        with IngestBatch(user, practice=practice) as batch:
            files = [(name, part.path) for name, part in accepted]
            results += ingest_paths(files, batch=batch, study_uid=study_uid, owned=True)
    status, dataset = dw.stow_response(results, urls.instance, urls.study)
    return HttpResponse(json.dumps(dataset, separators=(",", ":")), status=status, content_type=dw.DICOM_JSON)


@contextlib.contextmanager
def _received_parts(request: HttpRequest, boundary: str, limit: int) -> Iterator[list[dw.Part]]:
    """The parts of a STOW-RS body: split as daphne handed it over (``studies.stow_body``, in front of
    Django), else split now from the body Django read. The files go when the block ends."""
    received = getattr(request, "scope", {}).get(SCOPE_KEY)
    if received is not None:
        if received.error is not None:
            raise received.error
        yield received.parts
        return
    with storage.request_dir() as directory:
        yield dw.read_multipart(request, boundary, directory, max_size=limit)


def store(request: HttpRequest, study_uid: str | None = None) -> HttpResponse:
    return _store(request, study_uid=study_uid)

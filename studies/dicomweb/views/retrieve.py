"""WADO-RS routes: instances as multipart/related DICOM, metadata as DICOM JSON, frames and bulk data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from django.http import HttpRequest, HttpResponse
from django.http.response import Http404

from teleconsult.responses import StreamingResponse

from ...models import Instance
from ...permissions import get_instance_for_user, get_series_for_user, get_study_for_user
from ..errors import DicomwebError
from ..media_types import DICOM_JSON, accepts_any, accepts_dicom, frame_encoding, parse_accept
from ..multipart import file_chunks, multipart_content_type, multipart_stream, new_boundary
from ..wado import FrameReader, bulk_value, instance_metadata_json, metadata_rows, parse_frame_list
from .common import Urls, dicomweb_route, open_stored, ordered


def retrieve_response(request: HttpRequest, instances) -> HttpResponse:
    instances = list(instances.only("pk", "file", "transfer_syntax_uid"))
    if not instances:
        raise Http404("Nothing to retrieve.")
    ranges = parse_accept(request.headers.get("Accept"))
    if not accepts_dicom(ranges, {i.transfer_syntax_uid for i in instances}):
        raise DicomwebError(
            'Instances are sent as multipart/related; type="application/dicom" in their stored transfer syntax '
            "(ask with transfer-syntax=* or leave it out).",
            status=406,
        )
    boundary = new_boundary()
    parts = (
        (
            f"application/dicom; transfer-syntax={instance.transfer_syntax_uid}",
            file_chunks(partial(open_stored, instance)),
        )
        for instance in instances
    )
    return StreamingResponse(
        multipart_stream(parts, boundary),
        content_type=multipart_content_type("application/dicom", boundary),
    )


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
        instance_metadata_json(
            text,
            urls.instance(study_uid, series_uid, sop_uid),
            has_pixel_data=has_pixel_data,
            number_of_frames=frames,
            transfer_syntax=transfer_syntax,
            bits_allocated=bits,
        )
        for sop_uid, series_uid, has_pixel_data, frames, transfer_syntax, bits, text in metadata_rows(
            ordered(instances)
        )
    ]
    media_type = accepts_any(parse_accept(request.headers.get("Accept")), DICOM_JSON, "application/json")
    if media_type is None:
        raise DicomwebError("Metadata is available as application/dicom+json.", status=406)
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
    numbers = parse_frame_list(frame_list, instance.number_of_frames or 1)
    encoding = frame_encoding(parse_accept(request.headers.get("Accept")), instance.transfer_syntax_uid)
    if encoding is None:
        raise DicomwebError(
            'Frames are sent as multipart/related; type="application/octet-stream" (native) or, with '
            f"transfer-syntax=* or {instance.transfer_syntax_uid}, in their stored encoding.",
            status=406,
        )
    handle = open_stored(instance)
    try:
        reader = FrameReader(handle, instance.transfer_syntax_uid)
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

    boundary = new_boundary()
    body = ClosingIterator(multipart_stream(parts(), boundary), handle.close)
    return StreamingResponse(
        body,
        content_type=multipart_content_type(encoding.media_type, boundary, encoding.transfer_syntax),
    )


@dicomweb_route()
def bulkdata(request: HttpRequest, user, study_uid: str, series_uid: str, sop_uid: str, tag: str) -> HttpResponse:
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    with open_stored(instance) as handle:
        value = bulk_value(handle, tag)
    boundary = new_boundary()
    body = b"".join(multipart_stream([("application/octet-stream", [value])], boundary))
    return HttpResponse(body, content_type=multipart_content_type("application/octet-stream", boundary))

"""WADO-RS routes: instances as multipart/related DICOM, metadata as DICOM JSON, frames and bulk data."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from django.http import HttpRequest, HttpResponse
from django.http.response import Http404

from teleconsult.responses import StreamingResponse

from ...models import Instance
from ...permissions import get_instance_for_user, get_series_for_user, get_study_for_user
from ..byte_ranges import file_range, ranged_response
from ..errors import DicomwebError
from ..media_types import (
    DICOM_JSON,
    EXPLICIT_VR_LITTLE_ENDIAN,
    FRAME_MEDIA_TYPES,
    NATIVE_LITTLE_ENDIAN,
    DicomOffer,
    FrameEncoding,
    accepts_any,
    dicom_offers,
    frame_encoding,
    parse_accept,
    type_matches,
)
from ..multipart import file_chunks, multipart_content_type, multipart_stream, new_boundary
from ..transcode import (
    TranscodeError,
    decoded_size_refusal,
    encode_frame,
    frame_targets,
    instance_targets,
    needs_decoding,
    syntax_name,
    transcode_instance,
)
from ..wado import FrameReader, bulk_value, instance_metadata_json, metadata_rows, parse_frame_list
from .common import Urls, dicomweb_route, open_stored, ordered

logger = logging.getLogger(__name__)


def warning_text(text: str) -> str:
    """A reason as one line that fits in a Warning header's quoted text."""
    return " ".join(text.replace('"', "'").split())[:300]


def choose_target(offers: list[DicomOffer], stored: str) -> tuple[str, DicomOffer] | None:
    """The first way the client takes instances that this instance can be given in."""
    targets = instance_targets(stored)
    for offer in offers:
        requested = offer.transfer_syntax
        if requested == "*":
            return stored, offer
        target = requested or EXPLICIT_VR_LITTLE_ENDIAN
        if target in targets:
            return target, offer
    return None


class Prepared:
    """An instance's bytes in a transfer syntax: the stored file, or a transcoded copy made now
    (raising TranscodeError when it cannot be made)."""

    def __init__(self, instance: Instance, target: str) -> None:
        self.instance, self.target, self.copy = instance, target, None
        if target != instance.transfer_syntax_uid:
            with open_stored(instance) as handle:
                self.copy = transcode_instance(handle, target)

    def open(self):
        return self.copy if self.copy is not None else open_stored(self.instance)

    def size(self) -> int:
        if self.copy is not None:
            return self.copy.seek(0, 2)
        with open_stored(self.instance) as handle:
            return handle.seek(0, 2)

    def close(self) -> None:
        if self.copy is not None:
            self.copy.close()


def retrieve_response(request: HttpRequest, instances) -> HttpResponse:
    """Instances in the transfer syntax the client asks for (PS3.18 8.7.3.5: Explicit VR Little Endian
    when it names none, the stored one for ``transfer-syntax=*``), one decoded at a time.

    An instance that cannot be given in any syntax the client takes is left out and named in a
    Warning header; 406 when none can be given. A transcode that fails once the answer has started
    leaves its part out (logged)."""
    instances = list(instances.only("pk", "file", "transfer_syntax_uid", "sop_instance_uid", *SHAPE_FIELDS))
    if not instances:
        raise Http404("Nothing to retrieve.")
    offers = dicom_offers(parse_accept(request.headers.get("Accept")))
    if not offers:
        raise DicomwebError(
            'Instances are sent as multipart/related; type="application/dicom" (or application/dicom for '
            "one instance), with an optional transfer-syntax parameter.",
            status=406,
        )
    plan, skipped = [], []
    for instance in instances:
        chosen = choose_target(offers, instance.transfer_syntax_uid)
        if chosen is None:
            available = ", ".join(instance_targets(instance.transfer_syntax_uid))
            skipped.append(
                f"instance {instance.sop_instance_uid} is stored as {syntax_name(instance.transfer_syntax_uid)} "
                f"and can be sent as {available} (or with transfer-syntax=*)"
            )
        elif (too_large := size_refusal(instance, chosen[0])) is not None:
            # Known from the database before answering, so it is named in the Warning header.
            target = syntax_name(chosen[0])
            skipped.append(f"instance {instance.sop_instance_uid} cannot be sent as {target}: {too_large}")
        else:
            plan.append((instance, *chosen))
    # The first part is made before answering, so an instance that cannot be transcoded is a warning
    # (or the 406) rather than a broken answer.
    first = None
    while plan and first is None:
        instance, target, offer = plan[0]
        try:
            first = Prepared(instance, target)
        except TranscodeError as exc:
            skipped.append(
                f"instance {instance.sop_instance_uid} cannot be sent as {syntax_name(target)}: {exc.message}"
            )
            plan.pop(0)
    if first is None:
        raise DicomwebError(
            "No instance can be sent in a transfer syntax the client accepts: " + "; ".join(skipped), 406
        )
    single = len(instances) == 1 and plan[0][2].single_part
    if single:
        response = single_instance_response(request, first)
    else:
        response = multipart_instances(plan, first)
    if skipped:
        response["Warning"] = ", ".join(f'299 teleconsult "{warning_text(text)}"' for text in skipped)
    return response


SHAPE_FIELDS = ("has_pixel_data", "rows", "columns", "number_of_frames", "bits_allocated", "photometric_interpretation")


def size_refusal(instance: Instance, target: str) -> str | None:
    """Why the instance is too large to be decoded for ``target``, judged by its indexed header
    (the transcoder checks the stored header again)."""
    if not instance.has_pixel_data or not needs_decoding(instance.transfer_syntax_uid, target):
        return None
    photometric = (instance.photometric_interpretation or "").upper()
    return decoded_size_refusal(
        rows=instance.rows or 0,
        columns=instance.columns or 0,
        frames=instance.number_of_frames or 1,
        samples=3 if photometric.startswith(("RGB", "YBR", "HSV")) else 1,
        bits_allocated=instance.bits_allocated or 16,
    )


def multipart_instances(plan, first: Prepared) -> HttpResponse:
    def parts():
        for index, (instance, target, _offer) in enumerate(plan):
            try:
                prepared = first if index == 0 else Prepared(instance, target)
            except TranscodeError as exc:
                logger.warning("WADO-RS: instance %s left out: %s", instance.sop_instance_uid, exc.message)
                continue
            yield f"application/dicom; transfer-syntax={target}", file_chunks(prepared.open)

    boundary = new_boundary()
    body = ClosingIterator(multipart_stream(parts(), boundary), first.close)
    return StreamingResponse(body, content_type=multipart_content_type("application/dicom", boundary))


def single_instance_response(request: HttpRequest, prepared: Prepared) -> HttpResponse:
    """One instance as a single application/dicom part, with byte ranges (a resumed download)."""
    response = ranged_response(
        request,
        size=prepared.size(),
        content_type=f"application/dicom; transfer-syntax={prepared.target}",
        read=lambda start, length: ClosingIterator(file_range(prepared.open, start, length), prepared.close),
    )
    if not response.streaming:  # a 416: nothing was read, so no response closes the transcoded copy
        prepared.close()
    return response


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
    stored = instance.transfer_syntax_uid
    handle = open_stored(instance)
    try:
        reader = FrameReader(handle, stored)
        encodable = frame_targets(reader.transfer_syntax, reader.dataset.get("LossyImageCompression"))
        encoding = frame_encoding(parse_accept(request.headers.get("Accept")), reader.transfer_syntax, encodable)
        if encoding is None:
            raise DicomwebError(frames_refusal(reader.transfer_syntax, encodable), status=406)
        # The first frame is read before answering, so a frame that cannot be read is an error status.
        first = frame_bytes(reader, numbers[0], encoding)
    except BaseException:
        handle.close()
        raise
    content_type = encoding.part_content_type

    def parts():
        yield content_type, [first]
        for number in numbers[1:]:
            yield content_type, [frame_bytes(reader, number, encoding)]

    boundary = new_boundary()
    body = ClosingIterator(multipart_stream(parts(), boundary), handle.close)
    return StreamingResponse(
        body,
        content_type=multipart_content_type(encoding.media_type, boundary, encoding.transfer_syntax),
    )


def frame_bytes(reader: FrameReader, number: int, encoding: FrameEncoding) -> bytes:
    """A frame as stored, native, or encoded in the negotiated syntax."""
    if encoding.keep_stored or encoding.transfer_syntax in NATIVE_LITTLE_ENDIAN:
        return reader.frame(number, keep_stored=encoding.keep_stored)
    try:
        return encode_frame(reader.decoded_array(number), reader.dataset, encoding.transfer_syntax)
    except TranscodeError as exc:
        raise DicomwebError(f"Frame {number}: {exc.message}", status=422) from None


def frames_refusal(stored: str, encodable) -> str:
    """What a client can ask frames for, for a 406."""
    offers = ['multipart/related; type="application/octet-stream" (native, Explicit VR Little Endian)']
    stored_type = FRAME_MEDIA_TYPES.get(stored)
    if stored_type:
        offers.append(f'type="{stored_type}" or application/octet-stream with transfer-syntax=* (stored as {stored})')
    offers += [
        f'type="{FRAME_MEDIA_TYPES[ts]}" (encoded as {ts})' for ts in sorted(encodable) if ts in FRAME_MEDIA_TYPES
    ]
    return "Frames of this instance are available as " + "; ".join(offers) + "."


@dicomweb_route()
def bulkdata(request: HttpRequest, user, study_uid: str, series_uid: str, sop_uid: str, tag: str) -> HttpResponse:
    """A bulk data value: multipart/related by default, a single application/octet-stream part (with
    byte ranges) when the client asks for that."""
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    ranges = parse_accept(request.headers.get("Accept"))
    with open_stored(instance) as handle:
        value = bulk_value(handle, tag)
    if ranges and ranges[0].type == "application/octet-stream":
        return ranged_response(
            request,
            size=len(value),
            content_type="application/octet-stream",
            read=lambda start, length: [value[start : start + length]],
        )
    if (
        ranges
        and not any(
            type_matches(r.type, "multipart/related") and type_matches(r.part_type, "application/octet-stream")
            for r in ranges
        )
        and not any(r.type == "application/octet-stream" for r in ranges)
    ):
        raise DicomwebError(
            'Bulk data is sent as multipart/related; type="application/octet-stream", or as '
            "application/octet-stream for a single value.",
            status=406,
        )
    boundary = new_boundary()
    body = b"".join(multipart_stream([("application/octet-stream", [value])], boundary))
    return HttpResponse(body, content_type=multipart_content_type("application/octet-stream", boundary))

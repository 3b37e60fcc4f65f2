"""WADO-RS (PS3.18 8.4, 8.7.3): instance metadata as DICOM JSON with BulkDataURIs, frames read
one at a time from the stored file, bulk data values, and the parameters of rendered resources."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from pydicom import dcmread
from pydicom.encaps import encapsulate, get_frame
from pydicom.pixels import as_pixel_options, get_decoder, pixel_array
from pydicom.uid import UID

from ..rendering import MAX_FRAME_PIXELS, NotAnImage, RenderError, load_frame
from .errors import DicomwebError
from .media_types import NATIVE_LITTLE_ENDIAN, NOT_ENCAPSULATED, accepts_any, parse_accept
from .qido import parse_int

logger = logging.getLogger(__name__)

PIXEL_DATA = "7FE00010"


def pixel_data_vr(transfer_syntax: str, bits_allocated: int | None) -> str:
    compressed = transfer_syntax not in NATIVE_LITTLE_ENDIAN
    return "OB" if compressed or (bits_allocated or 16) <= 8 else "OW"


METADATA_FIELDS = (
    "sop_instance_uid",
    "series__series_instance_uid",
    "has_pixel_data",
    "number_of_frames",
    "transfer_syntax_uid",
    "bits_allocated",
    "metadata_text",
)
# Pixel data kept in the stored header as its VR alone (ingest leaves bulk data out).
PIXEL_ELEMENT_RE = re.compile(r'"(7FE000(?:08|09|10))":\s*\{"vr":\s*"(\w\w)"\}')
# Other bulk data left out the same way; the bulkdata resource serves their values.
BULK_ELEMENT_RE = re.compile(r'"([0-9A-F]{8})":\s*\{"vr":\s*"(OB|OD|OF|OL|OV|OW|UN)"\}')
PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}


# AvailableTransferSyntaxUID (0008,3002).
AVAILABLE_TRANSFER_SYNTAX = "00083002"


def metadata_rows(instances: QuerySet) -> QuerySet:
    """Rows for ``instance_metadata_json``: the stored header as JSON text, never decoded."""
    return instances.annotate(metadata_text=Cast("metadata", TextField())).values_list(*METADATA_FIELDS)


def instance_metadata_json(
    text: str | None,
    instance_url: str,
    *,
    has_pixel_data: bool,
    number_of_frames: int | None,
    transfer_syntax: str,
    bits_allocated: int | None,
) -> str:
    """The stored header as DICOM JSON text, with the pixel data as a BulkDataURI to its frames.

    The stored text passes through as it is: decoding and re-encoding every header would be most
    of the cost of a large series' metadata, which viewers ask for before showing anything.
    """
    text = (text or "{}").strip()
    if transfer_syntax and f'"{AVAILABLE_TRANSFER_SYNTAX}"' not in text:
        # The stored transfer syntax, as QIDO-RS and viewers read it (OHIF; the portal's viewer
        # marks lossy pixels by it): the header itself carries no file meta information.
        element = f'"{AVAILABLE_TRANSFER_SYNTAX}": {{"vr": "UI", "Value": [{json.dumps(transfer_syntax)}]}}'
        text = f"{{{element}}}" if text == "{}" else f"{text[:-1]}, {element}}}"
    text = BULK_ELEMENT_RE.sub(
        lambda m: (
            m.group(0)
            if m.group(1).startswith("7FE000")
            else f'"{m.group(1)}": {{"vr": "{m.group(2)}", "BulkDataURI": "{instance_url}/bulkdata/{m.group(1)}"}}'
        ),
        text,
    )
    if not has_pixel_data:
        return text
    frames = ",".join(str(n) for n in range(1, (number_of_frames or 1) + 1))
    frames_uri = f"{instance_url}/frames/{frames}"
    if len(PIXEL_ELEMENT_RE.findall(text)) > 1:
        # Pixel data inside sequence items too (an IconImageSequence's icon): rare, so only these
        # headers are decoded to tell the instance's own pixel data from the items'.
        return json.dumps(with_pixel_uris(json.loads(text), frames_uri, f"{instance_url}/bulkdata"))
    uri = json.dumps(frames_uri)
    text, count = PIXEL_ELEMENT_RE.subn(
        lambda m: f'"{m.group(1)}": {{"vr": "{m.group(2)}", "BulkDataURI": {uri}}}', text, count=1
    )
    if count or f'"{PIXEL_DATA}"' in text:
        return text
    element = f'"{PIXEL_DATA}": {{"vr": "{pixel_data_vr(transfer_syntax, bits_allocated)}", "BulkDataURI": {uri}}}'
    return f"{{{element}}}" if text == "{}" else f"{text[:-1]}, {element}}}"


def with_pixel_uris(dataset: dict, frames_uri: str, bulkdata_uri: str) -> dict:
    """A header whose sequence items hold pixel data: the top-level pixel data points at the
    instance's frames, each item's (an icon's) at the bulkdata resource by its path
    (``.../bulkdata/00880200/1/7FE00010``: sequence, item from 1, tag)."""

    def items(node: dict, prefix: str) -> None:
        for tag, element in node.items():
            if element.get("vr") != "SQ":
                continue
            for number, item in enumerate(element.get("Value") or [], start=1):
                for inner, value in item.items():
                    if int(inner, 16) in PIXEL_TAGS and set(value) == {"vr"}:
                        value["BulkDataURI"] = f"{bulkdata_uri}/{prefix}{tag}/{number}/{inner}"
                items(item, f"{prefix}{tag}/{number}/")

    items(dataset, "")
    for tag in PIXEL_TAGS:
        element = dataset.get(f"{tag:08X}")
        if element is not None and set(element) == {"vr"}:
            element["BulkDataURI"] = frames_uri
    return dataset


class FrameReader:
    """Reads single frames of a stored instance without loading its whole pixel data."""

    def __init__(self, handle: BinaryIO, transfer_syntax: str) -> None:
        self.handle = handle
        self.dataset = dcmread(handle, defer_size=1024)
        self.transfer_syntax = str(self.dataset.file_meta.get("TransferSyntaxUID", transfer_syntax))
        element = self.dataset.get_item(0x7FE00010, keep_deferred=True)
        if element is None:
            raise DicomwebError("The instance has no pixel data.", status=404)
        self.value_tell = getattr(element, "value_tell", None)
        try:
            self.number_of_frames = max(int(str(self.dataset.get("NumberOfFrames") or 1).strip() or 1), 1)
            self.bits_allocated = int(self.dataset.BitsAllocated)
            self.rows, self.columns = int(self.dataset.Rows), int(self.dataset.Columns)
            self.samples = samples = int(self.dataset.get("SamplesPerPixel") or 1)
            photometric = str(self.dataset.get("PhotometricInterpretation") or "").strip().upper()
            if photometric == "YBR_FULL_422" and self.transfer_syntax in NATIVE_LITTLE_ENDIAN:
                samples = 2  # natively each pair of pixels is Y Y Cb Cr: two samples a pixel (PS3.3 C.7.6.3.1.2)
            self.frame_length = self.rows * self.columns * samples * self.bits_allocated // 8
        except (AttributeError, TypeError, ValueError) as exc:
            raise DicomwebError(f"The stored image header cannot describe its frames: {exc}", status=422) from None

    def stored(self, number: int) -> bytes:
        """Frame ``number`` (1-based) exactly as stored: native bytes or one compressed frame."""
        if self.transfer_syntax in NATIVE_LITTLE_ENDIAN and self.value_tell is not None:
            if self.bits_allocated == 1:
                return self.decoded(number)
            self.handle.seek(self.value_tell + (number - 1) * self.frame_length)
            data = self.handle.read(self.frame_length)
            if len(data) < self.frame_length:
                raise DicomwebError(f"Frame {number} is cut short in the stored file.", status=422)
            return data
        if self.value_tell is None:
            return self.decoded(number)
        self.handle.seek(self.value_tell)
        try:
            return get_frame(self.handle, number - 1, number_of_frames=self.number_of_frames)
        except (ValueError, KeyError, EOFError) as exc:
            raise DicomwebError(f"Frame {number} cannot be read from the stored file: {exc}", status=422) from None

    @property
    def decoded_frame_bytes(self) -> int:
        """Memory one decoded frame takes: pydicom gives colour as three samples a pixel, and 1-bit
        data as a byte a pixel."""
        return self.rows * self.columns * self.samples * max(self.bits_allocated, 8) // 8

    def require_decodable(self, number: int) -> None:
        """Refuse, before decoding anything, a frame larger than the renderer would decode."""
        if self.rows * self.columns > MAX_FRAME_PIXELS:
            raise DicomwebError(
                f"Frame {number} is too large to decode here: {self.columns} x {self.rows} pixels, over the "
                f"limit of {MAX_FRAME_PIXELS:,} pixels a frame. Ask for it as stored (transfer-syntax=*).",
                status=422,
            )

    def decoded_array(self, number: int) -> np.ndarray:
        """Frame ``number`` decoded (colour as RGB, as pydicom's decoders give it)."""
        self.require_decodable(number)
        try:
            return self._decoded_array(number)
        except MemoryError:
            # Never retried another way: the whole-file decoders below would need more memory still.
            raise DicomwebError(
                f"Frame {number} cannot be decoded here: not enough memory ({self.decoded_frame_bytes:,} bytes "
                "decoded). Ask for it as stored (transfer-syntax=*).",
                status=422,
            ) from None

    def _decoded_array(self, number: int) -> np.ndarray:
        if self.transfer_syntax not in NOT_ENCAPSULATED and self.value_tell is not None:
            # Only this frame's fragments are read: pixel_array on the file reads all the pixel data.
            try:
                options = as_pixel_options(self.dataset, number_of_frames=1)
                fragment = self.stored(number)
                return get_decoder(UID(self.transfer_syntax)).as_array(encapsulate([fragment]), **options)[0]
            except MemoryError:
                raise
            except Exception:  # noqa: BLE001 (the whole-file decoders and the repairs below get their turn)
                logger.debug("Frame %s: decoding its fragments failed; trying the whole file", number, exc_info=True)
        self.handle.seek(0)
        try:
            return pixel_array(self.handle, index=number - 1)
        except (ValueError, RuntimeError, NotImplementedError, TypeError, AttributeError, KeyError, EOFError):
            # Deflated and big-endian files, and streams with defects the renderer knows how to repair.
            try:
                return load_frame(self.handle, frame=number)[0]
            except (NotAnImage, RenderError) as exc:
                raise DicomwebError(f"Frame {number} cannot be decoded: {exc}", status=422) from None

    def decoded(self, number: int) -> bytes:
        """Frame ``number`` as native little-endian bytes, decompressing when needed."""
        from pydicom.pixels import pack_bits

        array = self.decoded_array(number)
        if self.bits_allocated == 1:
            return pack_bits(array)
        return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()

    def stored_size(self) -> int | None:
        """About how many bytes the stored pixel data takes (for a compression ratio)."""
        if self.value_tell is None:
            return None
        return max(self.handle.seek(0, 2) - self.value_tell, 0) or None

    def frame(self, number: int, *, keep_stored: bool) -> bytes:
        if keep_stored or self.transfer_syntax in NATIVE_LITTLE_ENDIAN:
            return self.stored(number)
        return self.decoded(number)


BULK_PATH_RE = re.compile(r"(?:[0-9A-Fa-f]{8}/[1-9][0-9]{0,5}/){0,8}[0-9A-Fa-f]{8}")


def bulk_value(handle: BinaryIO, tag_text: str) -> bytes:
    """The value of a bulk data element of a stored instance: a tag at the top level, else the
    first one inside a sequence (headers keep nested bulk data out under the same tag); or a path
    to one inside sequence items, ``00880200/1/7FE00010`` (sequence, item from 1, tag)."""
    tag_text = tag_text.rstrip("/")
    if not BULK_PATH_RE.fullmatch(tag_text):
        raise DicomwebError(
            f"bulkdata: {tag_text!r} is not a tag (eight hexadecimal digits) or a path to one "
            "(sequence tag/item number/tag, such as 00880200/1/7FE00010)."
        )
    *steps, last = tag_text.split("/")
    tag = int(last, 16)
    if tag in PIXEL_TAGS and not steps:
        raise DicomwebError("bulkdata: pixel data is served per frame, under .../frames/{n}.", status=404)
    try:
        dataset = dcmread(handle, defer_size=1024)
        for sequence, number in zip(steps[::2], steps[1::2], strict=True):
            found = dataset.get(int(sequence, 16))
            items = found.value if found is not None and found.VR == "SQ" else []
            if int(number) > len(items):
                raise DicomwebError(f"bulkdata: the instance has no item {number} in {sequence.upper()}.", status=404)
            dataset = items[int(number) - 1]
        element = dataset.get(tag)
        if element is None and not steps:
            element = next((e for e in dataset.iterall() if int(e.tag) == tag), None)
        value = None if element is None else element.value
    except (ValueError, TypeError, KeyError, EOFError, OSError) as exc:
        raise DicomwebError(f"bulkdata: the stored file cannot be read: {exc}", status=422) from None
    if value is None or not isinstance(value, bytes | bytearray):
        raise DicomwebError(f"bulkdata: the instance has no bulk data element {tag_text.upper()}.", status=404)
    return bytes(value)


def parse_frame_list(value: str, number_of_frames: int) -> list[int]:
    """``1,2,3`` as frame numbers; not numbers or < 1 is a 400, past the last frame a 404."""
    numbers = []
    for item in value.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise DicomwebError(f"frame: {item!r} is not a frame number (frames start at 1).")
        numbers.append(int(item))
    past = [n for n in numbers if n > number_of_frames]
    if past:
        raise DicomwebError(
            f"frame: {past[0]} is past the last frame ({number_of_frames}) of the instance.", status=404
        )
    return numbers


WINDOW_FUNCTIONS = {"linear", "linear_exact", "linear-exact", "sigmoid"}
RENDERED_TYPES = ("image/jpeg", "image/png", "image/gif")


@dataclass(frozen=True)
class RenderParams:
    media_type: str
    window: tuple[float, float, str] | None  # center, width, VOI LUT function
    viewport: tuple[int, int] | None
    quality: int


def parse_render_params(params, accept_header: str | None) -> RenderParams:
    """Validate ``accept=``, ``window=``, ``viewport=`` and ``quality=``; errors name the parameter."""
    requested = params.get("accept")
    if requested:
        media_type = accepts_any(parse_accept(requested), *RENDERED_TYPES)
        if media_type is None:
            raise DicomwebError(
                f"accept: {requested!r} is not available; use image/jpeg, image/png or image/gif.", status=406
            )
    else:
        media_type = accepts_any(parse_accept(accept_header), *RENDERED_TYPES)
        if media_type is None:
            raise DicomwebError("Rendered images are available as image/jpeg, image/png or image/gif.", status=406)
    window = None
    if params.get("window") is not None:
        pieces = params["window"].split(",")
        if len(pieces) not in (2, 3):
            raise DicomwebError("window: expected center,width[,function].")
        try:
            center, width = float(pieces[0]), float(pieces[1])
        except ValueError:
            raise DicomwebError(f"window: {params['window']!r} is not center,width as numbers.") from None
        if width <= 0:
            raise DicomwebError("window: the width must be positive.")
        function = pieces[2].strip().lower() if len(pieces) == 3 else "linear"
        if function not in WINDOW_FUNCTIONS:
            raise DicomwebError("window: the function must be linear, linear-exact or sigmoid.")
        window = (center, width, function.replace("-", "_").upper())
    viewport = None
    if params.get("viewport") is not None:
        pieces = params["viewport"].split(",")
        if len(pieces) != 2 or not all(p.strip().isdigit() for p in pieces):
            raise DicomwebError("viewport: expected width,height in pixels.")
        viewport = (int(pieces[0]), int(pieces[1]))
        if min(viewport) < 1 or max(viewport) > 8192:
            raise DicomwebError("viewport: width and height must be between 1 and 8192.")
    quality = 90
    if params.get("quality") is not None:
        quality = parse_int("quality", params["quality"], minimum=1)
        if quality > 100:
            raise DicomwebError("quality: must be between 1 and 100.")
    return RenderParams(media_type=media_type, window=window, viewport=viewport, quality=quality)

"""Instances and frames in a transfer syntax other than the stored one (PS3.18 8.7.3.5).

PS3.18 makes Explicit VR Little Endian the default for instances and native bytes the default for
frames, so a client without a codec for the stored syntax (dcmtk built without JPEG 2000, a script
reading pixel bytes) can read every instance. The stored file is decoded a frame at a time with
pydicom's decoders and written in the asked syntax: native, or one of the encoders cheap enough
to run per request. The result goes to a temporary file, so a frame that cannot be decoded leaves
the whole instance out rather than sending half of it, and memory stays at about one frame.

Before anything is decoded, the size is checked: a frame over the renderer's pixel limit
(``MAX_FRAME_PIXELS``) or decoded pixel data over ``TELECONSULT_MAX_DECODED_BYTES`` leaves the
instance out (a Warning, or a 406 when it is the only one), as does native pixel data that would
not fit one element's 32-bit length. Such an instance is still sent as stored.

Lossy stored data is never relabelled as lossless: its decompressed copy says
LossyImageCompression "01" and keeps the stored method and ratio (PS3.3 C.7.6.1.1.5).
"""

from __future__ import annotations

import functools
import struct
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
from django.conf import settings
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.pixels import get_decoder, get_encoder, pack_bits
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    JPEG2000MC,
    UID,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from ..rendering import MAX_FRAME_PIXELS
from .errors import DicomwebError
from .media_types import EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, NOT_ENCAPSULATED
from .wado import FrameReader

# Encoders cheap enough to run while a client waits, with the plugin each runs on: about 12 ms
# (RLE, pylibjpeg-rle) and 18 ms (JPEG-LS, pyjpegls) for a 512 x 512 16-bit frame. JPEG 2000
# lossless takes about 200 ms a frame, so JPEG 2000 is only passed through. GDCM's RLE encoder is
# never used: it aborts the whole process on some odd-sized colour frames.
CHEAP_ENCODERS = {RLELossless: "pylibjpeg", JPEGLSLossless: "pyjpegls"}

JPEG_XL_JPEG_RECOMPRESSION, JPEG_XL = "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112"
# The lossy compression method (PS3.3 C.7.6.1.1.5.1) of each syntax that can be lossy.
LOSSY_METHODS = {
    JPEGBaseline8Bit: "ISO_10918_1",
    JPEGExtended12Bit: "ISO_10918_1",
    JPEGLSNearLossless: "ISO_14495_1",
    JPEG2000: "ISO_15444_1",
    JPEG2000MC: "ISO_15444_2",
    HTJ2K: "ISO_15444_15",
    JPEG_XL: "ISO_18181_1",
    JPEG_XL_JPEG_RECOMPRESSION: "ISO_10918_1",
    **{f"1.2.840.10008.1.2.4.{n}": "ISO_13818_2" for n in (100, 101)},
    **{f"1.2.840.10008.1.2.4.{n}": "ISO_14496_10" for n in (102, 103, 104, 105, 106)},
    **{f"1.2.840.10008.1.2.4.{n}": "ISO_23008_2" for n in (107, 108)},
}
# Syntaxes that are lossy whatever the header says; the others of LOSSY_METHODS are lossy unless
# the header says LossyImageCompression "00".
ALWAYS_LOSSY = {JPEGBaseline8Bit, JPEGExtended12Bit, JPEG_XL_JPEG_RECOMPRESSION} | {
    uid for uid, method in LOSSY_METHODS.items() if method in ("ISO_13818_2", "ISO_14496_10", "ISO_23008_2")
}
# Photometric interpretations pydicom's decoders hand back as RGB.
DECODED_PHOTOMETRIC = {"YBR_FULL": "RGB", "YBR_FULL_422": "RGB", "YBR_ICT": "RGB", "YBR_RCT": "RGB"}
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
FLOAT_VRS = {0x7FE00008: b"OF", 0x7FE00009: b"OD"}
ITEM, SEQUENCE_END = 0xE000, 0xE0DD
# Transcoded instances up to this size stay in memory; larger ones go to a temporary file.
SPOOL_SIZE = 1 << 20
# The largest value length an explicit VR element can say (0xFFFFFFFF means "undefined").
MAX_ELEMENT_LENGTH = 0xFFFFFFFE


class TranscodeError(DicomwebError):
    """The instance or frame cannot be given in the asked transfer syntax; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=406)


@functools.cache
def available_encoders() -> tuple[str, ...]:
    """The cheap encoders installed here (pydicom plugins), in order of preference."""
    return tuple(str(uid) for uid, plugin in CHEAP_ENCODERS.items() if plugin in get_encoder(uid).available_plugins)


def decodable(stored: str) -> bool:
    """Whether pydicom can decode pixel data of the stored syntax here."""
    if stored in NOT_ENCAPSULATED:
        return True
    try:
        return get_decoder(UID(stored)).is_available
    except NotImplementedError:
        return False


def syntax_name(uid: str) -> str:
    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def is_lossy(stored: str, lossy_flag: str | None) -> bool:
    flag = (lossy_flag or "").strip()
    return flag == "01" or stored in ALWAYS_LOSSY or (stored in LOSSY_METHODS and flag != "00")


def instance_targets(stored: str) -> list[str]:
    """Transfer syntaxes an instance stored in ``stored`` can be given in."""
    targets = [stored]
    if decodable(stored):
        targets += [t for t in (EXPLICIT_VR_LITTLE_ENDIAN, *available_encoders()) if t != stored]
    return targets


def frame_targets(stored: str, lossy_flag: str | None) -> frozenset[str]:
    """Syntaxes frames of an instance can be encoded in here. None for lossy data: a frame carries no
    header to say it was lossy once, and a lossless syntax would say it never was."""
    if is_lossy(stored, lossy_flag) or not decodable(stored):
        return frozenset()
    return frozenset(t for t in available_encoders() if t != stored)


def transcode_instance(handle: BinaryIO, target: str) -> BinaryIO:
    """The stored instance in ``handle`` as a PS3.10 file in ``target``, rewound; the caller closes it.

    Raises TranscodeError naming the reason when it cannot be done.
    """
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_SIZE)  # noqa: SIM115 (handed to the caller, who closes it)
    try:
        write_instance(handle, target, out)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def write_instance(handle: BinaryIO, target: str, out: BinaryIO) -> None:
    handle.seek(0)
    try:
        header = dcmread(handle, stop_before_pixels=True)
        handle.seek(0)
        deferred = dcmread(handle, defer_size=1024)
    except Exception as exc:
        raise TranscodeError(f"the stored file cannot be read ({exc})") from None
    stored = str(header.file_meta.get("TransferSyntaxUID") or IMPLICIT_VR_LITTLE_ENDIAN)
    if target != EXPLICIT_VR_LITTLE_ENDIAN and target not in available_encoders():
        raise TranscodeError(f"{syntax_name(target)} is not made here")
    element = next((e for tag in PIXEL_TAGS if (e := deferred.get_item(tag, keep_deferred=True)) is not None), None)
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        header.pop(keyword, None)
    header.file_meta.TransferSyntaxUID = target
    if element is None:  # a document or report: only its encoding changes
        _write_header(header, out)
        return
    if stored == IMPLICIT_VR_LITTLE_ENDIAN and target == EXPLICIT_VR_LITTLE_ENDIAN:
        _write_header(header, out)
        _copy_native(deferred, element, handle, out)
        return
    if int(element.tag) != 0x7FE00010:
        raise TranscodeError("float pixel data is only sent in a native transfer syntax")
    if not decodable(stored):
        raise TranscodeError(f"no decoder for {syntax_name(stored)} is installed here")
    _write_decoded(header, handle, stored, target, out)


def _write_header(header: Dataset, out: BinaryIO) -> None:
    header.preamble = b"\0" * 128
    try:
        for _element in header.iterall():  # raw values converted, so a big-endian header can be re-encoded
            pass
        dcmwrite(out, header, implicit_vr=False, little_endian=True, enforce_file_format=True)
    except Exception as exc:
        raise TranscodeError(f"the header cannot be written in the new transfer syntax ({exc})") from None


def _element_header(tag: int, vr: bytes, length: int) -> bytes:
    return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr, 0, length)


def _item(data: bytes) -> bytes:
    return struct.pack("<HHI", 0xFFFE, ITEM, len(data)) + data


def _copy_native(deferred: Dataset, element, handle: BinaryIO, out: BinaryIO) -> None:
    """Native pixel bytes as they are, under an explicit VR (Implicit -> Explicit VR Little Endian)."""
    tag = int(element.tag)
    vr = FLOAT_VRS.get(tag) or (b"OB" if int(deferred.get("BitsAllocated") or 16) <= 8 else b"OW")
    if element.value is not None:
        data = bytes(element.value)
        out.write(_element_header(tag, vr, len(data) + len(data) % 2) + data + b"\0" * (len(data) % 2))
        return
    length = int(element.length)
    out.write(_element_header(tag, vr, length + length % 2))
    handle.seek(element.value_tell)
    left = length
    while left:
        chunk = handle.read(min(left, 1 << 20))
        if not chunk:
            raise TranscodeError("the stored pixel data is cut short")
        out.write(chunk)
        left -= len(chunk)
    out.write(b"\0" * (length % 2))


def decoded_photometric(header: Dataset) -> str:
    photometric = str(header.get("PhotometricInterpretation") or "").strip().upper()
    if int(header.get("SamplesPerPixel") or 1) == 3:
        return DECODED_PHOTOMETRIC.get(photometric, photometric)
    return photometric


def encoder_options(header: Dataset) -> dict:
    return {
        "rows": int(header.Rows),
        "columns": int(header.Columns),
        "samples_per_pixel": int(header.get("SamplesPerPixel") or 1),
        "bits_allocated": int(header.BitsAllocated),
        "bits_stored": int(header.get("BitsStored") or header.BitsAllocated),
        "pixel_representation": int(header.get("PixelRepresentation") or 0),
        "photometric_interpretation": decoded_photometric(header),
        "number_of_frames": 1,
        "planar_configuration": 0,
    }


def encode_frame(array: np.ndarray, header: Dataset, target: str) -> bytes:
    """One decoded frame encoded in ``target`` (one of ``available_encoders``)."""
    try:
        plugin = CHEAP_ENCODERS[UID(target)]
        return bytes(get_encoder(UID(target)).encode(array, encoding_plugin=plugin, **encoder_options(header)))
    except Exception as exc:
        raise TranscodeError(f"the frame cannot be encoded as {syntax_name(target)} ({exc})") from None


def decoded_frames(reader: FrameReader) -> Iterator[np.ndarray]:
    for number in range(1, reader.number_of_frames + 1):
        try:
            yield reader.decoded_array(number)
        except DicomwebError as exc:
            raise TranscodeError(exc.message) from None


def native_length(reader: FrameReader) -> int:
    """Bytes of the instance's pixel data written native (1-bit frames packed together)."""
    pixels = reader.number_of_frames * reader.rows * reader.columns * reader.samples
    return (pixels + 7) // 8 if reader.bits_allocated == 1 else pixels * reader.bits_allocated // 8


def decoded_size_refusal(*, rows: int, columns: int, frames: int, samples: int, bits_allocated: int) -> str | None:
    """Why pixel data of this shape is too large to decode for a client, or None."""
    if rows * columns > MAX_FRAME_PIXELS:
        return (
            f"its frames are {columns} x {rows} pixels, over the limit of {MAX_FRAME_PIXELS:,} pixels a frame; "
            "ask for it as stored (transfer-syntax=*)"
        )
    limit = settings.TELECONSULT_MAX_DECODED_BYTES
    decoded = frames * rows * columns * samples * max(bits_allocated, 8) // 8
    if decoded > limit:
        return (
            f"its decoded pixel data would be {decoded:,} bytes ({frames} frames of {columns} x {rows}), "
            f"over the limit of {limit:,}; ask for it as stored (transfer-syntax=*)"
        )
    return None


def needs_decoding(stored: str, target: str) -> bool:
    """Whether sending an instance stored in ``stored`` as ``target`` decodes its pixel data
    (Implicit to Explicit VR Little Endian only copies it)."""
    return target != stored and not (stored == IMPLICIT_VR_LITTLE_ENDIAN and target == EXPLICIT_VR_LITTLE_ENDIAN)


def require_transcodable(reader: FrameReader, target: str) -> None:
    """Refuse, before decoding anything, an instance too large to decode or to write in ``target``."""
    why = decoded_size_refusal(
        rows=reader.rows,
        columns=reader.columns,
        frames=reader.number_of_frames,
        samples=reader.samples,
        bits_allocated=reader.bits_allocated,
    )
    if why is not None:
        raise TranscodeError(why)
    if target == EXPLICIT_VR_LITTLE_ENDIAN and native_length(reader) > MAX_ELEMENT_LENGTH:
        raise TranscodeError(
            f"its native pixel data would be {native_length(reader):,} bytes, more than one DICOM element "
            "can hold (4 GiB); ask for it as stored (transfer-syntax=*)"
        )


def _write_decoded(header: Dataset, handle: BinaryIO, stored: str, target: str, out: BinaryIO) -> None:
    """Decode frame after frame and write them native or encoded, after the adjusted header."""
    try:
        handle.seek(0)
        reader = FrameReader(handle, stored)
    except DicomwebError as exc:
        raise TranscodeError(exc.message) from None
    require_transcodable(reader, target)
    if is_lossy(stored, header.get("LossyImageCompression")):
        mark_lossy(header, stored, reader)
    samples = int(header.get("SamplesPerPixel") or 1)
    header.PhotometricInterpretation = decoded_photometric(header)
    if samples > 1:
        header.PlanarConfiguration = 0
    _write_header(header, out)
    if target == EXPLICIT_VR_LITTLE_ENDIAN:
        _write_native_frames(reader, out)
        return
    out.write(_element_header(0x7FE00010, b"OB", 0xFFFFFFFF) + _item(b""))
    for array in decoded_frames(reader):
        fragment = encode_frame(array, header, target)
        out.write(_item(fragment + b"\0" * (len(fragment) % 2)))
    out.write(struct.pack("<HHI", 0xFFFE, SEQUENCE_END, 0))


def _write_native_frames(reader: FrameReader, out: BinaryIO) -> None:
    vr = b"OB" if reader.bits_allocated <= 8 else b"OW"
    start = out.tell()
    out.write(_element_header(0x7FE00010, vr, 0))
    if reader.bits_allocated == 1:
        length = _write_packed_frames(reader, out)
    else:
        length = 0
        for array in decoded_frames(reader):
            data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            out.write(data)
            length += len(data)
    if length > MAX_ELEMENT_LENGTH:  # decoded frames larger than their header said
        raise TranscodeError(f"its native pixel data is {length:,} bytes, more than one DICOM element can hold")
    if length % 2:
        out.write(b"\0")
        length += 1
    end = out.tell()
    out.seek(start + 8)
    out.write(struct.pack("<I", length))
    out.seek(end)


def _write_packed_frames(reader: FrameReader, out: BinaryIO) -> int:
    """1-bit frames packed one after the other, a frame in memory at a time: a frame whose pixel
    count is not a multiple of 8 shares its last byte with the next, so its last bits wait for it."""
    length = 0
    carry = np.empty(0, dtype=np.uint8)
    for array in decoded_frames(reader):
        bits = np.concatenate([carry, array.ravel().astype(np.uint8, copy=False)])
        whole = len(bits) - len(bits) % 8
        data = pack_bits(bits[:whole], pad=False)
        carry = bits[whole:]
        out.write(data)
        length += len(data)
    if len(carry):
        data = pack_bits(carry, pad=False)
        out.write(data)
        length += len(data)
    return length


def mark_lossy(header: Dataset, stored: str, reader: FrameReader) -> None:
    """Say the pixel data was lossy compressed once, keeping the stored method and ratio."""
    header.LossyImageCompression = "01"
    method = LOSSY_METHODS.get(stored)
    if "LossyImageCompressionMethod" not in header and method:
        header.LossyImageCompressionMethod = method
    compressed = reader.stored_size()
    if "LossyImageCompressionRatio" not in header and compressed:
        ratio = reader.number_of_frames * reader.frame_length / compressed
        header.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]

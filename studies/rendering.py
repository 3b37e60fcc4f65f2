"""Turn one frame of a DICOM object into an 8-bit picture: thumbnails, WADO-RS ``rendered``.

The pipeline follows PS3.4 Annex N (grayscale) and PS3.3 C.7.6.3 (colour): stored values -> Modality
LUT or rescale -> VOI LUT or window -> presentation (MONOCHROME1 and INVERSE are inverted);
palette colour goes through its LUTs, YBR becomes RGB. Decoding reads one frame at a time from
a path or file object, so a 1 GB multi-frame object never sits whole in memory.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import BinaryIO

import numpy as np
import pydicom
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_fragments, get_frame
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, get_decoder, pixel_array
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
)

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = 256
THUMBNAIL_QUALITY = 85

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# Elements larger than this stay on disk while the header is parsed: the pixel data of a large
# object is then never read by the header pass, only frame by frame by the decoder.
_DEFER_SIZE = "1 MB"

# Percentiles of the robust min-max window used when the file names no window of its own.
_AUTO_WINDOW_PERCENTILES = (0.5, 99.5)
# The percentiles are taken over at most this many samples (a strided subset of the frame).
_AUTO_WINDOW_SAMPLES = 1 << 16
# Frames larger than this many pixels are refused before anything is decoded (about 8000 x 8000).
_MAX_FRAME_PIXELS = 64 * 1024 * 1024
# A file that the frame-by-frame decoder refuses is read whole for repair only up to this size.
_REPAIR_MAX_BYTES = 512 * 1024 * 1024

Source = str | os.PathLike | BinaryIO | Dataset


class NotAnImage(Exception):  # noqa: N818 (name fixed by the rendering contract)
    """The object holds no pixel data: a structured report, RT plan, presentation state, PDF..."""


class RenderError(Exception):
    """The object should hold an image but it cannot be decoded or rendered; the message says why."""


# --------------------------------------------------------------------------------------------
# Reading


def read_header(source: Source) -> Dataset:
    """The data set without loading large values (pixel data stays on disk until a frame is asked for)."""
    if isinstance(source, Dataset):
        return source
    try:
        if isinstance(source, str | os.PathLike):
            return pydicom.dcmread(source, defer_size=_DEFER_SIZE)
        source.seek(0)
        return pydicom.dcmread(source, defer_size=_DEFER_SIZE)
    except Exception as exc:
        raise RenderError(f"Not a readable DICOM file: {exc}") from exc


def has_pixels(ds: Dataset) -> bool:
    return any(keyword in ds for keyword in PIXEL_KEYWORDS)


def number_of_frames(ds: Dataset) -> int:
    """NumberOfFrames as an integer: it is an IS string, sometimes empty, zero or malformed."""
    value = ds.get("NumberOfFrames")
    try:
        frames = int(float(str(value).strip())) if value not in (None, "") else 1
    except (TypeError, ValueError):
        return 1
    return max(frames, 1)


def middle_frame(ds: Dataset) -> int:
    """The 1-based number of the frame shown for a multi-frame object."""
    return (number_of_frames(ds) + 1) // 2


def load_frame(source: Source, *, frame: int = 1) -> tuple[np.ndarray, Dataset]:
    """Decode one frame (1-based) and return its stored values with the data set's header.

    Colour data comes back as RGB (YBR is converted by the decoder); values are as stored, before
    any Modality or VOI transform. Raises NotAnImage when there is no pixel data and RenderError
    when the pixel data cannot be decoded.
    """
    ds, source = _open(source)
    return _decode(ds, source, frame), ds


def _open(source: Source) -> tuple[Dataset, Source]:
    """The header, and the source to decode from (a repaired in-memory copy for some defects)."""
    ds = read_header(source)
    # An image header (or none at all) without pixel data may be pixel data that pydicom dropped
    # because it runs to the end of the file; documents and reports are not read twice.
    looks_like_image = "Rows" in ds or "SOPInstanceUID" not in ds
    if not has_pixels(ds) and looks_like_image and not isinstance(source, Dataset):
        closed = _read_unterminated(source)
        if closed is not None:
            ds = source = closed
    if not has_pixels(ds):
        raise NotAnImage("The object has no pixel data")
    return ds, source


def _decode(ds: Dataset, source: Source, frame: int, fit: tuple[int, int] | None = None) -> np.ndarray:
    """Decode one frame; with ``fit``, JPEG 2000 may be decoded at a lower resolution that still
    covers a (width, height) box, which is many times faster for thumbnails."""
    frames = number_of_frames(ds)
    if not 1 <= frame <= frames:
        raise RenderError(f"Frame {frame} does not exist: the object has {frames} frame(s)")
    for keyword in ("Rows", "Columns"):
        if not ds.get(keyword):
            raise RenderError(f"{keyword} is missing or zero")
    if int(ds.Rows) * int(ds.Columns) > _MAX_FRAME_PIXELS:
        raise RenderError(f"The frame is too large to render: {ds.Columns} x {ds.Rows} pixels")
    if fit is not None and _transfer_syntax(ds) in _J2K_SYNTAXES:
        arr = _decode_j2k_reduced(ds, source, frame, fit)
        if arr is not None:
            return arr
    if not isinstance(source, str | os.PathLike | Dataset):
        source.seek(0)
    try:
        return _pixel_array(source, frame - 1, _transfer_syntax(ds))
    except MemoryError:
        raise RenderError(f"Not enough memory to decode frame {frame}")
    except Exception as exc:
        return _decode_repaired(ds, source, frame, exc)


def is_decoder_panic(exc: BaseException) -> bool:
    """Rust decoders (pyo3) raise PanicException, a BaseException, on some corrupt input."""
    return type(exc).__name__ == "PanicException"


def _pixel_array(src: Source, index: int, transfer_syntax: UID) -> np.ndarray:
    """pydicom's pixel_array, where a panicking decoder plugin does not stop the others from
    being tried (pydicom moves on to the next plugin only after an Exception)."""
    try:
        return pixel_array(src, index=index)
    except BaseException as exc:
        if not is_decoder_panic(exc):
            raise
        panic = exc
    others = get_decoder(transfer_syntax).available_plugins if transfer_syntax.is_compressed else ()
    for plugin in others:
        if plugin == "pylibjpeg":  # the plugin that panicked (its RLE and J2K decoders are in Rust/C)
            continue
        if not isinstance(src, str | os.PathLike | Dataset):
            src.seek(0)
        try:
            return pixel_array(src, index=index, decoding_plugin=plugin)
        except BaseException as exc:
            if not (isinstance(exc, Exception) or is_decoder_panic(exc)):
                raise
            # each remaining plugin gets its chance; the first panic is the reason reported
    raise RuntimeError(f"the decoder failed on corrupt data: {panic}")


def _encapsulated_frame(ds: Dataset, source: Source, frame: int) -> bytes:
    """The compressed bytes of one frame, read from the file without loading the other frames."""
    element = ds.get_item("PixelData", keep_deferred=True)
    offsets = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    frames = number_of_frames(ds)
    if element.value is not None:
        return get_frame(element.value, frame - 1, number_of_frames=frames, extended_offsets=offsets)
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as handle:
            handle.seek(element.value_tell)
            return get_frame(handle, frame - 1, number_of_frames=frames, extended_offsets=offsets)
    source.seek(element.value_tell)
    return get_frame(source, frame - 1, number_of_frames=frames, extended_offsets=offsets)


def _decode_j2k_reduced(ds: Dataset, source: Source, frame: int, fit: tuple[int, int]) -> np.ndarray | None:
    """Decode a JPEG 2000 frame at the lowest resolution level that still covers ``fit``.

    Returns None whenever this shortcut does not apply or does not work (the full decoder then
    runs): no useful reduction, signedness that disagrees with the header, colour other than RGB
    or the reversible/irreversible colour transforms, or any decoder complaint.
    """
    rows, columns = int(ds.Rows), int(ds.Columns)
    scale = min(max(fit[0], 1) / columns, max(fit[1], 1) / rows)
    if scale > 0.5:
        return None
    samples = int(ds.get("SamplesPerPixel") or 1)
    photometric = str(ds.get("PhotometricInterpretation") or "").strip().upper()
    if samples == 3 and photometric not in ("RGB", "YBR_ICT", "YBR_RCT"):
        return None
    if samples not in (1, 3) or (samples == 1 and photometric not in ("MONOCHROME1", "MONOCHROME2")):
        return None
    try:
        stream = _encapsulated_frame(ds, source, frame)
        size_at = stream.find(b"\xff\x51")
        coding_at = stream.find(b"\xff\x52")
        if size_at < 0 or coding_at < 0:
            return None
        component = stream[size_at + 40]  # Ssiz of the first component: signed bit + precision - 1
        precision, signed = (component & 0x7F) + 1, bool(component & 0x80)
        levels = stream[coding_at + 9]  # SPcod: number of decomposition levels
        if signed != bool(int(ds.get("PixelRepresentation") or 0)) or precision > 16:
            return None
        if samples == 3 and precision != 8:
            return None
        image = None
        # Some streams refuse the deepest levels their header announces: try shallower ones.
        for reduce in range(min(int(np.floor(np.log2(1 / scale))), levels), 0, -1):
            try:
                image = Image.open(io.BytesIO(stream), formats=("JPEG2000",))
                image.reduce = reduce
                image.load()
                break
            except OSError:
                image = None
        if image is None:
            return None
    except Exception:
        logger.debug("Reduced JPEG 2000 decoding did not apply; decoding in full", exc_info=True)
        return None
    arr = np.asarray(image)
    if samples == 3:
        return arr if image.mode == "RGB" else None
    if image.mode not in ("L", "I;16"):
        return None
    # The decoder widened the samples to 8 or 16 bits and offset signed ones; undo both.
    values = arr.astype(np.int32) >> (arr.dtype.itemsize * 8 - precision)
    if signed:
        values -= 1 << (precision - 1)
    return values


_J2K_SYNTAXES = frozenset({JPEG2000, JPEG2000Lossless, HTJ2K, HTJ2KLossless, HTJ2KLosslessRPCL})


def _decode_repaired(ds: Dataset, source: Source, frame: int, error: Exception) -> np.ndarray:
    """Decode a frame that the plain path refused, repairing the defects real files carry.

    Handles deflated files (the whole data set is inflated in memory), a malformed NumberOfFrames,
    native pixel data cut short (decoded as far as it goes, the rest black), JPEG streams with
    invalid scan parameters for a sequential process and JPEG 2000 streams whose image size
    disagrees with Rows/Columns. Anything else keeps the decoder's own reason.
    """
    full = _read_whole(source, error, ds, frame)
    keyword = next((k for k in PIXEL_KEYWORDS if k in full), None)
    if keyword is None:
        raise RenderError(_describe_decode_error(ds, frame, error)) from error
    try:
        data = bytes(full[keyword].value or b"")
    except Exception as exc:
        raise RenderError(_describe_decode_error(ds, frame, error)) from exc
    transfer_syntax = _transfer_syntax(full)
    try:
        repaired, index = _repaired_dataset(full, ds, keyword, data, transfer_syntax, frame, error)
        return _pixel_array(repaired, index, _transfer_syntax(repaired))
    except RenderError:
        raise
    except MemoryError:
        raise RenderError(f"Not enough memory to decode frame {frame}")
    except Exception as exc:
        raise RenderError(_describe_decode_error(ds, frame, error)) from exc


def _repaired_dataset(
    full: Dataset, ds: Dataset, keyword: str, data: bytes, transfer_syntax: UID, frame: int, error: Exception
) -> tuple[Dataset, int]:
    """A minimal data set holding the frame's pixel data, repaired; and the frame's index in it."""
    repaired = Dataset()
    repaired.file_meta = FileMetaDataset()
    repaired.file_meta.TransferSyntaxUID = (
        ExplicitVRLittleEndian if transfer_syntax == DeflatedExplicitVRLittleEndian else transfer_syntax
    )
    for elem in full.group_dataset(0x0028):
        repaired.add(elem)
    if not transfer_syntax.is_encapsulated:
        data = _complete_native(ds, data, frame, error)
        repaired.NumberOfFrames = _native_frame_count(ds, len(data))
        setattr(repaired, keyword, data)
        return repaired, frame - 1
    frames = _count_encapsulated_frames(ds, data)
    if frame > frames:
        raise RenderError(f"Frame {frame} is missing: the pixel data holds {frames} frame(s)") from error
    fragment = get_frame(data, frame - 1, number_of_frames=frames)
    if not fragment:
        raise RenderError(f"Frame {frame} is empty in the pixel data") from error
    patch = _STREAM_REPAIRS.get(transfer_syntax)
    if patch is not None:
        fragment = patch(fragment, int(ds.Rows), int(ds.Columns))
    repaired.NumberOfFrames = 1
    repaired.PixelData = encapsulate([fragment])
    return repaired, 0


def _read_whole(source: Source, error: Exception, ds: Dataset, frame: int) -> Dataset:
    if isinstance(source, Dataset):
        return source
    if isinstance(source, str | os.PathLike):
        size = os.path.getsize(source)
    else:
        size = source.seek(0, os.SEEK_END)
    if size > _REPAIR_MAX_BYTES:
        raise RenderError(_describe_decode_error(ds, frame, error)) from error
    try:
        if not isinstance(source, str | os.PathLike):
            source.seek(0)
        return pydicom.dcmread(source)
    except Exception as exc:
        raise RenderError(_describe_decode_error(ds, frame, error)) from exc


def _transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(uid) if uid else ImplicitVRLittleEndian


def _native_frame_bytes(ds: Dataset) -> int:
    """Bytes per frame of natively encoded data (1-bit frames may share a byte at their edges)."""
    bits = int(ds.get("BitsAllocated") or 8)
    samples = int(ds.get("SamplesPerPixel") or 1)
    if str(ds.get("PhotometricInterpretation") or "").strip().upper() == "YBR_FULL_422":
        samples = 2  # two chroma samples shared by each pair of pixels
    return max((int(ds.Rows) * int(ds.Columns) * samples * bits + 7) // 8, 1)


def _native_frame_count(ds: Dataset, length: int) -> int:
    """NumberOfFrames, or when it is unusable, as many frames as the data holds."""
    try:
        declared = int(str(ds.get("NumberOfFrames", "1")).strip() or "1")
    except ValueError:
        return max(length // _native_frame_bytes(ds), 1)
    return max(declared, 1)


def _complete_native(ds: Dataset, data: bytes, frame: int, error: Exception) -> bytes:
    """Pixel data long enough for every declared frame: a short tail is padded with zeros."""
    frame_bytes = _native_frame_bytes(ds)
    frames = _native_frame_count(ds, len(data))
    needed = frame_bytes * frames
    if len(data) >= needed:
        return data
    if frame_bytes * (frame - 1) >= len(data):
        raise RenderError(
            f"Pixel data is truncated: {len(data)} of {needed} bytes present, frame {frame} is missing"
        ) from error
    logger.info("Rendering a partial frame: pixel data has %d of %d bytes", len(data), needed)
    return data + b"\0" * (needed - len(data) + needed % 2)


def _count_encapsulated_frames(ds: Dataset, data: bytes) -> int:
    try:
        declared = int(str(ds.get("NumberOfFrames", "1")).strip() or "1")
    except ValueError:
        declared = 0
    if declared >= 1:
        return declared
    return max(sum(1 for _ in generate_fragments(data)) - 1, 1)  # the first item is the offset table


def _repair_jpeg_scan(stream: bytes, rows: int, columns: int) -> bytes:
    """Sequential JPEG (SOF0/SOF1) whose start-of-scan says otherwise: set Ss=0, Se=63, Ah=Al=0.

    Some writers (e.g. the NEMA WG04 12-bit lossy set) emit progressive-style scan parameters in a
    sequential stream; libjpeg rejects them although the entropy-coded data is sequential.
    """
    data = bytearray(stream)
    position, process = 2, None
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            position += 1
            continue
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        (length,) = struct.unpack_from(">H", data, position + 2)
        if marker in (0xC0, 0xC1):
            process = marker
        if marker == 0xDA:
            components = data[position + 4]
            parameters = position + 5 + 2 * components
            if process is not None and parameters + 3 <= len(data):
                data[parameters : parameters + 3] = bytes((0, 63, 0))
            break
        position += 2 + length
    return bytes(data)


def _repair_j2k_size(stream: bytes, rows: int, columns: int) -> bytes:
    """JPEG 2000 image size (SIZ marker) that disagrees with Rows/Columns: trust the DICOM header."""
    data = bytearray(stream)
    position = data.find(b"\xff\x51")
    if position < 0 or position + 22 > len(data):
        return stream
    capabilities, width, height, x_offset, y_offset = struct.unpack_from(">HIIII", data, position + 4)
    if width - x_offset == columns and height - y_offset == rows:
        return stream
    x_offset = x_offset if x_offset < width else 0
    y_offset = y_offset if y_offset < height else 0
    capabilities = capabilities if capabilities < 0x8000 else 0
    struct.pack_into(
        ">HIIII", data, position + 4, capabilities, x_offset + columns, y_offset + rows, x_offset, y_offset
    )
    return bytes(data)


_STREAM_REPAIRS: dict[str, Callable[[bytes, int, int], bytes]] = {
    JPEGBaseline8Bit: _repair_jpeg_scan,
    JPEGExtended12Bit: _repair_jpeg_scan,
    JPEG2000: _repair_j2k_size,
    JPEG2000Lossless: _repair_j2k_size,
    HTJ2K: _repair_j2k_size,
    HTJ2KLossless: _repair_j2k_size,
    HTJ2KLosslessRPCL: _repair_j2k_size,
}


_PIXEL_DATA_UNDEFINED_LENGTH = (
    b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff",  # explicit VR little endian
    b"\xe0\x7f\x10\x00OW\x00\x00\xff\xff\xff\xff",
    b"\xe0\x7f\x10\x00\xff\xff\xff\xff",  # implicit VR little endian
)
_ITEM_TAG = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _read_unterminated(source: Source) -> Dataset | None:
    """Re-read a file whose encapsulated pixel data runs to the end of the file unterminated.

    pydicom gives up on such a file (missing sequence delimiter, or a last fragment cut short) and
    returns no pixel data. Closing the sequence where the bytes end keeps every complete frame and
    whatever is left of the last one; returns None when the file is not of that kind.
    """
    if isinstance(source, str | os.PathLike):
        if os.path.getsize(source) > _REPAIR_MAX_BYTES:
            return None
        with open(source, "rb") as handle:
            data = handle.read()
    else:
        if source.seek(0, os.SEEK_END) > _REPAIR_MAX_BYTES:
            return None
        source.seek(0)
        data = source.read()
    for header in _PIXEL_DATA_UNDEFINED_LENGTH:
        start = data.rfind(header)
        if start >= 0:
            break
    else:
        return None
    patched = bytearray(data)
    position = start + len(header)
    while position + 8 <= len(patched) and patched[position : position + 4] == _ITEM_TAG:
        (length,) = struct.unpack_from("<I", patched, position + 4)
        remaining = len(patched) - position - 8
        if length > remaining:
            struct.pack_into("<I", patched, position + 4, remaining - remaining % 2)
            del patched[position + 8 + remaining - remaining % 2 :]
            length = remaining - remaining % 2
        position += 8 + length
    if patched[position : position + 4] == _SEQUENCE_DELIMITER[:4]:
        return None  # properly terminated: not the defect this repairs
    del patched[position:]
    patched += _SEQUENCE_DELIMITER
    try:
        ds = pydicom.dcmread(io.BytesIO(bytes(patched)))
    except Exception:
        return None
    if not has_pixels(ds):
        return None
    logger.info("Pixel data ran to the end of the file unterminated; closed it after %d bytes", position)
    return ds


def _describe_decode_error(ds: Dataset, frame: int, error: Exception) -> str:
    transfer_syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    name = transfer_syntax.name if transfer_syntax is not None else "unknown transfer syntax"
    message = " ".join(str(error).split()) or type(error).__name__
    return f"Cannot decode frame {frame} ({name}): {message}"[:1000]


# --------------------------------------------------------------------------------------------
# Per-frame attributes of enhanced (multi-frame functional group) objects


def _functional_group(ds: Dataset, frame: int, sequence: str) -> Dataset | None:
    """The item of a functional group macro for a frame: per-frame first, then shared."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and len(per_frame) >= frame:
        items = per_frame[frame - 1].get(sequence)
        if items:
            return items[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        items = shared[0].get(sequence)
        if items:
            return items[0]
    return None


def _modality_source(ds: Dataset, frame: int) -> Dataset:
    item = _functional_group(ds, frame, "PixelValueTransformationSequence")
    if item is not None and "RescaleSlope" in item:
        return item
    return ds


def _voi_source(ds: Dataset, frame: int) -> Dataset:
    item = _functional_group(ds, frame, "FrameVOILUTSequence")
    if item is not None and ("WindowCenter" in item or "VOILUTSequence" in item):
        return item
    return ds


# --------------------------------------------------------------------------------------------
# Grayscale


def _first_number(value) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        if not value:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


# (center, width), or (center, width, VOI LUT function) as PS3.3 C.11.2.1.3 names them.
Window = tuple[float, float] | tuple[float, float, str]


def _file_window(ds: Dataset) -> tuple[float, float, str] | None:
    center = _first_number(ds.get("WindowCenter"))
    width = _first_number(ds.get("WindowWidth"))
    if center is None or width is None or width <= 0:
        return None
    function = str(ds.get("VOILUTFunction") or "LINEAR").strip().upper()
    return center, width, function


def _window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Map values to 0..1 with a window (PS3.3 C.11.2.1.2)."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        low, high = center - width / 2, center + width / 2
    else:
        if width < 1:
            width = 1.0
        low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    if high <= low:
        return (values > low).astype(np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def _auto_range(values: np.ndarray) -> tuple[float, float]:
    """A robust min-max: percentiles over a strided sample, ignoring NaN and infinities."""
    flat = values.reshape(-1)
    if flat.size > _AUTO_WINDOW_SAMPLES:
        flat = flat[:: flat.size // _AUTO_WINDOW_SAMPLES + 1]
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(flat, _AUTO_WINDOW_PERCENTILES)
    if high <= low:
        low, high = float(flat.min()), float(flat.max())
    return float(low), float(high)


def _scale_to_unit(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return (values > low).astype(np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def _grayscale(arr: np.ndarray, ds: Dataset, frame: int, window: Window | None) -> np.ndarray:
    """Stored values -> 0..1 floats: Modality LUT or rescale, then the VOI stage."""
    modality = _modality_source(ds, frame)
    if arr.dtype.kind in "iu" and ("ModalityLUTSequence" in modality or "RescaleSlope" in modality):
        values = apply_modality_lut(arr, modality)
    elif "RescaleSlope" in modality:
        slope = _first_number(modality.get("RescaleSlope")) or 1.0
        intercept = _first_number(modality.get("RescaleIntercept")) or 0.0
        values = arr * slope + intercept
    else:
        values = arr
    scaling = _first_number(ds.get("DoseGridScaling"))
    if scaling:
        values = values * scaling  # RT dose: stored values -> Gy, so a window given in Gy applies
    values = values.astype(np.float32 if values.dtype.itemsize <= 4 else np.float64, copy=False)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)

    if window is not None:
        return _window(values, *window)

    voi = _voi_source(ds, frame)
    if voi.get("VOILUTSequence") and arr.dtype.kind in "iu":
        item = voi.VOILUTSequence[0]
        lut = np.asarray(item.LUTData, dtype=np.float64).reshape(-1)
        if lut.size:
            looked_up = apply_voi(np.round(values).astype(np.int64), voi).astype(np.float32)
            return _scale_to_unit(looked_up, float(lut.min()), float(lut.max()))
    file_window = _file_window(voi)
    if file_window is not None:
        return _window(values, *file_window)
    return _scale_to_unit(values, *_auto_range(values))


# --------------------------------------------------------------------------------------------
# Colour


def _to_uint8(values: np.ndarray, bits: int) -> np.ndarray:
    if values.dtype == np.uint8 and bits <= 8:
        return values
    top = float(2**bits - 1) if bits > 0 else float(values.max() or 1)
    return np.clip(np.round(values.astype(np.float32) * (255.0 / top)), 0, 255).astype(np.uint8)


_PALETTE_ELEMENTS = tuple(
    f"{prefix}{colour}PaletteColorLookupTable{part}"
    for colour in ("Red", "Green", "Blue")
    for prefix, part in (("", "Descriptor"), ("", "Data"), ("Segmented", "Data"))
)
# Expanded palettes by content: a cine loop of a palette ultrasound expands its (often segmented)
# tables once, not for every frame shown.
_PALETTE_CACHE: OrderedDict[str, tuple[np.ndarray, int]] = OrderedDict()
_PALETTE_CACHE_SIZE = 32
_PALETTE_CACHE_LOCK = threading.Lock()  # DICOMweb renders run in several threads at once


def _palette_table(ds: Dataset, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """The palette as an (entries, 3) table of 8-bit RGB, and the first value it maps."""
    digest = hashlib.sha256()
    for keyword in _PALETTE_ELEMENTS:
        value = ds.get(keyword)
        digest.update(keyword.encode())
        digest.update(value if isinstance(value, bytes) else repr(value).encode())
    key = digest.hexdigest()
    with _PALETTE_CACHE_LOCK:
        if key in _PALETTE_CACHE:
            _PALETTE_CACHE.move_to_end(key)
            return _PALETTE_CACHE[key]
    descriptor = ds.get("RedPaletteColorLookupTableDescriptor")
    if not descriptor or len(descriptor) < 3:
        raise RenderError("Palette colour lookup table descriptor is missing")
    entries, first = int(descriptor[0]) or 65536, int(descriptor[1])
    indices = np.arange(first, first + entries)
    if np.issubdtype(dtype, np.integer) and np.iinfo(dtype).min <= first and first + entries - 1 <= np.iinfo(dtype).max:
        indices = indices.astype(dtype)
    try:
        table = apply_color_lut(indices, ds)
    except Exception as exc:
        raise RenderError(f"Palette colour lookup tables are unusable: {exc}") from exc
    bits = int(descriptor[2])
    if bits > 8 and int(table.max(initial=0)) <= 255:
        bits = 8  # some writers declare 16-bit entries but fill them with 8-bit values
    result = (_to_uint8(table, bits), first)
    with _PALETTE_CACHE_LOCK:
        _PALETTE_CACHE[key] = result
        if len(_PALETTE_CACHE) > _PALETTE_CACHE_SIZE:
            _PALETTE_CACHE.popitem(last=False)
    return result


def _palette(arr: np.ndarray, ds: Dataset, frame: int) -> np.ndarray:
    table, first = _palette_table(ds, arr.dtype)
    return table[np.clip(arr.astype(np.int64) - first, 0, len(table) - 1)]


def _colour(arr: np.ndarray, ds: Dataset, frame: int) -> np.ndarray:
    if arr.dtype.kind == "f":
        low, high = _auto_range(arr)
        return np.round(_scale_to_unit(arr, low, high) * 255).astype(np.uint8)
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
    if int(arr.max(initial=0)) >= 2**bits:
        bits = int(ds.get("BitsAllocated") or 16)
    return _to_uint8(arr, bits)


_COLOUR_RENDERERS: dict[str, Callable[[np.ndarray, Dataset, int], np.ndarray]] = {
    "PALETTE COLOR": _palette,
    "RGB": _colour,
    "YBR_FULL": _colour,  # converted to RGB by the decoder
    "YBR_FULL_422": _colour,
    "YBR_ICT": _colour,
    "YBR_RCT": _colour,
    "YBR_PARTIAL_420": _colour,
    "YBR_PARTIAL_422": _colour,
}


# --------------------------------------------------------------------------------------------
# Rendering


def render_frame(
    source: Source,
    *,
    frame: int = 1,
    window: Window | None = None,
    viewport: tuple[int, int] | None = None,
    invert: bool = False,
) -> Image.Image:
    """One frame as an 8-bit "L" or "RGB" image.

    ``window`` is (center, width) or (center, width, VOI LUT function: "LINEAR", "LINEAR_EXACT",
    "SIGMOID") in output units of the Modality LUT (e.g. HU); without it the
    file's VOI LUT or window is used, else a robust min-max. ``viewport`` (width, height) scales
    the picture to fit inside, keeping its aspect ratio.
    """
    if window is not None and not window[1] > 0:
        raise ValueError("Window width must be positive")
    ds, source = _open(source)
    return _render(ds, source, frame, window=window, viewport=viewport, invert=invert)


def _render(
    ds: Dataset,
    source: Source,
    frame: int,
    *,
    window: Window | None = None,
    viewport: tuple[int, int] | None = None,
    invert: bool = False,
) -> Image.Image:
    arr = _decode(ds, source, frame, fit=viewport)
    if viewport is not None:
        arr = _subsample(arr, viewport)
    try:
        image = _to_image(arr, ds, frame, window)
    except (NotAnImage, RenderError):
        raise
    except Exception as exc:
        raise RenderError(f"Cannot render frame {frame}: {type(exc).__name__}: {exc}") from exc
    if invert:
        image = Image.eval(image, lambda v: 255 - v)
    if viewport is not None:
        image = fit_within(image, viewport)
    return image


def _subsample(arr: np.ndarray, viewport: tuple[int, int]) -> np.ndarray:
    """Every k-th pixel of a frame far larger than the viewport, keeping at least twice the
    viewport's resolution for the final resampling; the value transforms then touch far fewer
    pixels."""
    rows, columns = arr.shape[:2]
    step = int(min(columns / max(viewport[0], 1), rows / max(viewport[1], 1)) // 2)
    return arr[::step, ::step] if step >= 2 else arr


def _to_image(arr: np.ndarray, ds: Dataset, frame: int, window: Window | None) -> Image.Image:
    photometric = str(ds.get("PhotometricInterpretation") or "").strip().upper()
    samples = int(ds.get("SamplesPerPixel") or 1)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        renderer = _COLOUR_RENDERERS.get(photometric, _colour)
        return Image.fromarray(np.ascontiguousarray(renderer(arr, ds, frame)), mode="RGB")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise RenderError(f"Unexpected decoded frame shape {arr.shape} for {samples} sample(s) per pixel")
    if photometric == "PALETTE COLOR":  # the palette defines the colours; a window does not apply
        return Image.fromarray(np.ascontiguousarray(_palette(arr, ds, frame)), mode="RGB")
    unit = _grayscale(arr, ds, frame, window)
    inverse = photometric == "MONOCHROME1"
    if str(ds.get("PresentationLUTShape") or "").strip().upper() == "INVERSE":
        inverse = not inverse
    if inverse:
        unit = 1.0 - unit
    grey = np.round(unit * 255.0).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(grey), mode="L")


def fit_within(image: Image.Image, viewport: tuple[int, int]) -> Image.Image:
    """Scale to the largest size that fits inside (width, height), keeping the aspect ratio."""
    max_width, max_height = (max(int(v), 1) for v in viewport)
    scale = min(max_width / image.width, max_height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size:
        return image
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
    return image.resize(size, resample)


def encode(image: Image.Image, *, format: str = "JPEG", quality: int = THUMBNAIL_QUALITY) -> bytes:
    """The image as JPEG or PNG bytes."""
    buffer = io.BytesIO()
    if format.upper() == "PNG":
        image.save(buffer, format="PNG", optimize=False)
    else:
        image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Thumbnails


def render_thumbnail(source: Source) -> bytes:
    """JPEG bytes of the middle frame, longest side THUMBNAIL_SIZE."""
    ds, source = _open(source)
    image = _render(ds, source, middle_frame(ds), viewport=(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    return encode(image)


def thumbnail_name(instance) -> str:
    return f"thumbnails/{instance.sop_instance_uid}.jpg"


def make_thumbnail(instance) -> None:
    """Render the instance's thumbnail, store it and record the outcome on the instance."""
    try:
        data = _render_stored(instance)
    except NotAnImage:
        instance.mark_no_image()
        return
    except RenderError as exc:
        instance.mark_failed(reason=str(exc))
        return
    name = thumbnail_name(instance)
    if default_storage.exists(name):
        default_storage.delete(name)
    saved = default_storage.save(name, ContentFile(data))
    instance.mark_rendered(saved)


def _render_stored(instance) -> bytes:
    """Render from the stored file: by path on local storage, else through a file object."""
    storage = instance.file.storage
    try:
        path = storage.path(instance.file.name)
    except NotImplementedError:
        path = None
    try:
        if path is not None:
            return render_thumbnail(path)
        with storage.open(instance.file.name, "rb") as handle:
            return render_thumbnail(handle)
    except (NotAnImage, RenderError):
        raise
    except FileNotFoundError as exc:
        raise RenderError(f"The stored file is missing: {instance.file.name}") from exc
    except Exception as exc:
        raise RenderError(f"Cannot render: {type(exc).__name__}: {exc}") from exc

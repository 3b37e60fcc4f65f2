"""Decoding frames that the plain decoders refuse, by repairing the defects real files carry:
deflated data sets, malformed NumberOfFrames, native pixel data cut short, JPEG and JPEG 2000
streams with wrong parameters, encapsulated pixel data that runs to the end of the file."""

from __future__ import annotations

import io
import logging
import os
import struct
from collections.abc import Callable

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_fragments, get_frame
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
)

from .errors import RenderError
from .pixels import PIXEL_KEYWORDS, Source, decode_pixels, has_pixels, transfer_syntax_of

logger = logging.getLogger(__name__)

# A file that the frame-by-frame decoder refuses is read whole for repair only up to this size.
_REPAIR_MAX_BYTES = 512 * 1024 * 1024


def decode_repaired(ds: Dataset, source: Source, frame: int, error: Exception) -> np.ndarray:
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
    transfer_syntax = transfer_syntax_of(full)
    try:
        repaired, index = _repaired_dataset(full, ds, keyword, data, transfer_syntax, frame, error)
        return decode_pixels(repaired, index, transfer_syntax_of(repaired))
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


def read_unterminated(source: Source) -> Dataset | None:
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

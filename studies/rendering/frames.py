"""Decoding one frame of a DICOM object (1-based), never the whole pixel data of a multi-frame one."""

from __future__ import annotations

import io
import logging
import os

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.uid import HTJ2K, JPEG2000, HTJ2KLossless, HTJ2KLosslessRPCL, JPEG2000Lossless

from . import repair
from .errors import NotAnImage, RenderError
from .pixels import Source, decode_pixels, has_pixels, number_of_frames, read_header, transfer_syntax_of

logger = logging.getLogger(__name__)

# Frames larger than this many pixels are refused before anything is decoded (about 8000 x 8000):
# rendering here, and decoding for DICOMweb transcoding (studies/dicomweb/wado.py).
MAX_FRAME_PIXELS = 64 * 1024 * 1024


def load_frame(source: Source, *, frame: int = 1) -> tuple[np.ndarray, Dataset]:
    """Decode one frame (1-based) and return its stored values with the data set's header.

    Colour data comes back as RGB (YBR is converted by the decoder); values are as stored, before
    any Modality or VOI transform. Raises NotAnImage when there is no pixel data and RenderError
    when the pixel data cannot be decoded.
    """
    ds, source = open_image(source)
    return decode_frame(ds, source, frame), ds


def open_image(source: Source) -> tuple[Dataset, Source]:
    """The header, and the source to decode from (a repaired in-memory copy for some defects)."""
    ds = read_header(source)
    # An image header (or none at all) without pixel data may be pixel data that pydicom dropped
    # because it runs to the end of the file; documents and reports are not read twice.
    looks_like_image = "Rows" in ds or "SOPInstanceUID" not in ds
    if not has_pixels(ds) and looks_like_image and not isinstance(source, Dataset):
        closed = repair.read_unterminated(source)
        if closed is not None:
            ds = source = closed
    if not has_pixels(ds):
        raise NotAnImage("The object has no pixel data")
    return ds, source


def decode_frame(ds: Dataset, source: Source, frame: int, fit: tuple[int, int] | None = None) -> np.ndarray:
    """Decode one frame; with ``fit``, JPEG 2000 may be decoded at a lower resolution that still
    covers a (width, height) box, which is many times faster for thumbnails."""
    frames = number_of_frames(ds)
    if not 1 <= frame <= frames:
        raise RenderError(f"Frame {frame} does not exist: the object has {frames} frame(s)")
    for keyword in ("Rows", "Columns"):
        if not ds.get(keyword):
            raise RenderError(f"{keyword} is missing or zero")
    if int(ds.Rows) * int(ds.Columns) > MAX_FRAME_PIXELS:
        raise RenderError(f"The frame is too large to render: {ds.Columns} x {ds.Rows} pixels")
    if fit is not None and transfer_syntax_of(ds) in _J2K_SYNTAXES:
        arr = _decode_j2k_reduced(ds, source, frame, fit)
        if arr is not None:
            return arr
    if not isinstance(source, str | os.PathLike | Dataset):
        source.seek(0)
    try:
        return decode_pixels(source, frame - 1, transfer_syntax_of(ds))
    except MemoryError:
        raise RenderError(f"Not enough memory to decode frame {frame}")
    except Exception as exc:
        return repair.decode_repaired(ds, source, frame, exc)


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

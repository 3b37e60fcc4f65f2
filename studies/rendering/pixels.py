"""Reading a DICOM header without its pixel data, and calling pydicom's decoders on a frame."""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import UID, ImplicitVRLittleEndian

from .errors import RenderError

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# Elements larger than this stay on disk while the header is parsed: the pixel data of a large
# object is then never read by the header pass, only frame by frame by the decoder.
_DEFER_SIZE = "1 MB"


Source = str | os.PathLike | BinaryIO | Dataset


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


def is_decoder_panic(exc: BaseException) -> bool:
    """Rust decoders (pyo3) raise PanicException, a BaseException, on some corrupt input."""
    return type(exc).__name__ == "PanicException"


def decode_pixels(src: Source, index: int, transfer_syntax: UID) -> np.ndarray:
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


def transfer_syntax_of(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(uid) if uid else ImplicitVRLittleEndian

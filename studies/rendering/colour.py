"""Colour frames to 8-bit RGB (PS3.3 C.7.6.3): palette colour through its lookup tables, RGB and
YBR (converted to RGB by the decoder) scaled to 8 bits."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut

from .errors import RenderError
from .windowing import auto_range, scale_to_unit


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


def palette_values(arr: np.ndarray, ds: Dataset, frame: int) -> np.ndarray:
    table, first = _palette_table(ds, arr.dtype)
    return table[np.clip(arr.astype(np.int64) - first, 0, len(table) - 1)]


def colour_values(arr: np.ndarray, ds: Dataset, frame: int) -> np.ndarray:
    if arr.dtype.kind == "f":
        low, high = auto_range(arr)
        return np.round(scale_to_unit(arr, low, high) * 255).astype(np.uint8)
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
    if int(arr.max(initial=0)) >= 2**bits:
        bits = int(ds.get("BitsAllocated") or 16)
    return _to_uint8(arr, bits)


COLOUR_RENDERERS: dict[str, Callable[[np.ndarray, Dataset, int], np.ndarray]] = {
    "PALETTE COLOR": palette_values,
    "RGB": colour_values,
    "YBR_FULL": colour_values,  # converted to RGB by the decoder
    "YBR_FULL_422": colour_values,
    "YBR_ICT": colour_values,
    "YBR_RCT": colour_values,
    "YBR_PARTIAL_420": colour_values,
    "YBR_PARTIAL_422": colour_values,
}

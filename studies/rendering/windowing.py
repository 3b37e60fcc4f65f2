"""Grayscale values to 0..1 (PS3.4 Annex N): Modality LUT or rescale, then a VOI LUT or window,
taken per frame from the functional groups of enhanced objects."""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi

# Percentiles of the robust min-max window used when the file names no window of its own.
_AUTO_WINDOW_PERCENTILES = (0.5, 99.5)
# The percentiles are taken over at most this many samples (a strided subset of the frame).
_AUTO_WINDOW_SAMPLES = 1 << 16


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


def auto_range(values: np.ndarray) -> tuple[float, float]:
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


def scale_to_unit(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return (values > low).astype(np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def grayscale(arr: np.ndarray, ds: Dataset, frame: int, window: Window | None) -> np.ndarray:
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
            return scale_to_unit(looked_up, float(lut.min()), float(lut.max()))
    file_window = _file_window(voi)
    if file_window is not None:
        return _window(values, *file_window)
    return scale_to_unit(values, *auto_range(values))

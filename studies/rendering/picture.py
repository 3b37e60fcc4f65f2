"""One frame as an 8-bit "L" or "RGB" picture: decode, transform the values, fit a viewport."""

from __future__ import annotations

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from .colour import COLOUR_RENDERERS, colour_values, palette_values
from .errors import NotAnImage, RenderError
from .frames import decode_frame, open_image
from .pixels import Source
from .windowing import Window, grayscale


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
    ds, source = open_image(source)
    return render_dataset(ds, source, frame, window=window, viewport=viewport, invert=invert)


def render_dataset(
    ds: Dataset,
    source: Source,
    frame: int,
    *,
    window: Window | None = None,
    viewport: tuple[int, int] | None = None,
    invert: bool = False,
) -> Image.Image:
    arr = decode_frame(ds, source, frame, fit=viewport)
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
        renderer = COLOUR_RENDERERS.get(photometric, colour_values)
        return Image.fromarray(np.ascontiguousarray(renderer(arr, ds, frame)), mode="RGB")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise RenderError(f"Unexpected decoded frame shape {arr.shape} for {samples} sample(s) per pixel")
    if photometric == "PALETTE COLOR":  # the palette defines the colours; a window does not apply
        return Image.fromarray(np.ascontiguousarray(palette_values(arr, ds, frame)), mode="RGB")
    unit = grayscale(arr, ds, frame, window)
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

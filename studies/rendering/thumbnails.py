"""The one thumbnail maker: the middle frame in a small box, encoded. Ingest stores its JPEG for every
instance (``make_thumbnail``); DICOMweb's ``thumbnail`` resources call it with their own box,
window and media type when no stored thumbnail fits."""

from __future__ import annotations

import io
from collections.abc import Callable

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from .encode import encode
from .errors import NotAnImage, RenderError
from .frames import open_image
from .picture import fit_within, render_dataset
from .pixels import Source, middle_frame
from .windowing import Window

THUMBNAIL_SIZE = 256
THUMBNAIL_QUALITY = 85
THUMBNAIL_VIEWPORT = (THUMBNAIL_SIZE, THUMBNAIL_SIZE)


def render_thumbnail(
    source: Source,
    *,
    viewport: tuple[int, int] | None = None,
    window: Window | None = None,
    media_type: str = "image/jpeg",
    quality: int = THUMBNAIL_QUALITY,
) -> bytes:
    """The middle frame fitted into ``viewport`` (default: THUMBNAIL_SIZE square), encoded as
    ``media_type``; ``window`` as for ``render_frame``."""
    if window is not None and not window[1] > 0:
        raise ValueError("Window width must be positive")
    ds, source = open_image(source)
    image = render_dataset(ds, source, middle_frame(ds), window=window, viewport=viewport or THUMBNAIL_VIEWPORT)
    return encode(image, media_type, quality=quality)


def stored_thumbnail(
    instance, *, viewport: tuple[int, int] | None, media_type: str, quality: int, accepts: Callable[[str], bool]
) -> tuple[bytes, str] | None:
    """The instance's stored thumbnail where it can stand in for a new one, as ``(bytes, media
    type)``: as it is when it fits ``viewport`` and ``accepts`` its type, else fitted and encoded
    as ``media_type``; None when there is none or ``viewport`` is larger than it."""
    if instance.status != instance.Status.READY or not instance.thumbnail:
        return None
    stored_type = "image/png" if instance.thumbnail.name.lower().endswith(".png") else "image/jpeg"
    try:
        with instance.thumbnail.storage.open(instance.thumbnail.name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    if not data:
        return None
    image = Image.open(io.BytesIO(data))
    fits = viewport is None or (image.width <= viewport[0] and image.height <= viewport[1])
    if fits and accepts(stored_type):
        return data, stored_type
    if fits or (viewport and max(image.size) >= max(viewport)):
        if viewport:
            image = fit_within(image, viewport)
        return encode(image, media_type, quality=quality), media_type
    return None


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

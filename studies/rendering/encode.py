"""The one image encoder: pictures as JPEG, PNG or GIF bytes, for stored thumbnails and DICOMweb alike."""

from __future__ import annotations

import io

from PIL import Image


def encode(image: Image.Image, media_type: str = "image/jpeg", *, quality: int) -> bytes:
    """The image as ``image/png`` or ``image/gif``, else as JPEG at ``quality`` (1-100)."""
    out = io.BytesIO()
    if media_type == "image/png":
        image.save(out, format="PNG")
    elif media_type == "image/gif":
        if image.mode not in ("L", "P"):  # GIF holds 256 colours: an adaptive palette, not the web one
            image = image.convert("RGB").quantize(256)
        image.save(out, format="GIF")
    else:
        if image.mode not in ("L", "RGB"):  # a stored PNG thumbnail may be palette or RGBA
            image = image.convert("RGB")
        image.save(out, format="JPEG", quality=quality)
    return out.getvalue()

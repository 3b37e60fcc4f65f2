"""The one image encoder: pictures as JPEG or PNG bytes, for stored thumbnails and DICOMweb alike."""

from __future__ import annotations

import io

from PIL import Image


def encode(image: Image.Image, media_type: str = "image/jpeg", *, quality: int) -> bytes:
    """The image as ``image/png``, else as JPEG at ``quality`` (1-100)."""
    out = io.BytesIO()
    if media_type == "image/png":
        image.save(out, format="PNG")
    else:
        if image.mode not in ("L", "RGB"):  # a stored PNG thumbnail may be palette or RGBA
            image = image.convert("RGB")
        image.save(out, format="JPEG", quality=quality)
    return out.getvalue()

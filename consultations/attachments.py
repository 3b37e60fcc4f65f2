"""What may be attached to a consult: recognised by its first bytes, never by name or declared
type, and limited in size."""

from __future__ import annotations

import io

from django.conf import settings

from .errors import AttachmentRefusedError
from .models import ConsultAttachment

MAGIC = (
    (b"%PDF-", ConsultAttachment.Kind.PDF),
    (b"\x89PNG\r\n\x1a\n", ConsultAttachment.Kind.PNG),
    (b"\xff\xd8\xff", ConsultAttachment.Kind.JPEG),
)


def check_size(size: int) -> None:
    limit = settings.TELECONSULT_ATTACHMENT_MAX_SIZE
    if size > limit:
        raise AttachmentRefusedError(f"The file is {size} bytes; attachments may be at most {limit} bytes.")


def sniff_attachment(data: bytes) -> str:
    """The kind of the file (pdf, png, jpeg), or AttachmentRefusedError."""
    if not data:
        raise AttachmentRefusedError("The file is empty.")
    for magic, kind in MAGIC:
        if data.startswith(magic):
            if kind != ConsultAttachment.Kind.PDF:
                _check_image(data)
            return kind
    raise AttachmentRefusedError("Only PDF, PNG or JPEG files can be attached; this file is none of them.")


def _check_image(data: bytes) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise AttachmentRefusedError(f"The image is damaged or incomplete ({exc}).") from None

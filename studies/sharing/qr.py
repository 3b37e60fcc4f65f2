"""A QR code of a new share link, so a phone beside the screen opens it by its camera.

Drawn on the server as SVG (the ``qrcode`` package) and sent as a ``data:`` image: the page needs
no script for it (the Content-Security-Policy allows scripts from our own files only) and the
token never leaves the answer that shows it.
"""

from __future__ import annotations

import base64

import qrcode
import qrcode.image.svg


def qr_svg(text: str) -> str:
    """An SVG QR code of ``text`` (medium error correction, a quiet zone of four modules)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(text)
    code.make(fit=True)
    return code.make_image(image_factory=qrcode.image.svg.SvgPathImage).to_string(encoding="unicode")


def qr_data_uri(text: str) -> str:
    """``qr_svg(text)`` as a ``data:image/svg+xml`` URI for an ``<img src>``."""
    return "data:image/svg+xml;base64," + base64.b64encode(qr_svg(text).encode()).decode("ascii")

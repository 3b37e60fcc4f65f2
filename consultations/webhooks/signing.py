"""The ``Teleconsult-Signature`` header: ``t=<unix time>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>``.

The time is inside what is signed, so a receiver that refuses old timestamps (five minutes is the
advised tolerance) cannot be fed a captured request again later; ``Teleconsult-Delivery`` is the
same on every try of one delivery, so a receiver that keeps the ids it has seen acts on it once.
``verify`` is what a receiver does (docs/webhooks.md shows it standalone).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Teleconsult-Signature"
EVENT_HEADER = "Teleconsult-Event"
DELIVERY_HEADER = "Teleconsult-Delivery"
TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, body: bytes, header_value: str, *, tolerance: int = TOLERANCE_SECONDS, now=None) -> bool:
    """True when ``header_value`` signs ``body`` with ``secret`` and its time is within ``tolerance``."""
    try:
        fields = dict(part.split("=", 1) for part in header_value.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), fields.get("v1", ""))

"""Single byte ranges (RFC 9110 section 14) on single-part answers: a bulk data value, one instance as
application/dicom. A client resuming a large download asks for the rest with ``Range: bytes=N-``.

Multipart answers ignore Range: their boundaries are new on every request, so byte offsets into
them mean nothing. Several ranges in one header, other units, and ``If-Range`` (the portal sends
no validators, so none can match) get the whole answer, as RFC 9110 allows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from django.http import HttpRequest, HttpResponse

from teleconsult.responses import StreamingResponse

from .errors import error_response

RANGE_RE = re.compile(r"^\s*([0-9]*)\s*-\s*([0-9]*)\s*$")
# A position of more digits than this is past the end of anything served (2**63 has 19 digits); it
# is read as "beyond the end" rather than converted, as int() refuses strings of thousands of digits.
MAX_DIGITS = 19
BEYOND_THE_END = 10**MAX_DIGITS


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return BEYOND_THE_END if len(digits) > MAX_DIGITS else int(digits)


class UnsatisfiableRangeError(ValueError):
    pass


def requested_range(header: str | None, if_range: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte positions asked for, inclusive, or None for the whole answer.

    Raises UnsatisfiableRangeError for a malformed range or one that starts past the end."""
    if not header or if_range:
        return None
    unit, equals, spec = header.partition("=")
    if not equals or unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = RANGE_RE.match(spec)
    if match is None or match.group(1) == match.group(2) == "":
        raise UnsatisfiableRangeError(
            f"Range: {_shown(header)} is not a byte range such as bytes=0-1023 or bytes=1024-."
        )
    # RFC 9110 14.1.2: a last position past the end, or a suffix longer than the answer, means up to
    # the end; a first position past the end is unsatisfiable (416).
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        suffix = _position(last)
        if suffix == 0:
            raise UnsatisfiableRangeError("Range: a suffix range of 0 bytes selects nothing.")
        return max(size - suffix, 0), size - 1
    start = _position(first)
    end = min(_position(last), size - 1) if last else size - 1
    if last and _position(last) < start:
        raise UnsatisfiableRangeError(f"Range: {_shown(header)} ends before it starts.")
    if start >= size:
        raise UnsatisfiableRangeError(f"Range: {_shown(header)} starts past the end of the {size} bytes.")
    return start, end


def _shown(header: str) -> str:
    """The header as quoted in a refusal, cut short: it can be thousands of characters long."""
    return repr(header) if len(header) <= 80 else repr(header[:77] + "...")


def ranged_response(
    request: HttpRequest,
    *,
    size: int,
    content_type: str,
    read: Callable[[int, int], Iterable[bytes]],
) -> HttpResponse:
    """The answer, or the byte range of it the client asked for (206), or 416; ``read(start, length)``
    gives the bytes."""
    try:
        span = requested_range(request.headers.get("Range"), request.headers.get("If-Range"), size)
    except UnsatisfiableRangeError as exc:
        response = error_response(str(exc), 416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    start, end = span if span is not None else (0, size - 1)
    response = StreamingResponse(read(start, end - start + 1), status=206 if span else 200, content_type=content_type)
    response["Content-Length"] = str(end - start + 1)
    response["Accept-Ranges"] = "bytes"
    if span is not None:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    return response


def file_range(opener: Callable, start: int, length: int, chunk_size: int = 1 << 20) -> Iterable[bytes]:
    """``length`` bytes from ``start`` of the file ``opener()`` opens, read when the stream gets there."""
    with opener() as handle:
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(chunk_size, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk

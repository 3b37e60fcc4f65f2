"""DICOMweb's error: a :class:`~teleconsult.errors.PortalError`, and the one place DICOMweb answers
errors. Every route answers ``{"detail": message}`` with the error's status (PS3.18 leaves the
body to the server; clients show ``detail``), and 401s say how to authenticate. A database that
cannot be reached is answered in this shape too (``teleconsult.database``: 503 with
``Retry-After``), never with Django's HTML error page."""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404, HttpResponse

from teleconsult.errors import PortalError

# Machine-readable codes for the statuses DICOMweb answers, as Django REST framework names them.
STATUS_CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
}


class DicomwebError(PortalError):
    """A request the service answers with ``status`` and a human-readable ``message``."""

    def __init__(self, message: str, status: int = 400, *, code: str | None = None, **data: Any) -> None:
        super().__init__(message, code=code or STATUS_CODES.get(status, "invalid"), status=status, **data)


def error_response(message: str, status: int) -> HttpResponse:
    response = HttpResponse(json.dumps({"detail": message}), status=status, content_type="application/json")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="dicomweb"'
    return response


def exception_response(exc: PortalError | Http404) -> HttpResponse:
    """The answer to an error a DICOMweb route raised: any PortalError, or a 404."""
    if isinstance(exc, Http404):
        return error_response(str(exc) or "Not found.", 404)
    response = error_response(exc.message, exc.status)
    # A refusal may name headers of its own (Retry-After of an unreachable identity provider).
    for name, value in (getattr(exc, "headers", None) or {}).items():
        response[name] = value
    return response

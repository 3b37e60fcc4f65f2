"""Shared REST API pieces: the error shape every endpoint answers with (see teleconsult.errors)."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from teleconsult import database
from teleconsult.errors import PortalError


def exception_handler(exc: Exception, context: dict[str, Any]):
    """DRF's handler, plus a top-level ``detail`` on validation errors so clients read one key.

    Field errors stay keyed by field name (``{"email": ["This field is required."]}``), so the
    body names the field at fault.

    A :class:`~teleconsult.errors.PortalError` answers its own status with
    ``{"detail", "code", **data}``. A database that cannot be reached is a 503 with
    ``Retry-After`` (``teleconsult.database``), not a 500.
    """
    if database.is_unavailable(exc):
        set_rollback()
        request = context.get("request")
        error = database.unavailable(exc, f"API {getattr(request, 'path', '')}")
        return database.retry_after(Response(error.as_json(), status=error.status))
    if isinstance(exc, PortalError):
        # A refusal may name headers of its own (Retry-After of an unreachable identity provider).
        return Response(exc.as_json(), status=exc.status, headers=getattr(exc, "headers", None))
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" not in response.data:
        fields = ", ".join(str(key) for key in response.data)
        response.data["detail"] = f"Invalid input: {fields}."
    return response

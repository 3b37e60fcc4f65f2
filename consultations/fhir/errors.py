"""FHIR's refusals: every error under ``/fhir/r4/`` is an ``OperationOutcome``.

``FhirError`` is a :class:`~teleconsult.errors.PortalError` that also carries the FHIR issue type
and the element at fault (``expression``, e.g. ``ServiceRequest.priority``). ``exception_handler``
lets the project's REST handler decide the status first (a ``PortalError`` from the actions, DRF's
401/405/406/415, a database that cannot be reached), then answers that status with an
``OperationOutcome`` instead of ``{"detail": ...}``, keeping its headers (``WWW-Authenticate``,
``Retry-After``).
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.operationoutcome import OperationOutcome
from rest_framework import exceptions
from rest_framework.response import Response

from teleconsult.api import exception_handler as portal_exception_handler
from teleconsult.errors import PortalError

# HTTP status -> the FHIR issue type (http://hl7.org/fhir/issue-type) when the error names none.
ISSUE_TYPES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    503: "transient",
}


class FhirError(PortalError):
    """A request refused with an ``OperationOutcome``: ``issue`` is its FHIR issue type and
    ``expression`` the elements or parameters at fault."""

    def __init__(
        self, message: str, *, status: int = 400, issue: str | None = None, expression: list[str] | None = None
    ) -> None:
        super().__init__(message, code=issue or ISSUE_TYPES.get(status, "processing"), status=status)
        self.expression = list(expression or [])


class InvalidError(FhirError):
    """A resource that could not be read or fails FHIR's own rules (400)."""

    def __init__(self, message: str, *, expression: list[str] | None = None, issue: str = "invalid") -> None:
        super().__init__(message, status=400, issue=issue, expression=expression)


class UnprocessableError(FhirError):
    """A well-formed resource the portal's rules refuse (422): an unknown priority, a study the
    caller may not see, a specialist not licensed where the patient is."""

    def __init__(self, message: str, *, expression: list[str] | None = None, issue: str = "processing") -> None:
        super().__init__(message, status=422, issue=issue, expression=expression)


class NotFoundError(FhirError):
    def __init__(self, message: str = "No such resource.", *, issue: str = "not-found") -> None:
        super().__init__(message, status=404, issue=issue)


def outcome(issues: list[dict[str, Any]]) -> dict:
    """An ``OperationOutcome`` of ``issues`` (``{"code", "diagnostics", "expression"?}``), checked."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": issue.get("severity", "error"), **{k: v for k, v in issue.items() if v and k != "severity"}}
            for issue in issues
        ],
    }
    return OperationOutcome.model_validate(body).model_dump(mode="json", exclude_none=True)


def _issues(exc: Exception, response: Response) -> list[dict[str, Any]]:
    if isinstance(exc, FhirError):
        return [{"code": exc.code, "diagnostics": exc.message, "expression": exc.expression}]
    issue = ISSUE_TYPES.get(response.status_code, "processing" if response.status_code < 500 else "exception")
    data = response.data
    if isinstance(exc, exceptions.ValidationError) and isinstance(data, dict):
        return [
            {"code": issue, "diagnostics": " ".join(map(str, messages)), "expression": [field]}
            for field, messages in data.items()
            if field != "detail"
        ] or [{"code": issue, "diagnostics": str(data.get("detail", "Invalid input."))}]
    detail = data.get("detail") if isinstance(data, dict) else data
    return [{"code": issue, "diagnostics": str(detail or "Refused.")}]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = portal_exception_handler(exc, context)
    if response is None:
        return None
    response.data = outcome(_issues(exc, response))
    return response

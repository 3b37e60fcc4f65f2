"""The product's one error type, and the places it is turned into an answer.

A change the portal refuses for a reason the user can act on raises :class:`PortalError` (or a
subclass naming the area: ``ConsultError``, ``DicomwebError``...). It carries a machine-readable
``code``, an HTTP ``status``, a human ``message`` and optional data fields. It is rendered once
per interface:

- REST API (DRF): ``teleconsult.api.exception_handler`` answers
  ``{"detail": message, "code": code, **data}`` with ``status``;
- pages: :class:`PortalErrorMiddleware` flashes the message and sends the browser back where the
  view said a refusal goes (:func:`on_refusal`), or renders ``refused.html`` with ``status``;
- WebSocket frames: :func:`error_frame` is ``{"type": "error", "code": code, "message": message}``;
- DICOMweb, whose contract answers ``{"detail": message}`` only: ``studies.dicomweb.errors``.

Views that show the message beside a form field still catch it themselves (``form.add_error``);
everything else lets it propagate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render


class PortalError(Exception):
    """A request refused for a reason the user can act on; the message says why."""

    status: int = 400
    code: str = "invalid"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.data = data

    def as_json(self) -> dict[str, Any]:
        """The REST body: ``detail`` and ``code`` first, then the data fields."""
        return {"detail": self.message, "code": self.code, **self.data}


def error_frame(exc: PortalError) -> dict[str, Any]:
    """The WebSocket frame for a refusal (the ``error {code, message}`` message of the contract)."""
    return {"type": "error", "code": exc.code, "message": exc.message}


# Pages ------------------------------------------------------------------------------------------

_REFUSAL_TARGET = "_portal_refusal_target"


def on_refusal(request: HttpRequest, target: str | Callable[[], str]) -> None:
    """Declare where the browser goes back to if this request is refused: a URL, or a function
    giving one (called only on refusal, for targets that depend on what the refusal changed)."""
    setattr(request, _REFUSAL_TARGET, target)


def page_response(request: HttpRequest, exc: PortalError) -> HttpResponse:
    target = getattr(request, _REFUSAL_TARGET, None)
    if target is not None:
        messages.error(request, exc.message)
        return HttpResponseRedirect(target() if callable(target) else target)
    return render(request, "refused.html", {"message": exc.message, "code": exc.code}, status=exc.status)


class PortalErrorMiddleware:
    """Renders a :class:`PortalError` that escaped a page view (REST views never let one escape:
    DRF's handler answers it first)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, PortalError):
            return page_response(request, exception)
        return None

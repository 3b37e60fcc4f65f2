"""Absolute links to the portal, for emails: one place that knows the address the portal is served at.

The address is, in order:

1. ``TELECONSULT_BASE_URL`` when it is set (production sets it: the address people type);
2. the address of the request being answered (scheme and host, the host checked against
   ``ALLOWED_HOSTS``), passed in or, inside a request, known from :class:`ServedAddressMiddleware`;
3. with DEBUG, for work outside a request (a Celery task, beat), the address the portal was last
   served at, which the middleware remembers in the cache (shared with the worker through Redis,
   in-process without it). A development portal on port 8123 thus sends links to port 8123.

Without any of these a link stays a path and a warning is logged. Production never remembers a
request's host for later emails: an address taken from one request must not end up in someone
else's email.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextvars import ContextVar

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import DisallowedHost, MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

SERVED_ADDRESS_KEY = "links:served-address"
# How often one process writes the remembered address again while it stays the same.
REMEMBER_EVERY_SECONDS = 600

_current: ContextVar[str] = ContextVar("teleconsult_served_address", default="")


def request_address(request: HttpRequest) -> str:
    """``scheme://host[:port]`` of a request, or "" when its host is not one the portal answers to."""
    try:
        return f"{request.scheme}://{request.get_host()}"
    except DisallowedHost:
        return ""


def base_url(request: HttpRequest | None = None) -> str:
    """The portal's address without a trailing slash ("" when unknown)."""
    if settings.TELECONSULT_BASE_URL:
        return settings.TELECONSULT_BASE_URL
    address = (request_address(request) if request is not None else "") or _current.get()
    if not address and settings.DEBUG:
        address = cache.get(SERVED_ADDRESS_KEY) or ""
    return address


def absolute_url(path: str, request: HttpRequest | None = None) -> str:
    """``path`` (``/consults/12/``) as a link to open from an email."""
    if path.startswith(("http://", "https://")):
        return path
    base = base_url(request)
    if not base:
        logger.warning("No address known for links in emails; set TELECONSULT_BASE_URL (link left as %s)", path)
    return f"{base}{path}"


def rebase(url: str, request: HttpRequest | None) -> str:
    """A link a library built on the request's own address, moved to :func:`base_url`."""
    if request is None or not isinstance(url, str):
        return url
    own = request_address(request)
    base = base_url(request)
    if own and base and own != base and url.startswith(own + "/"):
        return base + url[len(own) :]
    return url


class ServedAddressMiddleware:
    """Makes the address of the request being answered known to :func:`absolute_url` (emails
    composed during the request link to where the user is) and, with DEBUG, remembers it for
    emails sent later by tasks. Not used when ``TELECONSULT_BASE_URL`` is set."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if settings.TELECONSULT_BASE_URL:
            raise MiddlewareNotUsed
        self.get_response = get_response
        self._remembered = ("", 0.0)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        address = request_address(request)
        if address and settings.DEBUG:
            self._remember(address)
        token = _current.set(address)
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)

    def _remember(self, address: str) -> None:
        last, at = self._remembered
        now = time.monotonic()
        if address != last or now - at > REMEMBER_EVERY_SECONDS:
            cache.set(SERVED_ADDRESS_KEY, address, timeout=None)
            self._remembered = (address, now)

"""Which pages may open the portal's WebSockets: the Origin check of every handshake.

A WebSocket is not covered by the same-origin policy or by CSRF protection: any page a signed-in
person visits could open one with their cookie. So a browser handshake is let in only from the
portal's own origin, compared as Django's CSRF check compares a form post's Origin.
"""

from __future__ import annotations

import io
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.http.request import validate_host
from django.utils.http import is_same_domain


class BrowserOriginValidator:
    """A browser's handshake must come from the portal's own origin: the Origin's scheme, host and
    port must be those the request was made to (its ``Host``, which must be one of ALLOWED_HOSTS,
    and its scheme, ``SECURE_PROXY_SSL_HEADER`` honoured as for pages), or one of
    CSRF_TRUSTED_ORIGINS. Another port or scheme of the same host is another origin (another
    application on that host), as it is for Django's CSRF check.

    A handshake without Origin is accepted only with an ``Authorization`` header: browsers always
    send Origin and cannot set that header, so such a handshake comes from an API client, where
    cross-site hijacking does not apply. One without a ``Host`` header (no browser sends one) is
    measured against ALLOWED_HOSTS on the default port of its scheme."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        names = {name.lower() for name, _ in scope.get("headers", [])}
        if b"origin" not in names and b"authorization" in names:
            return await self.application(scope, receive, send)
        if self.valid_origin(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

    @staticmethod
    def valid_origin(scope) -> bool:
        origins = [value for name, value in scope.get("headers", []) if name.lower() == b"origin"]
        if len(origins) != 1:
            return False
        origin = _origin_parts(origins[0].decode("latin-1"))
        if origin is None:
            return False
        request = ASGIRequest(
            {**scope, "type": "http", "method": "GET", "scheme": _HTTP_SCHEMES.get(scope.get("scheme"), "http")},
            io.BytesIO(),
        )
        if "HTTP_HOST" in request.META or (settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in request.META):
            try:
                own = _origin_parts(f"{request.scheme}://{request.get_host()}")
            except DisallowedHost:
                own = None
            if origin == own:
                return True
        else:
            scheme, host, port = origin
            if scheme == request.scheme and port == _DEFAULT_PORTS[scheme] and _allowed_host(host):
                return True
        return _trusted(origin)


_HTTP_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_parts(value: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an http(s) origin, the port filled in; None when it is not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def _allowed_host(host: str) -> bool:
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return validate_host(f"[{host}]" if ":" in host else host, allowed)


def _trusted(origin: tuple[str, str, int]) -> bool:
    """In CSRF_TRUSTED_ORIGINS, read as Django's CSRF check reads it (``https://*.example.org``)."""
    scheme, host, port = origin
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        wildcard = "://*." in entry
        trusted = _origin_parts(entry.replace("://*.", "://", 1) if wildcard else entry)
        if trusted is None or trusted[0] != scheme or trusted[2] != port:
            continue
        if trusted[1] == host or (wildcard and is_same_domain(host, "." + trusted[1])):
            return True
    return False

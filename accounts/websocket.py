"""WebSocket authentication: an ``Authorization`` handshake header, or else the session cookie.

A handshake that carries ``Authorization`` is authenticated by that header alone, as the REST API
does: an unknown, revoked or malformed token makes it anonymous (refused by the consumer with
4403), never a fallback to whatever session cookie came along. ``Token <key>`` and
``Bearer <key>`` both name a portal API token, or, when the key is a JWT, an access token of a
configured identity provider (accounts.oidc_tokens). Without the header, the session cookie decides.

Either way ``scope["credential"]`` records what the socket was opened with, so that revoking it
closes the socket (accounts.revocation).
"""

from __future__ import annotations

import re

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import AuthenticationFailed

from teleconsult.errors import PortalError

from . import oidc_tokens
from .authentication import BearerlessTokenAuthentication
from .mfa import must_set_up_mfa
from .revocation import PROVIDER_TOKEN, SESSION, TOKEN, Credential

SCHEMES = {b"token", b"bearer"}
# RFC 7235 token68; portal keys are at most 64 characters, a provider's JWT a few kilobytes.
TOKEN_KEY = re.compile(rb"[A-Za-z0-9._~+/-]+=*")
MAX_KEY_LENGTH = oidc_tokens.MAX_TOKEN_LENGTH


def token_key(values: list[bytes]) -> str | None:
    """The key of a single well-formed ``Token <key>`` or ``Bearer <key>`` header, else None."""
    if len(values) != 1:
        return None
    parts = values[0].split()
    if len(parts) != 2 or parts[0].lower() not in SCHEMES:
        return None
    key = parts[1]
    if len(key) > MAX_KEY_LENGTH or not TOKEN_KEY.fullmatch(key):
        return None
    return key.decode("ascii")


@database_sync_to_async
def user_for_token(key: str):
    """The token's user, refused as the REST API refuses it (unknown, inactive, MFA not set up;
    for a provider's JWT: forged, expired, another audience or issuer, provider unreachable)."""
    try:
        if oidc_tokens.looks_like_jwt(key):
            user, _ = oidc_tokens.authenticate_token(key)
        else:
            user, _ = BearerlessTokenAuthentication().authenticate_credentials(key)
    except (AuthenticationFailed, PortalError):
        return None
    return user


class _SessionCredential:
    """After Channels' session stack: note the session as the credential; MFA policy applies."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        user = scope.get("user")
        session_key = getattr(scope.get("session"), "session_key", None)
        signed_in = user is not None and user.is_authenticated and bool(session_key)
        # Someone who must first set up a second factor joins no room, by session or by token.
        session = scope.get("session")
        if signed_in and not await database_sync_to_async(must_set_up_mfa)(user, session):
            scope["credential"] = Credential(SESSION, session_key)
        else:
            scope["user"], scope["credential"] = AnonymousUser(), None
        return await self.inner(scope, receive, send)


class TokenOrSessionAuthMiddleware:
    """``scope["user"]`` (AnonymousUser when refused) and ``scope["credential"]`` for the consumers."""

    def __init__(self, inner):
        self.inner = inner
        self.session_stack = AuthMiddlewareStack(_SessionCredential(inner))

    async def __call__(self, scope, receive, send):
        values = [value for name, value in scope.get("headers", []) if name.lower() == b"authorization"]
        if not values:
            return await self.session_stack(scope, receive, send)
        scope = dict(scope, user=AnonymousUser(), credential=None)
        key = token_key(values)
        user = await user_for_token(key) if key else None
        if user is not None:
            scope["user"] = user
            scope["credential"] = Credential(PROVIDER_TOKEN if oidc_tokens.looks_like_jwt(key) else TOKEN, key)
        return await self.inner(scope, receive, send)

"""WebSocket authentication: the session cookie, or an ``Authorization: Token`` handshake header."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser

from .mfa import must_set_up_mfa


@database_sync_to_async
def user_for_token(key: str):
    from rest_framework.authtoken.models import Token

    try:
        token = Token.objects.select_related("user").get(key=key)
    except Token.DoesNotExist:
        return None
    return token.user if token.user.is_active else None


class _TokenHeaderMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        auth = headers.get(b"authorization", b"").decode("latin-1")
        keyword, _, key = auth.partition(" ")
        if keyword == "Token" and key:
            user = await user_for_token(key.strip())
            scope["user"] = user or AnonymousUser()
        # Someone who must first set up a second factor joins no room, by session or by token.
        if await database_sync_to_async(must_set_up_mfa)(scope.get("user")):
            scope["user"] = AnonymousUser()
        return await super().__call__(scope, receive, send)


def TokenOrSessionAuthMiddleware(inner):  # noqa: N802 - reads like the Channels middleware it wraps
    # The session stack runs first and sets scope["user"]; a token header then takes precedence.
    return AuthMiddlewareStack(_TokenHeaderMiddleware(inner))

"""Open WebSockets end when the credential they were opened with stops working.

A WebSocket is authenticated once, at its handshake; without this module a socket would outlive
the token deleted, the sign-out, the session an administrator deleted or the account deactivated,
while the REST API already answers 401. So every socket joins two channel-layer groups when it
connects (``groups_for``): one for its user and one for its credential (the API token or the
session it was opened with). Signals send ``auth.revoke`` to those groups once the change is
committed:

- an API token deleted, a session deleted (sign-out, an administrator, a new session key after a
  password change) or a sign-out: the credential's group, and those sockets close at once;
- an account deactivated or deleted: the user's group, and every socket of that person closes;
- a password changed: the user's group with ``recheck``, and each socket checks its credential
  again (``still_valid``, the same check a new handshake makes): sessions signed in with the old
  password end as they do for pages, while API tokens and identity providers' access tokens, which
  a password change does not revoke, stay.

Credentials also age out with no change to announce it: a provider's token at its ``exp``, a
session left idle past its expiry. ``Lifetime`` and the consumers' ``ClosesWhenCredentialAgesOut``
close those sockets before they carry another frame.

A revoked socket closes with ``REVOKED`` (docs/realtime.md). Group names carry a hash of the
token or session key, never the key itself: they travel through Redis.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from importlib import import_module
from types import SimpleNamespace

from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.signals import user_logged_out
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from teleconsult.errors import PortalError

from . import oidc_tokens
from .authentication import BearerlessTokenAuthentication
from .mfa import must_set_up_mfa

log = logging.getLogger(__name__)

# Close code of a socket whose credential was revoked: "sign in again", unlike 4403 ("not allowed
# here"). Browser clients reconnect on it; the reconnect is refused with 4403 when no valid
# credential is left (a new session cookie after a password change is let in).
REVOKED = 4401
EVENT = "auth.revoke"

TOKEN = "token"
SESSION = "session"
# A socket opened with a configured identity provider's access token (a JWT, accounts.oidc_tokens).
PROVIDER_TOKEN = "provider-token"


@dataclass(frozen=True)
class Credential:
    """What a socket was authenticated with: an API token key or a session key."""

    kind: str
    key: str

    @property
    def group(self) -> str:
        return credential_group(self.kind, self.key)


def credential_group(kind: str, key: str) -> str:
    digest = hashlib.sha256(f"{kind}:{key}".encode()).hexdigest()[:40]
    return f"revoke.{kind}.{digest}"


def user_group(user_id: int) -> str:
    """Every socket of one person, whatever it was opened with."""
    return f"revoke.user.{int(user_id)}"


def groups_for(scope: dict) -> list[str]:
    """The groups a socket joins at connect to hear of its revocation."""
    user = scope.get("user")
    credential = scope.get("credential")
    groups = [user_group(user.pk)] if user is not None and user.is_authenticated else []
    if credential is not None:
        groups.append(credential.group)
    return groups


def still_valid(scope: dict) -> bool:
    """Would this socket's credential open it now? The handshake's check, made again (database)."""
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return False
    if "credential" not in scope:
        # A consumer run without the portal's authentication middleware (which always records a
        # credential, None when it let nobody in), as in tests: only the account can be checked.
        return type(user)._default_manager.filter(pk=user.pk, is_active=True).exists()
    credential = scope["credential"]
    if credential is None:
        return False
    if credential.kind == TOKEN:
        try:
            current, _ = BearerlessTokenAuthentication().authenticate_credentials(credential.key)
        except AuthenticationFailed:
            return False
    elif credential.kind == SESSION:
        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=credential.key)
        # Django's own check of a session (user still active, password hash unchanged); like a
        # page, it ends a session signed in with an old password.
        current = get_user(SimpleNamespace(session=store))
        if not current.is_authenticated or must_set_up_mfa(current):
            return False
    elif credential.kind == PROVIDER_TOKEN:
        try:
            current, _ = oidc_tokens.authenticate_token(credential.key)
        except (AuthenticationFailed, PortalError):
            return False
    else:
        return False
    return current.pk == user.pk


def should_close(event: dict, scope: dict) -> bool:
    """For a consumer's ``auth_revoke`` handler (sync: it may read the database)."""
    return not event.get("recheck") or not still_valid(scope)


# --- Ageing out ----------------------------------------------------------------------------------


class Lifetime:
    """When a socket's credential stops working by itself, which no signal announces: a provider's
    access token at its ``exp``, a session once it has been idle past its expiry date. Portal API
    tokens last until deleted (a signal closes their sockets).

    ``due`` is a clock read made before each frame or event; only when it says so does ``renew``
    ask the database. A session is moved on by the socket's own traffic from the person, as a page
    request moves it on (``SESSION_SAVE_EVERY_REQUEST``): someone chatting for an hour without
    loading a page stays signed in, while a socket left open in an idle tab ends with its session.
    Sessions that age out while their socket is silent are deleted by the beat task
    ``accounts.tasks.end_expired_sessions``, and the deletion closes the socket (``session_deleted``).
    """

    def __init__(self, scope: dict) -> None:
        credential = scope.get("credential")
        self.kind = credential.kind if credential is not None else None
        self.key = credential.key if credential is not None else None
        self.until: float | None = None

    def start(self) -> None:
        """At connect, once the credential was checked (database)."""
        self.until = self._stored_until()

    def due(self, *, active: bool = False) -> bool:
        """Must ``renew`` run before this frame or event? ``active``: a frame from the person, which
        moves a session on once it is within its last stretch."""
        if self.until is None:
            return False
        now = time.time()
        return now >= self.until or (active and self.kind == SESSION and now >= self.until - session_margin())

    def renew(self, *, active: bool = False) -> bool:
        """False when the credential has aged out; otherwise ``until`` moves on (database)."""
        until = self._extend_session() if active and self.kind == SESSION else self._stored_until()
        if until is None or until <= time.time():
            return False
        self.until = until
        return True

    def _stored_until(self) -> float | None:
        if self.kind == PROVIDER_TOKEN:
            return oidc_tokens.expires_at(self.key)
        if self.kind == SESSION:
            expiry = Session.objects.filter(session_key=self.key).values_list("expire_date", flat=True).first()
            return expiry.timestamp() if expiry is not None else 0.0
        return None

    def _extend_session(self) -> float | None:
        # The portal's sessions all live SESSION_COOKIE_AGE from their last use (no "remember me").
        now = timezone.now()
        expiry = now + timedelta(seconds=settings.SESSION_COOKIE_AGE)
        moved = Session.objects.filter(session_key=self.key, expire_date__gt=now).update(expire_date=expiry)
        return expiry.timestamp() if moved else None


def session_margin() -> float:
    """How long before its expiry a session with traffic on its socket is moved on."""
    return min(120.0, settings.SESSION_COOKIE_AGE / 4)


class ClosesWhenCredentialAgesOut:
    """A WebSocket consumer mixin: before a frame or event is handled, a credential that has aged
    out (``Lifetime``) closes the socket with ``REVOKED`` and the message is dropped. The consumer
    sets ``self.lifetime`` (started) once its handshake's checks have passed."""

    lifetime: Lifetime | None = None
    revoked = False

    async def dispatch(self, message) -> None:
        lifetime = self.lifetime
        if lifetime is not None and message["type"] != "websocket.disconnect":
            received = message["type"] == "websocket.receive"
            if lifetime.due(active=received):
                active = received and self.moves_session_on(message)
                if not await self._still_alive(lifetime, active):
                    await self._close_aged_out()
                    return
        await super().dispatch(message)

    async def _close_aged_out(self) -> None:
        self.lifetime, self.revoked = None, True
        close = {"type": "websocket.close", "code": REVOKED}
        # A sync consumer's base_send is wrapped for its worker threads: call it from one.
        await (sync_to_async(self.base_send)(close) if self._sync else self.base_send(close))

    def moves_session_on(self, message: dict) -> bool:
        """Is this frame from the client the person's doing (not one their page sends by itself)?"""
        return True

    async def _still_alive(self, lifetime: Lifetime, active: bool) -> bool:
        try:
            return await database_sync_to_async(lifetime.renew)(active=active)
        except Exception:  # a database hiccup does not end a live session; the next frame asks again
            log.exception("Could not check whether a socket's %s has aged out", lifetime.kind)
            return True


# --- Sending --------------------------------------------------------------------------------------


def revoke(group: str, reason: str, *, recheck: bool = False) -> None:
    """Tell the sockets in ``group``, once the current transaction commits."""
    transaction.on_commit(lambda: _send(group, {"type": EVENT, "reason": reason, "recheck": recheck}))


def _send(group: str, event: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception:  # the change stands even when the channel layer is down; log it loudly
        log.exception("Could not tell open WebSockets in %s of %s", group, event["reason"])


# --- Signals (connected by AccountsConfig.ready) ---------------------------------------------------


def token_deleted(sender, instance: Token, **kwargs) -> None:
    revoke(credential_group(TOKEN, instance.key), "token_deleted")


def session_deleted(sender, instance: Session, **kwargs) -> None:
    revoke(credential_group(SESSION, instance.session_key), "session_ended")


def logged_out(sender, request, user, **kwargs) -> None:
    # The session row is deleted next (session_deleted); a session engine without rows (cache,
    # signed cookies) is told here.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        revoke(credential_group(SESSION, session_key), "logged_out")


WATCHED_FIELDS = {"is_active", "password"}


def remember_user_before_save(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    if raw or instance.pk is None or (update_fields is not None and not WATCHED_FIELDS & set(update_fields)):
        return
    instance._revocation_before = sender._default_manager.filter(pk=instance.pk).values(*WATCHED_FIELDS).first()


def user_saved(sender, instance, created=False, raw=False, **kwargs) -> None:
    before = instance.__dict__.pop("_revocation_before", None)
    if raw or created or before is None:
        return
    if before["is_active"] and not instance.is_active:
        revoke(user_group(instance.pk), "deactivated")
    elif before["password"] != instance.password:
        revoke(user_group(instance.pk), "password_changed", recheck=True)


def user_deleted(sender, instance, **kwargs) -> None:
    revoke(user_group(instance.pk), "deleted")


def connect_signals() -> None:
    user_model = settings.AUTH_USER_MODEL
    post_delete.connect(token_deleted, sender=Token, dispatch_uid="revocation.token_deleted")
    post_delete.connect(session_deleted, sender=Session, dispatch_uid="revocation.session_deleted")
    user_logged_out.connect(logged_out, dispatch_uid="revocation.logged_out")
    pre_save.connect(remember_user_before_save, sender=user_model, dispatch_uid="revocation.user_before")
    post_save.connect(user_saved, sender=user_model, dispatch_uid="revocation.user_saved")
    post_delete.connect(user_deleted, sender=user_model, dispatch_uid="revocation.user_deleted")

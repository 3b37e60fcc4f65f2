"""The live consult room: chat, read receipts, presence and shared viewing.

Messages are posted through ``actions.post_message`` (WebSocket and REST alike): saved first and
broadcast after commit, so a message the sender saw acknowledged (its own echo, carrying its
``client_id``) is in the database. A ``client_id`` is stored once per
author and consult: a client that resends after a reconnect gets the original message back.
"""

from __future__ import annotations

import json
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.http import Http404

from accounts.models import validate_free_text
from teleconsult.errors import PortalError

from .groups import consult_group
from .models import ChatMessage, ChatReadMark, ConsultRequest
from .permissions import get_consult_for_user

MAX_TEXT = 5000
HISTORY_PAGE = 100
MAX_CLIENT_ID = 64


class RoomError(PortalError):
    """A frame or request the room refuses; ``code`` is machine-readable, the message names the
    problem. Over the WebSocket it is an ``error`` frame (``teleconsult.errors.error_frame``)."""

    status = 400

    def __init__(self, code: str, message: str, **data) -> None:
        super().__init__(message, code=code, **data)


def may_join(user, consult: ConsultRequest) -> bool:
    """The care team of a consult talks in its room: the requester, colleagues added to the case,
    the specialist who took it, and administrators. Specialists only offered the case, and the
    patient, see the consult but not the room."""
    if user.is_admin or user.pk in (consult.requester_id, consult.assignee_id):
        return True
    return consult.participants.filter(user=user, removed_at__isnull=True).exists()


def get_room_for_user(user, consult_id) -> ConsultRequest:
    consult = get_consult_for_user(user, consult_id)
    if not may_join(user, consult):
        raise Http404("No such consult room.")
    return consult


def author_payload(user) -> dict:
    return {"id": user.pk, "name": user.display_name, "role": user.role}


def message_payload(message: ChatMessage) -> dict:
    return {
        "id": message.pk,
        "client_id": message.client_id,
        "author": author_payload(message.author),
        "text": message.text,
        "sent_at": message.sent_at.isoformat(),
    }


def _bad(code: str, field: str, message: str) -> RoomError:
    """A refusal naming the field, so the REST body says which one (``{"text": ["..."]}``)."""
    return RoomError(code, message, **{field: [message]})


def clean_text(text: object) -> str:
    if not isinstance(text, str):
        raise _bad("bad_field", "text", "text must be a string.")
    text = text.strip()
    if not text:
        raise _bad("bad_field", "text", "text is empty.")
    if len(text) > MAX_TEXT:
        raise _bad("too_long", "text", f"text is {len(text)} characters; the limit is {MAX_TEXT}.")
    try:
        validate_free_text(text)
    except ValidationError as exc:
        raise _bad("bad_field", "text", exc.messages[0]) from None
    return text


def clean_client_id(client_id: object) -> str:
    if client_id is None or client_id == "":
        return ""
    if not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID:
        raise _bad("bad_field", "client_id", f"client_id must be a string of at most {MAX_CLIENT_ID} characters.")
    return client_id


def broadcast(consult_id: int, event: dict) -> None:
    """Send one event to everyone in the room (every daphne process, through the channel layer)."""
    async_to_sync(get_channel_layer().group_send)(consult_group(consult_id), event)


def broadcast_on_commit(consult_id: int, event: dict) -> None:
    transaction.on_commit(lambda: broadcast(consult_id, event))


def save_message(consult: ConsultRequest, *, author, text: object, client_id: object = "") -> ChatMessage:
    """Store a chat message once per ``client_id``; a resend returns the stored message."""
    text = clean_text(text)
    client_id = clean_client_id(client_id)
    try:
        # Outside a transaction the INSERT commits on its own (one round trip, the chat's hot
        # path); inside one, a savepoint keeps a duplicate from breaking the caller's transaction.
        if connection.in_atomic_block:
            with transaction.atomic():
                return ChatMessage.objects.create(consult=consult, author=author, text=text, client_id=client_id)
        return ChatMessage.objects.create(consult=consult, author=author, text=text, client_id=client_id)
    except IntegrityError:
        # Sent before (a resend after a reconnect, or two tabs at once): keep the first.
        return ChatMessage.objects.select_related("author").get(consult=consult, author=author, client_id=client_id)


def message_event(message: ChatMessage) -> dict:
    return {"type": "chat.message", "message": message_payload(message)}


def history(consult: ConsultRequest, *, before_id: int | None = None, limit: int = HISTORY_PAGE) -> list[dict]:
    """Up to ``limit`` messages, oldest first, optionally only those older than ``before_id``."""
    messages = ChatMessage.objects.filter(consult=consult).select_related("author").order_by("-pk")
    if before_id is not None:
        messages = messages.filter(pk__lt=before_id)
    return [message_payload(m) for m in reversed(messages[:limit])]


def do_mark_read(consult: ConsultRequest, *, user, up_to_id: object) -> int:
    """Record that ``user`` read the room up to a message; receipts only move forward."""
    if not isinstance(up_to_id, int) or isinstance(up_to_id, bool) or up_to_id < 1:
        raise RoomError("bad_field", "up_to_id must be a positive message id.")
    if not ChatMessage.objects.filter(consult=consult, pk=up_to_id).exists():
        raise RoomError("bad_field", f"Message {up_to_id} is not in this consult.")
    mark, created = ChatReadMark.objects.get_or_create(consult=consult, user=user, defaults={"up_to_id": up_to_id})
    if not created and up_to_id > mark.up_to_id:
        mark.up_to_id = up_to_id
        mark.save(update_fields=["up_to_id", "updated_at"])
    broadcast_on_commit(consult.pk, {"type": "chat.read", "user": author_payload(user), "up_to_id": mark.up_to_id})
    from .notifications import mark_chat_read  # notifications builds on this module

    mark_chat_read(user, consult)  # read in the room: its "unread messages" notification too
    return mark.up_to_id


def unread_count(consult: ConsultRequest, user) -> int:
    mark = ChatReadMark.objects.filter(consult=consult, user=user).first()
    messages = ChatMessage.objects.filter(consult=consult).exclude(author=user)
    if mark is not None:
        messages = messages.filter(pk__gt=mark.up_to_id)
    return messages.count()


def read_marks(consult: ConsultRequest) -> list[dict]:
    return [
        {"user": author_payload(mark.user), "up_to_id": mark.up_to_id}
        for mark in ChatReadMark.objects.filter(consult=consult).select_related("user")
    ]


# --- Shared viewing ---------------------------------------------------------------------------

VIEW_STATE_FIELDS = {
    "study_uid": str,
    "series_uid": str,
    "instance_uid": str,
    "frame": int,
    "window_center": (int, float),
    "window_width": (int, float),
    "zoom": (int, float),
    "pan": list,
}


def clean_view_state(frame: dict) -> dict:
    state = {}
    for name, kind in VIEW_STATE_FIELDS.items():
        if name not in frame:
            raise RoomError("missing_field", f"view.state needs {name}.")
        value = frame[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise RoomError("bad_field", f"view.state {name} has the wrong type.")
        state[name] = value
    pan = state["pan"]
    if len(pan) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pan):
        raise RoomError("bad_field", "view.state pan must be [x, y].")
    if state["frame"] < 1:
        raise RoomError("bad_field", "view.state frame starts at 1.")
    if state["zoom"] <= 0 or state["window_width"] <= 0:
        raise RoomError("bad_field", "view.state zoom and window_width must be positive.")
    return state


def clean_pointer(frame: dict) -> dict:
    point = {}
    for name in ("x", "y"):
        if name not in frame:
            raise RoomError("missing_field", f"view.pointer needs {name}.")
        value = frame[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RoomError("bad_field", f"view.pointer {name} must be a number.")
        point[name] = value
    return point


def _view_key(consult_id: int) -> str:
    return f"room:{int(consult_id)}:view"


def remember_view_state(consult_id: int, state: dict) -> None:
    """The last shared view, for late joiners; in the shared cache so every process sees it."""
    cache.set(_view_key(consult_id), state, timeout=settings.TELECONSULT_ROOM_STATE_TTL)


def last_view_state(consult_id: int) -> dict | None:
    return cache.get(_view_key(consult_id))


# --- Presence ---------------------------------------------------------------------------------


class Presence:
    """Who is in a room, one entry per connection, each with an expiry refreshed while connected.

    With Redis the entries live in a sorted set per room (member = channel name, score = expiry)
    beside a hash of the users behind the channels, so a daphne process that dies takes its
    entries with it after ``ttl`` seconds and the other processes keep the list right. Without
    Redis (one process) a dict does the same.
    """

    def __init__(self, ttl: int | None = None) -> None:
        self.ttl = ttl or settings.TELECONSULT_PRESENCE_TTL
        self._redis = None
        self._local: dict[int, dict[str, tuple[float, dict]]] = {}
        if settings.REDIS_URL:
            import redis

            self._redis = redis.Redis.from_url(settings.REDIS_URL)

    def _keys(self, consult_id: int) -> tuple[str, str]:
        base = f"{settings.REDIS_PREFIX}:presence:{int(consult_id)}"
        return f"{base}:expiry", f"{base}:users"

    def touch(self, consult_id: int, channel_name: str, user: dict) -> None:
        expires = time.time() + self.ttl
        if self._redis is None:
            self._local.setdefault(consult_id, {})[channel_name] = (expires, user)
            return
        expiry, users = self._keys(consult_id)
        pipe = self._redis.pipeline()
        pipe.zadd(expiry, {channel_name: expires})
        pipe.hset(users, channel_name, json.dumps(user))
        for key in (expiry, users):
            pipe.expire(key, self.ttl * 4)
        pipe.execute()

    def leave(self, consult_id: int, channel_name: str) -> None:
        if self._redis is None:
            self._local.get(consult_id, {}).pop(channel_name, None)
            return
        expiry, users = self._keys(consult_id)
        pipe = self._redis.pipeline()
        pipe.zrem(expiry, channel_name)
        pipe.hdel(users, channel_name)
        pipe.execute()

    def users(self, consult_id: int) -> list[dict]:
        """Distinct users present now (several tabs of one user count once), by name."""
        now = time.time()
        if self._redis is None:
            entries = self._local.get(consult_id, {})
            for channel, (expires, _) in list(entries.items()):
                if expires < now:
                    del entries[channel]
            present = [user for _, user in entries.values()]
        else:
            expiry, users = self._keys(consult_id)
            gone = self._redis.zrangebyscore(expiry, "-inf", now)
            if gone:
                self._redis.zrem(expiry, *gone)
                self._redis.hdel(users, *gone)
            channels = self._redis.zrangebyscore(expiry, now, "+inf")
            present = [json.loads(u) for u in self._redis.hmget(users, channels) if u] if channels else []
        distinct = {user["id"]: user for user in present}
        return sorted(distinct.values(), key=lambda u: (u["name"], u["id"]))


_presence: Presence | None = None


def presence() -> Presence:
    global _presence  # noqa: PLW0603 - one store per process, built on first use
    if _presence is None:
        _presence = Presence()
    return _presence

"""``/ws/consults/<id>/``: the live consult room (chat, presence, shared viewing, annotations).

Thin by design: authenticate, check access with the consult helper, then hand each frame to a
small handler that calls ``consultations.room``. The frame contract is in docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http import Http404

from accounts import revocation
from teleconsult import database
from teleconsult.errors import PortalError, error_frame

from . import actions, room
from .groups import consult_group

log = logging.getLogger(__name__)

FORBIDDEN = 4403
MAX_FRAME_BYTES = 16 * 1024


class RateLimit:
    """At most ``limit`` frames in any one-second window."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stamps: deque[float] = deque()

    def allow(self, now: float) -> bool:
        while self.stamps and now - self.stamps[0] >= 1.0:
            self.stamps.popleft()
        if len(self.stamps) >= self.limit:
            return False
        self.stamps.append(now)
        return True


class ConsultRoomConsumer(revocation.ClosesWhenCredentialAgesOut, AsyncWebsocketConsumer):
    consult = None

    async def connect(self) -> None:
        # Accept first so that a refusal reaches the client as close code 4403, not a bare HTTP 403.
        await self.accept()
        user = self.scope.get("user")
        consult_id = self.scope["url_route"]["kwargs"]["consult_id"]
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=FORBIDDEN)
            return
        try:
            self.consult = await database_sync_to_async(room.get_room_for_user)(user, consult_id)
        except Http404:
            await self.close(code=FORBIDDEN)
            return
        # Joined before the credential is checked again, so a revocation committed meanwhile is
        # either seen by that check or heard as auth.revoke (accounts.revocation).
        for group in revocation.groups_for(self.scope):
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups.append(group)
        if not await database_sync_to_async(revocation.still_valid)(self.scope):
            self.consult = None
            await self.close(code=revocation.REVOKED)
            return
        lifetime = revocation.Lifetime(self.scope)
        await database_sync_to_async(lifetime.start)()
        self.lifetime = lifetime
        self.user = user
        self.me = room.author_payload(user)
        self.group = consult_group(self.consult.pk)
        # Pointer frames come at up to ~30 a second from a leader's laser pointer; everything else
        # shares the general budget.
        self.limits = {
            "default": RateLimit(settings.TELECONSULT_ROOM_FRAMES_PER_SECOND),
            "view.pointer": RateLimit(settings.TELECONSULT_ROOM_POINTER_PER_SECOND),
        }
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._touch_presence()
        messages = await database_sync_to_async(room.history)(self.consult)
        await self._send("chat.history", messages=messages)
        marks = await database_sync_to_async(room.read_marks)(self.consult)
        for mark in marks:
            await self._send("chat.read", **mark)
        await self._broadcast_presence()
        state = await sync_to_async(room.last_view_state)(self.consult.pk)
        if state is not None:
            await self._send("view.state", **state)
        self.heartbeat = asyncio.create_task(self._keep_alive())

    async def disconnect(self, code) -> None:
        if self.consult is None:
            return
        heartbeat = getattr(self, "heartbeat", None)
        if heartbeat is not None:
            heartbeat.cancel()
        await self.channel_layer.group_discard(self.group, self.channel_name)
        await sync_to_async(room.presence().leave)(self.consult.pk, self.channel_name)
        await self._broadcast_presence()

    def moves_session_on(self, message: dict) -> bool:
        """Everything the person sends moves their session on, except read marks, which a visible
        tab sends by itself as a colleague's messages arrive."""
        try:
            frame = json.loads(message.get("text") or "")
        except ValueError:
            return True
        return not (isinstance(frame, dict) and frame.get("type") == "chat.read")

    async def auth_revoke(self, event: dict) -> None:
        """The token, session or account this socket was opened with was revoked: close at once,
        and handle no frame that was already on its way."""
        if self.revoked or not await database_sync_to_async(revocation.should_close)(event, self.scope):
            return
        self.revoked = True
        await self.close(code=revocation.REVOKED)

    async def _keep_alive(self) -> None:
        """Refresh this connection's presence entry, and drop it when access was taken away."""
        interval = max(1, settings.TELECONSULT_PRESENCE_TTL // 3)
        while True:
            await asyncio.sleep(interval)
            try:
                allowed = await database_sync_to_async(room.may_join)(self.user, self.consult)
            except Exception:  # a database hiccup must not end a live session
                log.exception("Could not re-check room access for consult %s", self.consult.pk)
                allowed = True
            if not allowed:
                await self.close(code=FORBIDDEN)
                return
            await self._touch_presence()

    async def _touch_presence(self) -> None:
        await sync_to_async(room.presence().touch)(self.consult.pk, self.channel_name, self.me)

    async def _broadcast_presence(self) -> None:
        users = await sync_to_async(room.presence().users)(self.consult.pk)
        await self.channel_layer.group_send(self.group, {"type": "presence.changed", "users": users})

    async def _send(self, type_: str, **fields) -> None:
        await self.send(text_data=json.dumps({"type": type_, **fields}))

    async def _error(self, code: str, message: str) -> None:
        await self._refuse(room.RoomError(code, message))

    async def _refuse(self, exc: PortalError) -> None:
        await self.send(text_data=json.dumps(error_frame(exc)))

    # --- client -> server --------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.consult is None or self.revoked:
            return
        if text_data is None:
            await self._error("bad_frame", "Frames are JSON text; binary frames are not accepted.")
            return
        if len(text_data.encode()) > MAX_FRAME_BYTES:
            await self._error("too_large", f"A frame may be at most {MAX_FRAME_BYTES} bytes.")
            return
        try:
            frame = json.loads(text_data)
        except ValueError:
            await self._error("bad_json", "The frame is not valid JSON.")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self._error("missing_field", 'A frame is a JSON object with a "type".')
            return
        kind = frame["type"]
        limit = self.limits.get(kind, self.limits["default"])
        if not limit.allow(time.monotonic()):
            await self._error("rate_limited", f"Too many frames: at most {limit.limit} a second.")
            return
        handler = self.handlers.get(kind)
        if handler is None:
            await self._error("unknown_type", f"Unknown frame type {kind!r}.")
            return
        try:
            await handler(self, frame)
        except PortalError as exc:
            await self._refuse(exc)
        except database.UNAVAILABLE_ERRORS as exc:
            # The connection stays: the next frame gets a fresh database connection, and a chat
            # message sent again with its client_id is stored once.
            await self._refuse(database.unavailable(exc, f"room frame {kind}"))

    async def on_chat_message(self, frame: dict) -> None:
        if "text" not in frame:
            raise room.RoomError("missing_field", "chat.message needs text.")
        # The same action as the REST API: saved (committed) first, then broadcast. Messages from
        # different connections are saved side by side (each thread takes its own pooled
        # connection); one connection's frames are still handled in order.
        await database_sync_to_async(actions.post_message, thread_sensitive=False)(
            self.consult, author=self.user, text=frame["text"], client_id=frame.get("client_id", "")
        )

    async def on_history_before(self, frame: dict) -> None:
        before_id = frame.get("before_id")
        if not isinstance(before_id, int) or isinstance(before_id, bool) or before_id < 1:
            raise room.RoomError("missing_field", "chat.history_before needs before_id, a message id.")
        messages = await database_sync_to_async(room.history)(self.consult, before_id=before_id)
        await self._send("chat.history", messages=messages, before_id=before_id)

    async def on_read(self, frame: dict) -> None:
        if "up_to_id" not in frame:
            raise room.RoomError("missing_field", "chat.read needs up_to_id.")
        await database_sync_to_async(room.do_mark_read)(self.consult, user=self.user, up_to_id=frame["up_to_id"])

    async def on_typing(self, frame: dict) -> None:
        await self.channel_layer.group_send(
            self.group, {"type": "room.typing", "user": self.me, "sender_channel": self.channel_name}
        )

    async def on_view_state(self, frame: dict) -> None:
        state = room.clean_view_state(frame)
        await sync_to_async(room.remember_view_state)(self.consult.pk, {**state, "sender": self.me})
        await self.channel_layer.group_send(
            self.group,
            {
                "type": "view.relay",
                "frame": {"type": "view.state", **state, "sender": self.me},
                "sender_channel": self.channel_name,
            },
        )

    async def on_view_pointer(self, frame: dict) -> None:
        point = room.clean_pointer(frame)
        await self.channel_layer.group_send(
            self.group,
            {
                "type": "view.relay",
                "frame": {"type": "view.pointer", **point, "sender": self.me},
                "sender_channel": self.channel_name,
            },
        )

    handlers = {
        "chat.message": on_chat_message,
        "chat.history_before": on_history_before,
        "chat.read": on_read,
        "typing": on_typing,
        "view.state": on_view_state,
        "view.pointer": on_view_pointer,
    }

    # --- channel layer -> client ---------------------------------------------------------------

    async def chat_message(self, event: dict) -> None:
        await self._send("chat.message", **event["message"])

    async def chat_read(self, event: dict) -> None:
        await self._send("chat.read", user=event["user"], up_to_id=event["up_to_id"])

    async def room_typing(self, event: dict) -> None:
        if event["sender_channel"] != self.channel_name:
            await self._send("typing", user=event["user"])

    async def view_relay(self, event: dict) -> None:
        # The leader already shows what it sent; everyone else follows.
        if event["sender_channel"] != self.channel_name:
            await self.send(text_data=json.dumps(event["frame"]))

    async def presence_changed(self, event: dict) -> None:
        await self._send("presence", users=event["users"])

    async def annotation_event(self, event: dict) -> None:
        await self._send(event["kind"], annotation=event["annotation"])

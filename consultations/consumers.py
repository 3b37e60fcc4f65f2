"""``/ws/notifications/``: pushes the signed-in user's new notifications and unread count, and
tells their worklist and "My consults" tabs when a consult on them changes."""

from __future__ import annotations

import json

from asgiref.sync import async_to_sync
from channels.generic.websocket import JsonWebsocketConsumer

from accounts import revocation
from teleconsult import database
from teleconsult.errors import PortalError, error_frame

from . import notifications
from .groups import notifications_group

FORBIDDEN = 4403
MAX_FRAME_BYTES = 4 * 1024


class NotificationsConsumer(revocation.ClosesWhenCredentialAgesOut, JsonWebsocketConsumer):
    """Server -> client frames: ``notification.unread {unread}`` on join and after reads,
    ``notification {notification, unread}`` for each new one, ``worklist.changed {change, consult,
    message}`` when a consult the user may see changes (consultations.worklist_events), ``error
    {code, message}`` for a frame it cannot use. Client -> server: ``notification.read {ids?}``
    marks some (or all) read. Closed with 4401 when its token, session or account is revoked, or
    its credential ages out."""

    def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            self.accept()
            self.close(code=FORBIDDEN)
            return
        self.group = notifications_group(user.pk)
        # Joined before the credential is checked again: a revocation committed meanwhile is
        # either seen by that check or heard as auth.revoke (accounts.revocation).
        for group in [*revocation.groups_for(self.scope), self.group]:
            async_to_sync(self.channel_layer.group_add)(group, self.channel_name)
            self.groups.append(group)
        self.accept()
        if not revocation.still_valid(self.scope):
            self.close(code=revocation.REVOKED)
            return
        self.user = user
        lifetime = revocation.Lifetime(self.scope)
        lifetime.start()
        self.lifetime = lifetime
        self.send_json({"type": "notification.unread", "unread": notifications.unread_count(user)})

    def auth_revoke(self, event: dict) -> None:
        """Its token, session or account was revoked: close, and handle no frame on its way."""
        if not self.revoked and revocation.should_close(event, self.scope):
            self.revoked = True
            self.close(code=revocation.REVOKED)

    def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        """Refuse what is not a small JSON text frame with an error frame; the connection stays."""
        if getattr(self, "user", None) is None or self.revoked:
            return  # refused at connect or revoked; the close is on its way
        if text_data is None:
            self._refuse("bad_frame", "Frames are JSON text; binary frames are not accepted.")
        elif len(text_data.encode()) > MAX_FRAME_BYTES:
            self._refuse("too_large", f"A frame may be at most {MAX_FRAME_BYTES} bytes.")
        else:
            try:
                content = json.loads(text_data)
            except ValueError:
                self._refuse("bad_json", "The frame is not valid JSON.")
            else:
                try:
                    self.receive_json(content)
                except database.UNAVAILABLE_ERRORS as exc:
                    self.send_json(error_frame(database.unavailable(exc, "notifications frame")))

    def _refuse(self, code: str, message: str) -> None:
        self.send_json(error_frame(PortalError(message, code=code)))

    def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict) or content.get("type") != "notification.read":
            self.send_json(error_frame(PortalError("Send notification.read.", code="unknown_type")))
            return
        ids = content.get("ids")
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, int) for i in ids)):
            self.send_json(error_frame(PortalError("ids must be a list of integers.", code="bad_ids")))
            return
        if not notifications.mark_read(self.user, ids):
            # Nothing changed, so no group push follows: answer this tab directly.
            self.send_json({"type": "notification.unread", "unread": notifications.unread_count(self.user)})

    def notification_created(self, event: dict) -> None:
        self.send_json({"type": "notification", "notification": event["notification"], "unread": event["unread"]})

    def notification_unread(self, event: dict) -> None:
        self.send_json({"type": "notification.unread", "unread": event["unread"]})

    def worklist_changed(self, event: dict) -> None:
        self.send_json(
            {
                "type": "worklist.changed",
                "change": event["change"],
                "consult": event["consult"],
                "message": event["message"],
            }
        )

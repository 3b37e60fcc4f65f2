"""WebSockets and credentials that age out by themselves: an identity provider's access token at
its ``exp``, a session left idle past its expiry. Such a socket closes with 4401 before it carries
another frame; a session whose person keeps using the socket is moved on as a page request moves
it; the beat task that deletes expired sessions closes their silent sockets.

Both consumers are real (the notifications socket and the consult room), behind the portal's
authentication middleware, on this process's in-memory channel layer."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.test import Client

from accounts import oidc_tokens
from accounts.revocation import REVOKED
from accounts.tasks import end_expired_sessions
from consultations import room
from consultations.groups import notifications_group
from teleconsult.asgi import application
from tests.factories import ConsultFactory, make_study
from tests.oidc.keys import KeyServer

pytestmark = pytest.mark.django_db(transaction=True)

NOTIFICATIONS = "/ws/notifications/"
ORIGIN = (b"origin", b"http://testserver")


@pytest.fixture(autouse=True)
def fresh_state():
    cache.clear()
    room._presence = None
    oidc_tokens.forget_keys()
    yield
    room._presence = None
    oidc_tokens.forget_keys()


@pytest.fixture
def key_server():
    server = KeyServer().start()
    yield server
    server.stop()


@pytest.fixture
def hospital(settings, key_server, monkeypatch):
    settings.TELECONSULT_OIDC_PROVIDERS = (key_server.provider(),)
    # The clocks' leeway would make these tests wait half a minute past each token's exp.
    monkeypatch.setattr(oidc_tokens, "LEEWAY_SECONDS", 0)
    return key_server


def signed_in(user) -> tuple[str, tuple[bytes, bytes]]:
    """A browser's session for ``user``: its key and its cookie header."""
    browser = Client()
    browser.force_login(user)
    key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    return key, (b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode())


def bearer(token: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {token}".encode())


async def opened(path: str, headers) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await socket.connect()
    assert connected
    first = await socket.receive_output(timeout=3)
    assert first["type"] == "websocket.send", f"closed at once: {first}"
    return socket


async def next_output(socket: WebsocketCommunicator, timeout: float = 3) -> dict | None:
    """The next frame or close the server sends, skipping presence and history; None when quiet."""
    while True:
        if await socket.receive_nothing(timeout=timeout):
            return None
        output = await socket.receive_output()
        if output["type"] == "websocket.close":
            return output
        frame = json.loads(output["text"])
        if frame["type"] not in ("presence", "chat.history", "chat.read", "view.state"):
            return output


async def push_unread(user, unread: int) -> None:
    await get_channel_layer().group_send(
        notifications_group(user.pk), {"type": "notification.unread", "unread": unread}
    )


def expire_date(key: str) -> float:
    return Session.objects.get(session_key=key).expire_date.timestamp()


def room_session(settings, physician, idle_seconds: int):
    """A session of ``idle_seconds`` for the physician, a consult of theirs, and the session's
    first expiry: ``(key, cookie, consult, first_expiry)``."""
    settings.SESSION_COOKIE_AGE = idle_seconds
    key, cookie = signed_in(physician)
    consult = ConsultFactory(study=make_study(uploader=physician), requester=physician)
    return key, cookie, consult, expire_date(key)


# --- Identity providers' tokens ---------------------------------------------------------------------


def test_a_providers_token_opens_both_sockets_and_they_stay_open_while_it_is_valid(hospital, physician):
    consult = ConsultFactory(study=make_study(uploader=physician), requester=physician)
    token = hospital.sign()

    async def scenario():
        notes = await opened(NOTIFICATIONS, [bearer(token)])
        chat = await opened(f"/ws/consults/{consult.pk}/", [bearer(token)])
        await push_unread(physician, 7)
        pushed = await next_output(notes)
        await chat.send_to(text_data=json.dumps({"type": "typing"}))
        quiet = await next_output(chat, timeout=0.5)
        await notes.disconnect()
        await chat.disconnect()
        return pushed, quiet

    pushed, quiet = async_to_sync(scenario)()

    assert json.loads(pushed["text"]) == {"type": "notification.unread", "unread": 7}
    assert quiet is None  # still open: no close, and its own typing is not echoed


def test_a_providers_token_past_its_exp_closes_the_socket_before_the_next_frame(hospital, physician):
    consult = ConsultFactory(study=make_study(uploader=physician), requester=physician)
    token = hospital.sign(exp=int(time.time()) + 2)

    async def scenario():
        notes = await opened(NOTIFICATIONS, [bearer(token)])
        chat = await opened(f"/ws/consults/{consult.pk}/", [bearer(token)])
        await asyncio.sleep(max(0.0, oidc_tokens.expires_at(token) - time.time()) + 0.2)
        await push_unread(physician, 3)  # an event for a silent socket
        await chat.send_to(text_data=json.dumps({"type": "chat.message", "text": "after exp"}))  # a frame
        return await next_output(notes), await next_output(chat)

    notes_closed, chat_closed = async_to_sync(scenario)()

    assert notes_closed == {"type": "websocket.close", "code": REVOKED}
    assert chat_closed == {"type": "websocket.close", "code": REVOKED}
    assert consult.messages.count() == 0  # the frame after exp was never handled


def test_expires_at_reads_exp_and_leeway_and_refuses_garbage(key_server, monkeypatch):
    monkeypatch.setattr(oidc_tokens, "LEEWAY_SECONDS", 30)
    assert oidc_tokens.expires_at(key_server.sign(exp=2_000_000_000)) == 2_000_000_030.0
    assert oidc_tokens.expires_at("not.a.jwt") is None
    assert oidc_tokens.expires_at(key_server.sign(exp="soon")) is None


# --- Sessions ---------------------------------------------------------------------------------------


def test_a_session_left_idle_past_its_expiry_closes_its_socket_at_the_next_event(settings, physician):
    settings.SESSION_COOKIE_AGE = 2
    _, cookie = signed_in(physician)

    async def scenario():
        notes = await opened(NOTIFICATIONS, [ORIGIN, cookie])
        await asyncio.sleep(2.3)
        await push_unread(physician, 1)
        return await next_output(notes)

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": REVOKED}


def test_a_session_whose_person_keeps_using_the_socket_is_moved_on_and_stays(settings, physician):
    """A page request moves a session on; so does the person's own traffic on the socket, once the
    session is within its last stretch (a quarter of its age here)."""
    key, cookie, consult, first_expiry = room_session(settings, physician, idle_seconds=3)

    async def scenario():
        chat = await opened(f"/ws/consults/{consult.pk}/", [ORIGIN, cookie])
        for _ in range(10):  # 5 s of typing: well past the session's first expiry
            await chat.send_to(text_data=json.dumps({"type": "typing"}))
            assert await next_output(chat, timeout=0.5) is None
        await chat.send_to(text_data=json.dumps({"type": "chat.message", "text": "still here"}))
        said = await next_output(chat)
        await chat.disconnect()
        return said

    said = async_to_sync(scenario)()

    assert json.loads(said["text"])["text"] == "still here"
    assert expire_date(key) > first_expiry + 1.5
    browser = Client()
    browser.cookies[settings.SESSION_COOKIE_NAME] = key
    assert browser.get("/api/v1/me/").status_code == 200, (expire_date(key), time.time())


def test_the_beat_task_ends_expired_sessions_and_closes_their_silent_sockets(settings, physician, colleague):
    settings.SESSION_COOKIE_AGE = 2
    _, cookie = signed_in(physician)
    settings.SESSION_COOKIE_AGE = 3600
    fresh_key, fresh_cookie = signed_in(colleague)

    async def scenario():
        idle = await opened(NOTIFICATIONS, [ORIGIN, cookie])
        fresh = await opened(NOTIFICATIONS, [ORIGIN, fresh_cookie])
        await asyncio.sleep(2.3)
        ended = await database_sync_to_async(end_expired_sessions)()
        return ended, await next_output(idle), await next_output(fresh, timeout=0.5)

    ended, idle_closed, fresh_output = async_to_sync(scenario)()

    assert ended == 1
    assert idle_closed == {"type": "websocket.close", "code": REVOKED}
    assert fresh_output is None
    assert list(Session.objects.values_list("session_key", flat=True)) == [fresh_key]


def test_the_beat_task_works_in_batches_and_is_scheduled(physician):
    for _ in range(7):
        signed_in(physician)
    Session.objects.update(expire_date="2020-01-01T00:00:00Z")

    assert end_expired_sessions(batch=3) == 7
    assert Session.objects.count() == 0
    assert settings.CELERY_BEAT_SCHEDULE["end-expired-sessions"]["task"] == "accounts.tasks.end_expired_sessions"


def test_read_marks_a_page_sends_by_itself_do_not_keep_an_idle_session_alive(settings, physician):
    key, cookie, consult, first_expiry = room_session(settings, physician, idle_seconds=2)

    async def scenario():
        chat = await opened(f"/ws/consults/{consult.pk}/", [ORIGIN, cookie])
        for _ in range(6):
            await chat.send_to(text_data=json.dumps({"type": "chat.read", "up_to_id": 1}))
            while (output := await next_output(chat, timeout=0.5)) is not None:
                if output["type"] == "websocket.close":
                    return output
                assert json.loads(output["text"])["type"] == "error"  # no such message: answered, not ended
        return None

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": REVOKED}
    assert expire_date(key) == first_expiry

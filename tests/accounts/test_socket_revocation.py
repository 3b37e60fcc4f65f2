"""WebSockets and credentials: the handshake's header alone decides, the Origin must be the page's
own, and a socket closes (4401) once its token, session or account is revoked.

The channel layer is the in-memory one of this process; tests/integration/test_socket_revocation.py
does the same across real daphne processes on Redis."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from rest_framework.authtoken.models import Token

from accounts.revocation import REVOKED
from accounts.websocket import TokenOrSessionAuthMiddleware
from consultations import actions, room
from consultations.models import ChatMessage
from consultations.room_consumer import ConsultRoomConsumer
from teleconsult.asgi import application
from tests.factories import ConsultFactory, make_study

pytestmark = pytest.mark.django_db(transaction=True)

NOTIFICATIONS = "/ws/notifications/"
TESTSERVER = (b"origin", b"http://testserver")
FORBIDDEN = 4403


@pytest.fixture(autouse=True)
def fresh_room_state():
    cache.clear()
    room._presence = None
    yield
    room._presence = None


@pytest.fixture
def token(physician) -> str:
    return Token.objects.create(user=physician).key


def session_cookie(user) -> tuple[Client, tuple[bytes, bytes]]:
    """A signed-in browser: its test client (to sign out with) and its cookie header."""
    browser = Client()
    browser.force_login(user)
    value = browser.cookies[settings.SESSION_COOKIE_NAME].value
    return browser, (b"cookie", f"{settings.SESSION_COOKIE_NAME}={value}".encode())


def token_header(key: str, scheme: str = "Token") -> tuple[bytes, bytes]:
    return (b"authorization", f"{scheme} {key}".encode())


async def opened(path: str, headers, app=application) -> WebsocketCommunicator:
    """A socket that was let in (its first frame received), or an AssertionError."""
    socket = WebsocketCommunicator(app, path, headers=headers)
    connected, _ = await socket.connect()
    assert connected, "the handshake was refused"
    first = await socket.receive_output(timeout=3)
    assert first["type"] == "websocket.send", f"closed at once: {first}"
    return socket


async def close_code(socket: WebsocketCommunicator, timeout: float = 3) -> int | None:
    """The code the server closes with (frames before it are skipped); None if it stays open."""
    while True:
        if await socket.receive_nothing(timeout=timeout):  # (receive_output would end the app)
            return None
        output = await socket.receive_output()
        if output["type"] == "websocket.close":
            return output.get("code")


def handshake(path: str, headers) -> tuple[bool, int | None]:
    """(let in, close code at once if any): what a client sees of one handshake."""

    async def scenario():
        socket = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await socket.connect()
        if not connected:
            return False, None
        first = await socket.receive_output(timeout=3)
        await socket.disconnect()
        return True, first.get("code") if first["type"] == "websocket.close" else None

    return async_to_sync(scenario)()


# --- The Authorization header alone decides ------------------------------------------------------


def test_a_bad_bearer_token_with_a_valid_session_cookie_is_refused(physician):
    _, cookie = session_cookie(physician)

    assert handshake(NOTIFICATIONS, [TESTSERVER, cookie]) == (True, None)  # the cookie alone lets in
    assert handshake(NOTIFICATIONS, [TESTSERVER, cookie, token_header("not-a-token", "Bearer")]) == (True, FORBIDDEN)


def test_a_bearer_portal_token_opens_the_socket_as_token_does(physician, token):
    assert handshake(NOTIFICATIONS, [token_header(token, "Bearer")]) == (True, None)
    assert handshake(NOTIFICATIONS, [token_header(token, "bearer")]) == (True, None)
    assert handshake(NOTIFICATIONS, [token_header(token, "Token")]) == (True, None)


MALFORMED = [
    [b"Token"],
    [b"Bearer"],
    [b"Token "],
    [b"Token a b"],
    [b"Basic cGh5c2ljaWFuOnB3"],
    [b"Token \x00abc"],
    [b"Token \xff\xfe\xfd"],
    [b"Token " + b"a" * 5000],
    [b"NotAScheme"],
    [b"Token one", b"Token two"],  # two headers
]


def test_a_malformed_authorization_header_is_refused_with_4403_never_a_500(physician, token):
    _, cookie = session_cookie(physician)
    cases = [*MALFORMED, [f"Token {token}".encode(), b"Bearer other"]]  # a good token beside a bad one

    answers = {
        repr(values): handshake(NOTIFICATIONS, [TESTSERVER, cookie, *((b"authorization", v) for v in values)])
        for values in cases
    }

    assert answers == dict.fromkeys(answers, (True, FORBIDDEN))


# --- Origin: scheme, host and port -----------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [b"http://localhost:8001", b"https://localhost:8000", b"http://localhost", b"http://127.0.0.1:8000"],
)
def test_an_origin_on_another_port_or_scheme_of_the_same_host_is_refused(physician, origin):
    _, cookie = session_cookie(physician)
    headers = [(b"host", b"localhost:8000"), (b"origin", origin), cookie]

    assert handshake(NOTIFICATIONS, headers) == (False, None)


def test_a_malformed_origin_is_refused_never_a_500(physician):
    _, cookie = session_cookie(physician)
    origins = [b"http://[::1", b"http://localhost:99999", b"null", b"", b"localhost:8000", b"http://localhost:8000/x"]

    answers = {
        origin: handshake(NOTIFICATIONS, [(b"host", b"localhost:8000"), (b"origin", origin), cookie])
        for origin in origins
    }

    assert answers == dict.fromkeys(origins, (False, None))


def test_the_pages_own_origin_and_csrf_trusted_origins_are_let_in(physician, settings):
    _, cookie = session_cookie(physician)
    settings.CSRF_TRUSTED_ORIGINS = ["https://portal.example.org", "https://*.reading.example.org"]

    def let_in(host: bytes, origin: bytes) -> bool:
        return handshake(NOTIFICATIONS, [(b"host", host), (b"origin", origin), cookie])[0]

    assert let_in(b"localhost:8000", b"http://localhost:8000")
    assert not let_in(b"evil.example", b"http://evil.example")  # a Host not in ALLOWED_HOSTS
    # Behind a TLS proxy the daphne sees its own address; the trusted origin is the portal's.
    assert let_in(b"127.0.0.1:8001", b"https://portal.example.org")
    assert let_in(b"127.0.0.1:8001", b"https://a.reading.example.org")
    assert not let_in(b"127.0.0.1:8001", b"http://portal.example.org")
    assert not let_in(b"127.0.0.1:8001", b"https://portal.example.org:8443")


def test_behind_a_proxy_that_says_https_only_the_https_origin_is_the_pages(physician, settings):
    _, cookie = session_cookie(physician)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proxied = [(b"host", b"localhost"), (b"x-forwarded-proto", b"https"), cookie]

    assert handshake(NOTIFICATIONS, [*proxied, (b"origin", b"https://localhost")])[0]
    assert not handshake(NOTIFICATIONS, [*proxied, (b"origin", b"http://localhost")])[0]


# --- Revocation ----------------------------------------------------------------------------------


@pytest.fixture
def accepted(physician, specialist):
    consult = ConsultFactory(requester=physician, study=make_study(uploader=physician))
    actions.submit_consult(consult, by=physician)
    actions.accept_consult(consult, by=specialist)
    return consult


def test_deleting_the_token_closes_its_room_socket_with_4401_and_a_frame_on_its_way_is_not_posted(
    accepted, physician, token
):
    _, cookie = session_cookie(physician)
    room_path = f"/ws/consults/{accepted.pk}/"

    async def scenario():
        by_token = await opened(room_path, [token_header(token)])
        by_session = await opened(room_path, [TESTSERVER, cookie])
        await database_sync_to_async(Token.objects.filter(key=token).delete)()
        closed = await close_code(by_token)
        # Sent before the client saw the close: the consumer must drop it.
        await by_token.send_to(text_data=json.dumps({"type": "chat.message", "text": "after revocation"}))
        session_code = await close_code(by_session, timeout=0.5)
        await by_token.disconnect()
        await by_session.disconnect()
        return closed, session_code

    closed, session_code = async_to_sync(scenario)()
    assert closed == REVOKED
    assert session_code is None  # the same person's session socket is another credential
    assert not ChatMessage.objects.filter(text="after revocation").exists()


def test_signing_out_closes_that_sessions_sockets_only(physician):
    first_browser, first = session_cookie(physician)
    _, second = session_cookie(physician)

    async def scenario():
        signed_out = await opened(NOTIFICATIONS, [TESTSERVER, first])
        other = await opened(NOTIFICATIONS, [TESTSERVER, second])
        await database_sync_to_async(first_browser.logout)()
        codes = await close_code(signed_out), await close_code(other, timeout=0.5)
        await signed_out.disconnect()
        await other.disconnect()
        return codes

    assert async_to_sync(scenario)() == (REVOKED, None)


def test_deleting_a_session_closes_its_sockets(physician):
    from django.contrib.sessions.models import Session

    _, cookie = session_cookie(physician)
    key = cookie[1].decode().split("=", 1)[1]

    async def scenario():
        socket = await opened(NOTIFICATIONS, [TESTSERVER, cookie])
        # As the admin's "delete selected" does: a queryset delete.
        await database_sync_to_async(lambda: Session.objects.filter(session_key=key).delete())()
        code = await close_code(socket)
        await socket.disconnect()
        return code

    assert async_to_sync(scenario)() == REVOKED


def test_deactivating_an_account_closes_all_its_sockets(accepted, physician, specialist, token):
    _, cookie = session_cookie(physician)
    specialist_token = Token.objects.create(user=specialist).key
    room_path = f"/ws/consults/{accepted.pk}/"

    def deactivate():
        physician.is_active = False
        physician.save()

    async def scenario():
        sockets = [
            await opened(room_path, [token_header(token)]),
            await opened(NOTIFICATIONS, [TESTSERVER, cookie]),
        ]
        bystander = await opened(room_path, [token_header(specialist_token)])
        await database_sync_to_async(deactivate)()
        codes = [await close_code(socket) for socket in sockets]
        bystander_code = await close_code(bystander, timeout=0.5)
        for socket in [*sockets, bystander]:
            await socket.disconnect()
        return codes, bystander_code

    assert async_to_sync(scenario)() == ([REVOKED, REVOKED], None)


def test_a_password_change_ends_session_sockets_but_not_token_sockets(physician, token):
    _, cookie = session_cookie(physician)

    def change_password():
        physician.set_password("a-brand-new-passphrase")
        physician.save()

    async def scenario():
        by_session = await opened(NOTIFICATIONS, [TESTSERVER, cookie])
        by_token = await opened(NOTIFICATIONS, [token_header(token)])
        await database_sync_to_async(change_password)()
        codes = await close_code(by_session), await close_code(by_token, timeout=0.5)
        await by_session.disconnect()
        await by_token.disconnect()
        return codes

    # As for pages: a session signed in with the old password ends; an API token stays valid.
    assert async_to_sync(scenario)() == (REVOKED, None)


def test_a_token_revoked_between_the_handshake_and_joining_the_room_is_not_let_in(accepted, physician, token):
    """The consumer checks the credential again after joining its revocation groups."""

    class RevokeAfterHandshake:
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            await database_sync_to_async(Token.objects.filter(key=token).delete)()
            return await self.inner(scope, receive, send)

    app = TokenOrSessionAuthMiddleware(RevokeAfterHandshake(ConsultRoomConsumer.as_asgi()))

    async def scenario():
        socket = WebsocketCommunicator(app, f"/ws/consults/{accepted.pk}/", headers=[token_header(token)])
        socket.scope["url_route"] = {"args": (), "kwargs": {"consult_id": accepted.pk}}
        connected, _ = await socket.connect()
        code = await close_code(socket)
        await socket.disconnect()
        return connected, code

    assert async_to_sync(scenario)() == (True, REVOKED)

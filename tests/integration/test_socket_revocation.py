"""Revoking a credential closes its open WebSockets on real daphne processes sharing Redis.

The revocation happens where it happens in production (the token deleted through the API of one
daphne, a sign-out on a page, an administrator's shell) while the socket is held by another
daphne, so the ``auth.revoke`` message must travel through Redis."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
import uuid

import pytest
import requests
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from accounts.revocation import REVOKED
from consultations import actions
from consultations.models import ChatMessage
from tests.conftest import PASSWORD
from tests.factories import ConsultFactory, make_study
from tests.servers import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CLOSE_WITHIN = 5.0  # seconds from the revocation's answer to the socket's close
FORBIDDEN = 4403


class Socket:
    """A blocking WebSocket client that remembers its frames and how it was closed."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.socket = connect(url, additional_headers=headers, open_timeout=10, legacy=True)
        self.frames: list[dict] = []

    def wait_for(self, type_: str, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frame = json.loads(self.socket.recv(timeout=max(0.01, deadline - time.monotonic())))
            except TimeoutError:
                break
            self.frames.append(frame)
            if frame["type"] == type_:
                return frame
        raise AssertionError(f"no {type_} within {timeout}s; saw {[f['type'] for f in self.frames]}")

    def closed_within(self, timeout: float) -> tuple[int | None, float]:
        """(close code, seconds waited), or (None, timeout) when the socket stayed open."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, timeout
            try:
                self.frames.append(json.loads(self.socket.recv(timeout=remaining)))
            except TimeoutError:
                continue
            except ConnectionClosed as closed:
                return (closed.rcvd.code if closed.rcvd else None), time.monotonic() - started

    def chat(self, text: str) -> None:
        """Send a chat message; a socket already closed may refuse it, which is also a refusal."""
        with contextlib.suppress(ConnectionClosed):
            self.socket.send(json.dumps({"type": "chat.message", "text": text, "client_id": uuid.uuid4().hex}))

    def close(self) -> None:
        self.socket.close()


def sign_in(base_url: str, email: str) -> requests.Session:
    browser = requests.Session()
    form = browser.get(f"{base_url}/accounts/login/", timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    done = browser.post(
        f"{base_url}/accounts/login/",
        data={"csrfmiddlewaretoken": csrf, "login": email, "password": PASSWORD},
        headers={"Referer": f"{base_url}/accounts/login/"},
        timeout=30,
    )
    assert done.status_code == 200 and "sessionid" in browser.cookies, done.text[:500]
    return browser


def sign_out(base_url: str, browser: requests.Session) -> None:
    page = browser.get(f"{base_url}/accounts/logout/", timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    done = browser.post(
        f"{base_url}/accounts/logout/",
        data={"csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{base_url}/accounts/logout/"},
        timeout=30,
        allow_redirects=False,
    )
    assert done.status_code in (200, 302), done.text[:500]


def browser_headers(server, browser: requests.Session) -> dict[str, str]:
    """What a page of ``server`` sends on its WebSocket handshake: its cookie and its Origin."""
    return {"Cookie": f"sessionid={browser.cookies['sessionid']}", "Origin": server.url}


@pytest.fixture
def room(live_user):
    physician = live_user("physician", email="revoke-physician@example.com")
    specialist = live_user("specialist", email="revoke-specialist@example.com")
    consult = ConsultFactory(requester=physician, study=make_study(uploader=physician))
    actions.submit_consult(consult, by=physician)
    actions.accept_consult(consult, by=specialist)
    tokens = {user.role: Token.objects.get_or_create(user=user)[0].key for user in (physician, specialist)}
    return consult, physician, specialist, tokens


@pytest.fixture
def two_servers(redis_url, daphne_factory):
    """One daphne holds the sockets; the revocation is made through the other."""
    return daphne_factory(), daphne_factory()


def room_url(server, consult) -> str:
    return f"{server.ws_url}/ws/consults/{consult.pk}/"


def test_a_token_deleted_while_its_socket_is_open_closes_it_within_seconds_and_it_cannot_post(room, two_servers):
    consult, physician, specialist, tokens = room
    holder, other = two_servers
    by_token = Socket(room_url(holder, consult), {"Authorization": f"Token {tokens['physician']}"})
    bystander = Socket(room_url(holder, consult), {"Authorization": f"Token {tokens['specialist']}"})
    try:
        by_token.wait_for("presence")
        bystander.wait_for("presence")

        revoked = requests.delete(
            f"{other.url}/api/v1/auth/token/", headers={"Authorization": f"Token {tokens['physician']}"}, timeout=30
        )
        assert revoked.status_code == 204
        by_token.chat("sent as the token is revoked")
        code, waited = by_token.closed_within(CLOSE_WITHIN)
        by_token.chat("sent after the close")
        still_open, _ = bystander.closed_within(1.0)
    finally:
        by_token.close()
        bystander.close()

    assert code == REVOKED, f"closed with {code} after {waited:.1f}s"
    assert still_open is None  # someone else's socket in the same room stays
    time.sleep(0.5)
    assert not ChatMessage.objects.filter(consult=consult, text="sent after the close").exists()
    # The REST API and a new handshake agree: the token is gone.
    with pytest.raises((InvalidStatus, ConnectionClosed)) as refused:
        again = Socket(room_url(holder, consult), {"Authorization": f"Token {tokens['physician']}"})
        again.wait_for("presence", timeout=5)
    if isinstance(refused.value, ConnectionClosed):
        assert refused.value.rcvd.code == FORBIDDEN


def test_an_account_deactivated_closes_its_token_and_session_sockets_within_seconds(room, two_servers, daphne_factory):
    consult, physician, specialist, tokens = room
    holder, other = two_servers
    browser = sign_in(other.url, physician.email)
    by_token = Socket(room_url(holder, consult), {"Authorization": f"Token {tokens['physician']}"})
    by_session = Socket(f"{holder.ws_url}/ws/notifications/", browser_headers(holder, browser))
    bystander = Socket(room_url(holder, consult), {"Authorization": f"Token {tokens['specialist']}"})
    try:
        by_token.wait_for("presence")
        by_session.wait_for("notification.unread")
        bystander.wait_for("presence")

        # An administrator's shell, with the servers' settings (Redis channel layer).
        deactivated = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", DEACTIVATE.format(pk=physician.pk)],
            cwd=ROOT,
            env=other.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert deactivated.returncode == 0, deactivated.stderr
        token_code, token_waited = by_token.closed_within(CLOSE_WITHIN)
        session_code, session_waited = by_session.closed_within(CLOSE_WITHIN)
        by_token.chat("sent after deactivation")
        still_open, _ = bystander.closed_within(1.0)
    finally:
        for socket in (by_token, by_session, bystander):
            socket.close()

    assert token_code == REVOKED, f"token socket: {token_code} after {token_waited:.1f}s"
    assert session_code == REVOKED, f"session socket: {session_code} after {session_waited:.1f}s"
    assert still_open is None
    assert not ChatMessage.objects.filter(consult=consult, text="sent after deactivation").exists()


DEACTIVATE = """
from accounts.models import User
user = User.objects.get(pk={pk})
user.is_active = False
user.save()
"""


def test_signing_out_closes_that_sessions_sockets_and_no_other(room, two_servers):
    consult, physician, specialist, tokens = room
    holder, other = two_servers
    leaving, staying = sign_in(other.url, physician.email), sign_in(other.url, physician.email)
    in_room = Socket(room_url(holder, consult), browser_headers(holder, leaving))
    notified = Socket(f"{holder.ws_url}/ws/notifications/", browser_headers(holder, leaving))
    other_tab = Socket(f"{holder.ws_url}/ws/notifications/", browser_headers(holder, staying))
    by_token = Socket(room_url(holder, consult), {"Authorization": f"Token {tokens['physician']}"})
    try:
        in_room.wait_for("presence")
        notified.wait_for("notification.unread")
        other_tab.wait_for("notification.unread")
        by_token.wait_for("presence")

        sign_out(other.url, leaving)
        room_code, room_waited = in_room.closed_within(CLOSE_WITHIN)
        notified_code, notified_waited = notified.closed_within(CLOSE_WITHIN)
        in_room.chat("sent after signing out")
        others = other_tab.closed_within(1.0)[0], by_token.closed_within(0.5)[0]
    finally:
        for socket in (in_room, notified, other_tab, by_token):
            socket.close()

    assert room_code == REVOKED, f"room socket: {room_code} after {room_waited:.1f}s"
    assert notified_code == REVOKED, f"notifications socket: {notified_code} after {notified_waited:.1f}s"
    assert others == (None, None)  # another session and the API token are other credentials
    assert not ChatMessage.objects.filter(consult=consult, text="sent after signing out").exists()

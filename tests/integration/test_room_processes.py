"""The consult room across two real daphne processes sharing Redis, one of them restarted."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from consultations import actions
from consultations.models import ChatMessage
from tests.factories import ConsultFactory, make_study

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class RoomSocket:
    """A blocking room client that keeps every frame it has seen."""

    def __init__(self, server, consult_id: int, token: str) -> None:
        self.url = f"{server.ws_url}/ws/consults/{consult_id}/"
        self.token = token
        self.frames: list[dict] = []
        self.socket = None

    def open(self, timeout: float = 30) -> RoomSocket:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.socket = connect(
                    self.url, additional_headers={"Authorization": f"Token {self.token}"}, open_timeout=5, legacy=True
                )
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        self.wait_for(lambda f: f["type"] == "presence")
        return self

    def send(self, **frame) -> None:
        self.socket.send(json.dumps(frame))

    def wait_for(self, match, timeout: float = 15, *, seen: bool = False) -> dict:
        """The next frame that matches; with ``seen``, also one already received."""
        if seen:
            for frame in self.frames:
                if match(frame):
                    return frame
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching frame within {timeout}s; saw {[f['type'] for f in self.frames]}")
            try:
                frame = json.loads(self.socket.recv(timeout=remaining))
            except TimeoutError:
                continue
            self.frames.append(frame)
            if match(frame):
                return frame

    def chat(self, text: str) -> dict:
        """Send a message and wait for its acknowledgement (the echo with our client_id)."""
        client_id = uuid.uuid4().hex
        self.send(type="chat.message", text=text, client_id=client_id)
        return self.wait_for(lambda f: f["type"] == "chat.message" and f.get("client_id") == client_id)

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()


@pytest.fixture
def room_setup(live_user):
    physician = live_user("physician", email="room-physician@example.com")
    specialist = live_user("specialist", email="room-specialist@example.com")
    study = make_study(uploader=physician)
    consult = ConsultFactory(requester=physician, study=study)
    actions.submit_consult(consult, by=physician)
    actions.accept_consult(consult, by=specialist)
    tokens = {user.role: Token.objects.get_or_create(user=user)[0].key for user in (physician, specialist)}
    return consult, physician, specialist, tokens


def test_a_message_sent_through_one_daphne_reaches_a_client_on_the_other(redis_url, daphne_factory, room_setup):
    consult, physician, specialist, tokens = room_setup
    first, second = daphne_factory(), daphne_factory()
    requester = RoomSocket(first, consult.pk, tokens["physician"]).open()
    reader = RoomSocket(second, consult.pk, tokens["specialist"]).open()
    try:
        ack = requester.chat("Across processes")
        seen = reader.wait_for(lambda f: f["type"] == "chat.message")
        presence = requester.wait_for(
            lambda f: f["type"] == "presence" and {u["id"] for u in f["users"]} == {physician.pk, specialist.pk},
            seen=True,
        )
        reader.send(
            type="view.state",
            study_uid="1",
            series_uid="2",
            instance_uid="3",
            frame=1,
            window_center=40,
            window_width=400,
            zoom=1,
            pan=[0, 0],
        )
        followed = requester.wait_for(lambda f: f["type"] == "view.state")
    finally:
        requester.close()
        reader.close()
    assert seen["id"] == ack["id"]
    assert seen["text"] == "Across processes"
    assert {u["role"] for u in presence["users"]} == {"physician", "specialist"}
    assert followed["sender"]["id"] == specialist.pk


def test_after_a_daphne_restart_its_client_reconnects_and_no_acknowledged_message_is_missing(
    redis_url, daphne_factory, room_setup
):
    consult, physician, specialist, tokens = room_setup
    steady, restarted = daphne_factory(), daphne_factory()
    requester = RoomSocket(steady, consult.pk, tokens["physician"]).open()
    reader = RoomSocket(restarted, consult.pk, tokens["specialist"]).open()
    acknowledged = [requester.chat("before restart 1")["id"], reader.chat("before restart 2")["id"]]

    restarted.kill()
    with pytest.raises(ConnectionClosed):
        reader.wait_for(lambda f: False, timeout=10)
    # The room goes on while one server is down.
    acknowledged += [requester.chat(f"while down {i}")["id"] for i in range(3)]
    restarted.start()

    again = RoomSocket(restarted, consult.pk, tokens["specialist"]).open()
    try:
        history = next(f for f in again.frames if f["type"] == "chat.history")
        acknowledged.append(again.chat("after restart")["id"])
        seen_by_requester = requester.wait_for(lambda f: f["type"] == "chat.message" and f["id"] == acknowledged[-1])
    finally:
        requester.close()
        again.close()
        reader.close()

    assert [m["id"] for m in history["messages"]] == acknowledged[:-1]
    assert seen_by_requester["text"] == "after restart"
    stored = list(ChatMessage.objects.filter(consult=consult).order_by("pk").values_list("pk", flat=True))
    assert stored == acknowledged

"""The live consult room over WebSocket: access, validation, chat, receipts, presence, view relay."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from consultations import actions, room
from consultations.models import ChatMessage
from teleconsult.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")


KEYS: dict[int, str] = {}


def headers_for(user, origin=ORIGIN):
    """Handshake headers with the user's API token (made beforehand: no ORM in async code)."""
    headers = [(b"authorization", f"Token {KEYS[user.pk]}".encode())]
    if origin:
        headers.append(origin)
    return headers


@pytest.fixture(autouse=True)
def tokens(physician, specialist, colleague, outsider, patient_user):
    KEYS.clear()
    for user in (physician, specialist, colleague, outsider, patient_user):
        KEYS[user.pk] = Token.objects.get_or_create(user=user)[0].key


@pytest.fixture(autouse=True)
def fresh_room_state():
    cache.clear()
    room._presence = None
    yield
    room._presence = None


@pytest.fixture
def accepted(consult, specialist):
    actions.accept_consult(consult, by=specialist)
    consult.refresh_from_db()
    return consult


class Client:
    """A WebsocketCommunicator with helpers; all methods are async."""

    def __init__(self, consult_id: int, headers):
        self.comm = WebsocketCommunicator(application, f"/ws/consults/{consult_id}/", headers=headers)

    async def join(self) -> dict:
        connected, _ = await self.comm.connect()
        assert connected
        frames = {}
        # chat.history, presence (and possibly chat.read / view.state) arrive on join.
        while True:
            frame = await self.receive()
            frames.setdefault(frame["type"], frame)
            if frame["type"] == "presence":
                break
        return frames

    async def send(self, **frame) -> None:
        await self.comm.send_to(text_data=json.dumps(frame))

    async def receive(self, timeout: float = 3) -> dict:
        return json.loads(await self.comm.receive_from(timeout=timeout))

    async def receive_type(self, type_: str, timeout: float = 3) -> dict:
        while True:
            frame = await self.receive(timeout)
            if frame["type"] == type_:
                return frame

    async def none_of(self, type_: str, timeout: float = 0.3) -> bool:
        """True when no frame of this type arrives within ``timeout`` (others are skipped)."""
        while not await self.comm.receive_nothing(timeout=timeout):
            if (await self.receive())["type"] == type_:
                return False
        return True

    async def close(self) -> None:
        await self.comm.disconnect()


def refused_with_4403(consult_id: int, headers) -> int:
    async def scenario():
        comm = WebsocketCommunicator(application, f"/ws/consults/{consult_id}/", headers=headers)
        connected, _ = await comm.connect()
        output = await comm.receive_output(timeout=3)
        await comm.wait()
        return output

    output = async_to_sync(scenario)()
    assert output["type"] == "websocket.close"
    return output.get("code")


def test_anonymous_is_refused_with_4403(accepted):
    assert refused_with_4403(accepted.pk, [ORIGIN]) == 4403


def test_outsider_is_refused_with_4403(accepted, outsider):
    assert refused_with_4403(accepted.pk, headers_for(outsider)) == 4403


def test_unknown_consult_is_refused_with_4403(accepted, physician):
    assert refused_with_4403(accepted.pk + 1000, headers_for(physician)) == 4403


def test_patient_and_merely_offered_specialist_stay_out_of_the_room(consult, patient_user, specialist):
    # Before accepting, the specialist sees the offer but not the care team's room.
    assert refused_with_4403(consult.pk, headers_for(specialist)) == 4403
    assert refused_with_4403(consult.pk, headers_for(patient_user)) == 4403


def test_foreign_origin_is_refused(accepted, physician):
    async def scenario():
        comm = WebsocketCommunicator(
            application,
            f"/ws/consults/{accepted.pk}/",
            headers=headers_for(physician, (b"origin", b"http://evil.example")),
        )
        connected, _ = await comm.connect()
        return connected

    assert async_to_sync(scenario)() is False


def test_token_client_without_origin_is_accepted(accepted, physician):
    async def scenario():
        client = Client(accepted.pk, headers_for(physician, origin=None))
        frames = await client.join()
        await client.close()
        return frames

    assert "chat.history" in async_to_sync(scenario)()


def test_chat_message_is_saved_then_echoed_with_client_id_and_reaches_the_other_side(accepted, physician, specialist):
    async def scenario():
        requester = Client(accepted.pk, headers_for(physician))
        reader = Client(accepted.pk, headers_for(specialist))
        await requester.join()
        await reader.join()
        await requester.send(type="chat.message", text="Any sign of haemorrhage?", client_id="c-1")
        echo = await requester.receive_type("chat.message")
        seen = await reader.receive_type("chat.message")
        await requester.close()
        await reader.close()
        return echo, seen

    echo, seen = async_to_sync(scenario)()
    assert echo["client_id"] == "c-1"
    assert echo["author"] == {"id": physician.pk, "name": physician.display_name, "role": "physician"}
    assert seen["id"] == echo["id"]
    stored = ChatMessage.objects.get(pk=echo["id"])
    assert stored.text == "Any sign of haemorrhage?"
    assert stored.client_id == "c-1"


def test_resending_a_client_id_stores_it_once_and_acknowledges_again(accepted, physician):
    async def scenario():
        client = Client(accepted.pk, headers_for(physician))
        await client.join()
        await client.send(type="chat.message", text="first try", client_id="same")
        first = await client.receive_type("chat.message")
        await client.send(type="chat.message", text="first try", client_id="same")
        second = await client.receive_type("chat.message")
        await client.close()
        return first, second

    first, second = async_to_sync(scenario)()
    assert first["id"] == second["id"]
    assert ChatMessage.objects.filter(consult=accepted).count() == 1


BAD_FRAMES = [
    ({"type": "no.such.thing"}, "unknown_type"),
    ({"text": "no type"}, "missing_field"),
    ({"type": "chat.message"}, "missing_field"),
    ({"type": "chat.message", "text": "x" * 5001}, "too_long"),
    ({"type": "chat.message", "text": "   "}, "bad_field"),
    ({"type": "chat.message", "text": 42}, "bad_field"),
    ({"type": "chat.message", "text": "before\x00after"}, "bad_field"),
    ({"type": "chat.message", "text": "bell\x07"}, "bad_field"),
    ({"type": "chat.message", "text": "hi", "client_id": "x" * 65}, "bad_field"),
    ({"type": "chat.read"}, "missing_field"),
    ({"type": "chat.read", "up_to_id": "seven"}, "bad_field"),
    ({"type": "chat.read", "up_to_id": 999999}, "bad_field"),
    ({"type": "chat.history_before"}, "missing_field"),
    ({"type": "view.state", "series_uid": "1.2"}, "missing_field"),
    ({"type": "view.pointer", "x": 1}, "missing_field"),
    ({"type": "view.pointer", "x": "left", "y": 2}, "bad_field"),
]


def test_bad_frames_each_get_an_error_and_the_connection_stays_open(accepted, physician):
    async def scenario():
        client = Client(accepted.pk, headers_for(physician))
        await client.join()
        errors = []
        for frame, _ in BAD_FRAMES:
            await client.send(**frame)
            errors.append(await client.receive_type("error"))
        await client.send(type="chat.message", text="still here", client_id="after")
        echo = await client.receive_type("chat.message")
        await client.close()
        return errors, echo

    errors, echo = async_to_sync(scenario)()
    assert [e["code"] for e in errors] == [code for _, code in BAD_FRAMES]
    assert all(e["message"] for e in errors)
    assert echo["text"] == "still here"
    assert ChatMessage.objects.filter(consult=accepted).count() == 1


def test_oversized_and_malformed_frames_get_errors(accepted, physician):
    async def scenario():
        client = Client(accepted.pk, headers_for(physician))
        await client.join()
        await client.comm.send_to(text_data=json.dumps({"type": "typing", "pad": "x" * 17000}))
        too_large = await client.receive_type("error")
        await client.comm.send_to(text_data="{not json")
        bad_json = await client.receive_type("error")
        await client.comm.send_to(text_data="[1, 2]")
        not_object = await client.receive_type("error")
        await client.comm.send_to(bytes_data=b"\x00\x01")
        binary = await client.receive_type("error")
        await client.close()
        return too_large, bad_json, not_object, binary

    too_large, bad_json, not_object, binary = async_to_sync(scenario)()
    assert too_large["code"] == "too_large"
    assert bad_json["code"] == "bad_json"
    assert not_object["code"] == "missing_field"
    assert binary["code"] == "bad_frame"


def test_a_flooding_connection_gets_rate_limit_errors_not_a_crash(accepted, physician):
    async def scenario():
        client = Client(accepted.pk, headers_for(physician))
        await client.join()
        for _ in range(30):
            await client.send(type="chat.read", up_to_id=1)
        codes = []
        for _ in range(30):
            frame = await client.receive_type("error")
            codes.append(frame["code"])
            if frame["code"] == "rate_limited":
                break
        await client.close()
        return codes

    assert "rate_limited" in async_to_sync(scenario)()


def test_join_sends_the_last_100_messages_and_older_pages_on_request(accepted, physician):
    ChatMessage.objects.bulk_create(
        ChatMessage(consult=accepted, author=physician, text=f"message {i}") for i in range(130)
    )

    async def scenario():
        client = Client(accepted.pk, headers_for(physician))
        frames = await client.join()
        latest = frames["chat.history"]["messages"]
        await client.send(type="chat.history_before", before_id=latest[0]["id"])
        older = await client.receive_type("chat.history")
        await client.close()
        return latest, older

    latest, older = async_to_sync(scenario)()
    assert len(latest) == 100
    assert latest[-1]["text"] == "message 129"
    assert [m["text"] for m in older["messages"]] == [f"message {i}" for i in range(30)]
    assert older["before_id"] == latest[0]["id"]


def test_read_receipts_are_stored_broadcast_and_only_move_forward(accepted, physician, specialist):
    messages = ChatMessage.objects.bulk_create(
        ChatMessage(consult=accepted, author=specialist, text=f"note {i}") for i in range(3)
    )
    ids = sorted(m.pk for m in ChatMessage.objects.filter(consult=accepted))
    assert len(messages) == 3

    async def scenario():
        requester = Client(accepted.pk, headers_for(physician))
        other = Client(accepted.pk, headers_for(specialist))
        await requester.join()
        await other.join()
        await requester.send(type="chat.read", up_to_id=ids[2])
        receipt = await other.receive_type("chat.read")
        await requester.send(type="chat.read", up_to_id=ids[0])
        backwards = await other.receive_type("chat.read")
        await requester.close()
        await other.close()
        return receipt, backwards

    receipt, backwards = async_to_sync(scenario)()
    assert receipt["user"]["id"] == physician.pk
    assert receipt["up_to_id"] == ids[2]
    assert backwards["up_to_id"] == ids[2]
    assert room.unread_count(accepted, physician) == 0
    assert room.unread_count(accepted, specialist) == 0


def test_typing_reaches_others_but_not_the_typist(accepted, physician, specialist):
    async def scenario():
        typist = Client(accepted.pk, headers_for(physician))
        other = Client(accepted.pk, headers_for(specialist))
        await typist.join()
        await other.join()
        await typist.receive_type("presence")  # the other joined
        await typist.send(type="typing")
        seen = await other.receive_type("typing")
        quiet = await typist.none_of("typing")
        await typist.close()
        await other.close()
        return seen, quiet

    seen, quiet = async_to_sync(scenario)()
    assert seen["user"]["id"] == physician.pk
    assert quiet


def test_presence_counts_several_tabs_of_one_user_once_and_updates_on_leave(accepted, physician, specialist):
    async def scenario():
        tab1 = Client(accepted.pk, headers_for(physician))
        tab2 = Client(accepted.pk, headers_for(physician))
        other = Client(accepted.pk, headers_for(specialist))
        await tab1.join()
        await tab2.join()
        joined = (await other.join())["presence"]
        await other.close()
        after_leave = await tab1.receive_type("presence")
        await tab1.close()
        await tab2.close()
        return joined, after_leave

    joined, after_leave = async_to_sync(scenario)()
    assert sorted(u["id"] for u in joined["users"]) == sorted([physician.pk, specialist.pk])
    assert {u["id"]: u["role"] for u in joined["users"]}[specialist.pk] == "specialist"
    assert [u["id"] for u in after_leave["users"]] == [physician.pk]


VIEW = {
    "study_uid": "1.2.3",
    "series_uid": "1.2.3.4",
    "instance_uid": "1.2.3.4.5",
    "frame": 3,
    "window_center": 40,
    "window_width": 80,
    "zoom": 1.5,
    "pan": [10, -4.5],
}


def test_view_state_is_relayed_to_followers_and_given_to_late_joiners(accepted, physician, specialist, colleague):
    actions.add_participant(accepted, by=physician, user=colleague)

    async def scenario():
        leader = Client(accepted.pk, headers_for(specialist))
        follower = Client(accepted.pk, headers_for(physician))
        await leader.join()
        await follower.join()
        await leader.send(type="view.state", **VIEW)
        followed = await follower.receive_type("view.state")
        await leader.send(type="view.pointer", x=100.5, y=200)
        pointer = await follower.receive_type("view.pointer")
        no_own_echo = await leader.none_of("view.state")
        late = Client(accepted.pk, headers_for(colleague))
        late_frames = await late.join()
        await leader.close()
        await follower.close()
        await late.close()
        return followed, pointer, no_own_echo, late_frames

    followed, pointer, no_own_echo, late_frames = async_to_sync(scenario)()
    assert {k: followed[k] for k in VIEW} == VIEW
    assert followed["sender"]["id"] == specialist.pk
    assert pointer == {"type": "view.pointer", "x": 100.5, "y": 200, "sender": followed["sender"]}
    assert no_own_echo
    assert {k: late_frames["view.state"][k] for k in VIEW} == VIEW


INVALID_VIEW_CHANGES = [
    {"frame": 0},
    {"zoom": -1},
    {"window_width": 0},
    {"pan": [1]},
    {"pan": ["a", 1]},
    {"frame": "3"},
]


def test_invalid_view_state_is_refused_and_not_relayed(accepted, specialist, physician):
    async def scenario():
        client = Client(accepted.pk, headers_for(specialist))
        follower = Client(accepted.pk, headers_for(physician))
        await client.join()
        await follower.join()
        codes = []
        for change in INVALID_VIEW_CHANGES:
            await client.send(type="view.state", **{**VIEW, **change})
            codes.append((await client.receive_type("error"))["code"])
        relayed = not await follower.none_of("view.state")
        await client.close()
        await follower.close()
        return codes, relayed

    codes, relayed = async_to_sync(scenario)()
    assert codes == ["bad_field"] * len(INVALID_VIEW_CHANGES)
    assert not relayed


def test_removed_participant_loses_the_room(accepted, physician, colleague, settings):
    actions.add_participant(accepted, by=physician, user=colleague)
    assert room.may_join(colleague, accepted)
    actions.remove_participant(accepted, by=physician, user=colleague)
    assert not room.may_join(colleague, accepted)
    assert refused_with_4403(accepted.pk, headers_for(colleague)) == 4403


def test_rest_and_websocket_chat_post_through_one_action_that_stores_and_broadcasts(
    accepted, physician, specialist, monkeypatch
):
    calls = []
    post_message = actions.post_message

    def counted(*args, **kwargs):
        calls.append(kwargs["text"])
        return post_message(*args, **kwargs)

    monkeypatch.setattr(actions, "post_message", counted)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {KEYS[physician.pk]}")

    async def scenario():
        listener = Client(accepted.pk, headers_for(specialist))
        sender = Client(accepted.pk, headers_for(physician))
        await listener.join()
        await sender.join()
        await sender.send(type="chat.message", text="Over the socket", client_id="ws-1")
        from_socket = await listener.receive_type("chat.message")
        posted = await sync_to_async(api.post)(
            f"/api/v1/consults/{accepted.pk}/messages/", {"text": "Over REST", "client_id": "rest-1"}, format="json"
        )
        from_rest = await listener.receive_type("chat.message")
        await listener.close()
        await sender.close()
        return from_socket, posted.status_code, from_rest

    from_socket, status, from_rest = async_to_sync(scenario)()
    assert calls == ["Over the socket", "Over REST"]
    assert status == 201
    assert (from_socket["text"], from_socket["client_id"]) == ("Over the socket", "ws-1")
    assert (from_rest["text"], from_rest["client_id"]) == ("Over REST", "rest-1")
    stored = list(ChatMessage.objects.filter(consult=accepted).values_list("text", "client_id"))
    assert stored == [("Over the socket", "ws-1"), ("Over REST", "rest-1")]


def test_a_refused_frame_is_the_error_frame_of_the_refusal(accepted, physician):
    async def scenario():
        client = Client(accepted.pk, headers_for(physician))
        await client.join()
        await client.send(type="chat.message", text="   ")
        error = await client.receive_type("error")
        await client.close()
        return error

    assert async_to_sync(scenario)() == {"type": "error", "code": "bad_field", "message": "text is empty."}

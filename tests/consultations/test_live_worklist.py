"""The live worklist and "My consults": who is told of which change over /ws/notifications/, the
unread marks, the Accept button and the flash messages of the consult actions."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import zoneinfo

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import SpecialistProfile
from consultations import actions, room
from consultations.consumers import NotificationsConsumer
from consultations.groups import notifications_group
from consultations.models import ChatReadMark
from tests.factories import ConsultFactory, SpecialistFactory

pytestmark = pytest.mark.django_db


# -- who is told what (through the channel layer) ----------------------------------------------


class Listener:
    """Stands in for the open tabs of some users: one channel in each user's group."""

    def __init__(self, *users) -> None:
        self.layer = get_channel_layer()
        self.channels = {}
        for user in users:
            channel = async_to_sync(self.layer.new_channel)()
            async_to_sync(self.layer.group_add)(notifications_group(user.pk), channel)
            self.channels[user.pk] = channel

    def worklist_frames(self, user) -> list[dict]:
        """The ``worklist.changed`` events waiting for ``user`` (other events are dropped)."""
        frames = []
        channel = self.channels[user.pk]

        async def drain():
            while True:
                try:
                    message = await asyncio.wait_for(self.layer.receive(channel), timeout=0.05)
                except TimeoutError:
                    return
                if message["type"] == "worklist.changed":
                    frames.append(message)

        async_to_sync(drain)()
        return frames


def only(frames: list[dict]) -> dict:
    assert len(frames) == 1, frames
    return frames[0]


def test_a_new_stat_offer_reaches_the_offered_specialists_with_a_toast_and_nobody_else(
    physician, study, specialist, other_specialist, outsider, patient_user, django_capture_on_commit_callbacks
):
    elsewhere = SpecialistFactory(email="cardio@example.com", profile__specialties=["cardiology"])
    listener = Listener(physician, specialist, other_specialist, outsider, patient_user, elsewhere)
    consult = ConsultFactory(requester=physician, study=study, priority="stat")
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(consult, by=physician)
    for reader in (specialist, other_specialist):
        frame = only(listener.worklist_frames(reader))
        assert frame["change"] == "offered"
        assert frame["consult"] == {"id": consult.pk, "priority": "stat", "state": "submitted"}
        assert frame["message"] == f"New STAT consult #{consult.pk} offered to you."
    # The requester's own tabs refresh quietly; outsiders, the patient and other specialties hear nothing.
    assert only(listener.worklist_frames(physician))["message"] == ""
    for user in (outsider, patient_user, elsewhere):
        assert listener.worklist_frames(user) == []


def test_a_claim_tells_the_other_specialists_and_the_requester(
    physician, study, specialist, other_specialist, outsider, django_capture_on_commit_callbacks
):
    consult = ConsultFactory(requester=physician, study=study)
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(consult, by=physician)
    listener = Listener(physician, specialist, other_specialist, outsider)
    with django_capture_on_commit_callbacks(execute=True):
        actions.accept_consult(consult, by=specialist)
    assert only(listener.worklist_frames(other_specialist))["message"] == (
        f"Consult #{consult.pk} was accepted by another specialist."
    )
    assert only(listener.worklist_frames(physician))["message"] == f"Consult #{consult.pk} accepted by Dr Specialist."
    mine = only(listener.worklist_frames(specialist))
    assert mine["change"] == "accepted" and mine["message"] == "" and mine["consult"]["state"] == "accepted"
    assert listener.worklist_frames(outsider) == []


def test_a_cancel_tells_whoever_holds_an_offer(
    physician, other_specialist, consult, specialist, outsider, django_capture_on_commit_callbacks
):
    listener = Listener(physician, specialist, other_specialist, outsider)
    with django_capture_on_commit_callbacks(execute=True):
        actions.cancel_consult(consult, by=physician, reason="Wrong patient")
    for reader in (specialist, other_specialist):
        frame = only(listener.worklist_frames(reader))
        assert frame["change"] == "cancelled" and frame["message"] == f"Consult #{consult.pk} was cancelled."
    assert only(listener.worklist_frames(physician))["message"] == ""
    assert listener.worklist_frames(outsider) == []


def test_a_cancel_after_acceptance_tells_the_assignee(
    physician, accepted, specialist, django_capture_on_commit_callbacks
):
    listener = Listener(specialist)
    with django_capture_on_commit_callbacks(execute=True):
        actions.cancel_consult(accepted, by=physician)
    assert only(listener.worklist_frames(specialist))["message"] == f"Consult #{accepted.pk} was cancelled."


def test_a_chat_message_refreshes_the_care_team_only(
    physician, accepted, specialist, other_specialist, outsider, patient_user, django_capture_on_commit_callbacks
):
    listener = Listener(physician, specialist, other_specialist, outsider, patient_user)
    with django_capture_on_commit_callbacks(execute=True):
        actions.post_message(accepted, author=physician, text="Any news?")
    frame = only(listener.worklist_frames(specialist))
    assert frame["change"] == "message" and frame["message"] == ""
    # The specialist who only held an offer, outsiders and the patient do not see the chat.
    for user in (other_specialist, outsider, patient_user):
        assert listener.worklist_frames(user) == []


def test_a_removed_colleague_is_told_so_the_consult_leaves_their_list(
    physician, accepted, colleague, outsider, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        actions.add_participant(accepted, by=physician, user=colleague)
    listener = Listener(colleague, outsider)
    with django_capture_on_commit_callbacks(execute=True):
        actions.remove_participant(accepted, by=physician, user=colleague)
    assert only(listener.worklist_frames(colleague))["change"] == "updated"
    assert listener.worklist_frames(outsider) == []


def test_nothing_is_told_when_the_change_rolls_back(physician, study, specialist):
    from django.db import transaction

    listener = Listener(specialist)
    consult = ConsultFactory(requester=physician, study=study)
    with pytest.raises(RuntimeError), transaction.atomic():
        actions.submit_consult(consult, by=physician)
        raise RuntimeError("rolled back")
    assert listener.worklist_frames(specialist) == []


# -- the socket itself ---------------------------------------------------------------------------


def _socket(user):
    communicator = WebsocketCommunicator(NotificationsConsumer.as_asgi(), "/ws/notifications/")
    communicator.scope["user"] = user
    return communicator


async def _next_of(communicator, type_: str, timeout: float = 3) -> dict:
    while True:
        frame = await communicator.receive_json_from(timeout=timeout)
        if frame["type"] == type_:
            return frame


async def _none_of(communicator, type_: str, timeout: float = 0.5) -> bool:
    while not await communicator.receive_nothing(timeout=timeout):
        if (await communicator.receive_json_from())["type"] == type_:
            return False
    return True


@pytest.mark.django_db(transaction=True)
def test_the_specialists_socket_gets_the_offer_and_an_outsiders_socket_gets_nothing():
    from tests.factories import UserFactory, make_study

    physician = UserFactory(role="physician", email="live-doc@example.com")
    specialist = SpecialistFactory(email="live-reader@example.com")
    outsider = UserFactory(role="physician", email="live-outsider@example.com")
    nosy_specialist = SpecialistFactory(email="live-cardio@example.com", profile__specialties=["cardiology"])
    consult = ConsultFactory(requester=physician, study=make_study(uploader=physician), priority="stat")

    async def scenario():
        reader, other, nosy = _socket(specialist), _socket(outsider), _socket(nosy_specialist)
        for communicator in (reader, other, nosy):
            assert (await communicator.connect())[0]
            assert (await communicator.receive_json_from())["type"] == "notification.unread"
        await database_sync_to_async(actions.submit_consult)(consult, by=physician)
        frame = await _next_of(reader, "worklist.changed")
        assert frame == {
            "type": "worklist.changed",
            "change": "offered",
            "consult": {"id": consult.pk, "priority": "stat", "state": "submitted"},
            "message": f"New STAT consult #{consult.pk} offered to you.",
        }
        assert await other.receive_nothing(timeout=0.5)
        assert await nosy.receive_nothing(timeout=0.1)
        await database_sync_to_async(actions.accept_consult)(consult, by=specialist)
        assert (await _next_of(reader, "worklist.changed"))["change"] == "accepted"
        assert await other.receive_nothing(timeout=0.3) and await nosy.receive_nothing(timeout=0.1)
        for communicator in (reader, other, nosy):
            await communicator.disconnect()

    async_to_sync(scenario)()


def test_bad_frames_get_error_frames_and_the_socket_stays_open(specialist):
    async def scenario():
        communicator = _socket(specialist)
        assert (await communicator.connect())[0]
        await communicator.receive_json_from()
        cases = [
            ({"bytes_data": b"\x00\x01"}, "bad_frame"),
            ({"text_data": "{not json"}, "bad_json"),
            ({"text_data": json.dumps({"type": "x", "pad": "a" * 5000})}, "too_large"),
            ({"text_data": json.dumps(["notification.read"])}, "unknown_type"),
            ({"text_data": json.dumps({"type": "worklist.changed"})}, "unknown_type"),
            ({"text_data": json.dumps({"type": "notification.read", "ids": [1, "2"]})}, "bad_ids"),
        ]
        for frame, code in cases:
            await communicator.send_to(**frame)
            answer = await communicator.receive_json_from()
            assert answer["type"] == "error" and answer["code"] == code, (frame, answer)
        await communicator.send_json_to({"type": "notification.read"})
        assert (await communicator.receive_json_from())["type"] == "notification.unread"
        await communicator.disconnect()

    async_to_sync(scenario)()


# -- unread marks -------------------------------------------------------------------------------


def _page(client, user, url, **headers):
    client.force_login(user)
    return client.get(url, headers=headers)


def _unread(response) -> dict[int, int]:
    return {consult.pk: consult.unread for consult in response.context["consults"]}


def test_unread_marks_count_messages_from_others_after_the_read_mark(client, physician, accepted, specialist):
    first = actions.post_message(accepted, author=physician, text="One")
    actions.post_message(accepted, author=physician, text="Two")
    actions.post_message(accepted, author=physician, text="Three")
    actions.post_message(accepted, author=specialist, text="Mine")
    page = _page(client, specialist, "/worklist/")
    assert _unread(page) == {accepted.pk: 3}
    assert 'data-unread="3"' in page.content.decode()
    room.do_mark_read(accepted, user=specialist, up_to_id=first.pk)
    assert _unread(_page(client, specialist, "/worklist/")) == {accepted.pk: 2}
    assert _unread(_page(client, specialist, "/consults/")) == {accepted.pk: 2}
    # The physician's own messages are not unread for them; the specialist's one is.
    assert _unread(_page(client, physician, "/consults/")) == {accepted.pk: 1}


def test_a_specialist_who_only_holds_the_offer_sees_no_unread_mark(client, physician, consult, specialist):
    actions.post_message(consult, author=physician, text="Before anyone accepted")
    page = _page(client, specialist, "/worklist/")
    assert _unread(page) == {consult.pk: 0}
    assert "data-unread" not in page.content.decode()


def test_a_colleague_on_the_consult_gets_unread_marks_too(client, physician, accepted, colleague, specialist):
    actions.add_participant(accepted, by=physician, user=colleague)
    actions.post_message(accepted, author=specialist, text="Findings soon")
    assert _unread(_page(client, colleague, "/consults/")) == {accepted.pk: 1}
    ChatReadMark.objects.create(consult=accepted, user=colleague, up_to_id=accepted.messages.last().pk)
    assert _unread(_page(client, colleague, "/consults/")) == {accepted.pk: 0}


def test_unread_marks_take_no_query_per_row(client, physician, study, specialist):
    def queries() -> int:
        client.force_login(specialist)
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/worklist/").status_code == 200
        return len(captured)

    def accepted_with_messages():
        consult = ConsultFactory(requester=physician, study=study)
        actions.submit_consult(consult, by=physician)
        actions.accept_consult(consult, by=specialist)
        actions.post_message(consult, author=physician, text="Hello")
        return consult

    accepted_with_messages()
    one = queries()
    for _ in range(3):
        accepted_with_messages()
    assert queries() == one


# -- the list alone, the Accept button, flash messages -----------------------------------------


def test_the_list_alone_is_served_for_the_live_refresh(client, consult, specialist):
    response = _page(client, specialist, "/worklist/", **{"X-List-Only": "1"})
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body and f'data-consult-id="{consult.pk}"' in body
    assert "X-List-Only" in response["Vary"]
    assert '<span data-key="worklist" data-url="/worklist/" data-count="1">' in body  # the menu's count, live too
    assert "<html" in _page(client, specialist, "/worklist/").content.decode()


def test_each_offered_row_has_an_accept_button_that_needs_the_csrf_token(consult, specialist):
    browser = Client(enforce_csrf_checks=True)
    page = _page(browser, specialist, "/worklist/")
    body = page.content.decode()
    assert f'action="/consults/{consult.pk}/do/accept/"' in body and "csrfmiddlewaretoken" in body
    assert f'aria-label="Accept consult #{consult.pk}"' in body
    assert browser.post(f"/consults/{consult.pk}/do/accept/").status_code == 403
    token = page.context["csrf_token"]
    response = browser.post(f"/consults/{consult.pk}/do/accept/", {"csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302 and response.url == f"/consults/{consult.pk}/#viewer"
    consult.refresh_from_db()
    assert consult.assignee_id == specialist.pk


def test_accepted_rows_have_no_accept_button_and_my_consults_never_does(client, accepted, specialist, physician):
    assert "accept-form" not in _page(client, specialist, "/worklist/").content.decode()
    assert "accept-form" not in _page(client, physician, "/consults/").content.decode()


def flashes(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_accepting_says_which_consult_and_when_it_is_due_in_the_specialists_time_zone(client, consult, specialist):
    SpecialistProfile.objects.filter(user=specialist).update(time_zone="Europe/Berlin")
    due = timezone.now() + dt.timedelta(hours=3, minutes=40, seconds=30)
    type(consult).objects.filter(pk=consult.pk).update(due_at=due)
    client.force_login(specialist)
    response = client.post(f"/consults/{consult.pk}/do/accept/")
    local = timezone.localtime(due, zoneinfo.ZoneInfo("Europe/Berlin"))
    assert flashes(response) == [
        f"Consult #{consult.pk} accepted: due in 3 h 40 min ({local.day} {local:%b %Y, %H:%M} {local.tzname()})."
    ]


@pytest.mark.parametrize(
    ("who", "action", "data", "expected"),
    [
        ("specialist", "decline", {"reason": "Out of scope"}, "Consult #{pk} declined: it stays with the other"),
        ("physician", "cancel", {}, "Consult #{pk} cancelled."),
    ],
)
def test_offer_stage_actions_say_what_happened(client, consult, specialist, physician, who, action, data, expected):
    client.force_login({"specialist": specialist, "physician": physician}[who])
    response = client.post(f"/consults/{consult.pk}/do/{action}/", data)
    (message,) = flashes(response)
    assert message.startswith(expected.format(pk=consult.pk))
    assert "Done." not in message


def test_questions_and_answers_say_who_was_told(client, accepted, specialist, physician):
    client.force_login(specialist)
    response = client.post(f"/consults/{accepted.pk}/do/request-info/", {"question": "Prior imaging?"})
    assert flashes(response) == [f"Consult #{accepted.pk}: your question was sent to {physician.display_name}."]
    client.force_login(physician)
    response = client.post(f"/consults/{accepted.pk}/do/answer-info/", {"answer": "None."})
    assert flashes(response)[-1] == f"Consult #{accepted.pk}: your answer was sent to {specialist.display_name}."


def test_submitting_a_draft_says_when_it_is_due(client, draft, physician, specialist):
    client.force_login(physician)
    (message,) = flashes(client.post(f"/consults/{draft.pk}/do/submit/"))
    assert message.startswith(f"Consult #{draft.pk} submitted as routine: due in 1 d 23 h (")

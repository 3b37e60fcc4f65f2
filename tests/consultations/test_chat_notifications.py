"""Nobody misses a message: a chat message to someone of the care team who is not in the room is
one notification per consult (updated, never multiplied) and, still unread after the delay, one
email for all of it, sent by the beat task once; reading the room ends both."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from consultations import actions, notifications, room, tasks
from consultations.models import ChatMessage, Notification, NotificationPreference

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_room():
    room._presence = None
    yield
    room._presence = None


@pytest.fixture
def post(django_capture_on_commit_callbacks):
    def post(consult, author, text, client_id=""):
        with django_capture_on_commit_callbacks(execute=True):
            return actions.post_message(consult, author=author, text=text, client_id=client_id)

    return post


@pytest.fixture
def run_beat(django_capture_on_commit_callbacks):
    """The beat task as beat runs it, ``minutes`` after now."""

    def run(minutes: float = 0) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            if minutes:
                return notifications.email_unread_messages(now=timezone.now() + timedelta(minutes=minutes))
            return tasks.email_unread_messages.delay().get()

    return run


def in_room(consult, user) -> None:
    """What the room's consumer does for a connection that joined."""
    room.presence().touch(consult.pk, f"channel-{user.pk}", room.author_payload(user))


def message_notes(user):
    return list(Notification.objects.filter(user=user, kind="message"))


def test_a_message_to_someone_away_is_one_notification_updated_by_the_next(accepted, physician, specialist, post):
    mail.outbox.clear()
    post(accepted, physician, "Could you look at the left hilum?")
    [note] = message_notes(specialist)
    assert note.consult_id == accepted.pk and note.read_at is None
    assert note.title == f"1 unread message in consult #{accepted.pk}"
    assert note.url == f"/consults/{accepted.pk}/"
    post(accepted, physician, "And the prior from March.")
    [again] = message_notes(specialist)
    assert again.pk == note.pk
    assert again.title == f"2 unread messages in consult #{accepted.pk}"
    assert again.body == "Dr Owner: And the prior from March."
    assert message_notes(physician) == []  # never told about one's own message
    assert mail.outbox == []  # no email at once


def test_a_resent_message_changes_nothing(accepted, physician, specialist, post):
    post(accepted, physician, "Once", client_id="c-1")
    post(accepted, physician, "Once", client_id="c-1")
    [note] = message_notes(specialist)
    assert note.title.startswith("1 unread message ")


def test_someone_in_the_room_gets_no_notification(accepted, physician, specialist, post):
    in_room(accepted, specialist)
    post(accepted, physician, "You are here, so you see this")
    assert message_notes(specialist) == []


def test_colleagues_on_the_consult_are_told_and_removed_ones_are_not(accepted, physician, specialist, colleague, post):
    actions.add_participant(accepted, by=physician, user=colleague)
    post(accepted, specialist, "Findings are in")
    assert len(message_notes(colleague)) == 1 and len(message_notes(physician)) == 1
    actions.remove_participant(accepted, by=physician, user=colleague)
    Notification.objects.filter(kind="message").update(read_at=timezone.now())
    post(accepted, specialist, "One more")
    assert len(message_notes(physician)) == 2
    assert len(message_notes(colleague)) == 1  # the old one only


def test_outsiders_and_merely_offered_specialists_are_never_told(
    consult, physician, specialist, outsider, patient_user, post
):
    post(consult, physician, "Anyone there?")  # submitted, offered to the specialist, not accepted
    assert message_notes(specialist) == []
    assert message_notes(outsider) == []
    assert message_notes(patient_user) == []
    assert not Notification.objects.filter(kind="message").exists()


def test_after_the_delay_one_email_for_several_messages_then_never_again(
    accepted, physician, specialist, post, run_beat, settings
):
    settings.TELECONSULT_CHAT_EMAIL_DELAY_MINUTES = 5
    post(accepted, physician, "First")
    post(accepted, physician, "Second")
    post(accepted, physician, "Third")
    mail.outbox.clear()
    assert run_beat() == 0  # too early
    assert run_beat(minutes=4) == 0
    assert mail.outbox == []
    assert run_beat(minutes=6) == 1
    [email] = mail.outbox
    assert email.to == [specialist.email]
    assert email.subject == f"[teleconsult] 3 unread messages in consult #{accepted.pk}"
    assert f"Consult #{accepted.pk}: 3 unread messages" in email.body
    assert "First" not in email.body and "Doe" not in email.body  # no message text, no patient
    assert message_notes(specialist)[0].emailed_at is not None
    post(accepted, physician, "Fourth, still unread")
    assert run_beat(minutes=60) == 0  # never again for them
    assert len(mail.outbox) == 1
    assert len(message_notes(specialist)) == 1


def test_unread_messages_of_several_consults_go_in_one_email(
    accepted, physician, specialist, study, post, run_beat, django_capture_on_commit_callbacks
):
    from tests.factories import ConsultFactory

    second = ConsultFactory(requester=physician, study=study)
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(second, by=physician)
        actions.accept_consult(second, by=specialist)
    post(accepted, physician, "About the first")
    post(second, physician, "About the second")
    post(second, physician, "And again")
    mail.outbox.clear()
    assert run_beat(minutes=10) == 1
    [email] = mail.outbox
    assert email.subject == "[teleconsult] 3 unread messages in 2 consults"
    assert f"Consult #{accepted.pk}: 1 unread message\n" in email.body
    assert f"Consult #{second.pk}: 2 unread messages" in email.body


def test_reading_the_room_marks_it_read_and_no_email_goes_out(accepted, physician, specialist, post, run_beat):
    message = post(accepted, physician, "Please read me")
    mail.outbox.clear()
    room.do_mark_read(accepted, user=specialist, up_to_id=message.pk)
    [note] = message_notes(specialist)
    assert note.read_at is not None
    assert not Notification.objects.filter(user=specialist, kind="message", read_at=None).exists()
    assert run_beat(minutes=10) == 0 and mail.outbox == []
    post(accepted, physician, "A new one after reading")
    notes = message_notes(specialist)
    assert len(notes) == 2 and notes[0].title.startswith("1 unread message ")


def test_read_some_other_way_by_email_time_sends_nothing(accepted, physician, specialist, post, run_beat):
    message = post(accepted, physician, "Read elsewhere")
    from consultations.models import ChatReadMark

    ChatReadMark.objects.create(consult=accepted, user=specialist, up_to_id=message.pk)
    mail.outbox.clear()
    assert run_beat(minutes=10) == 0 and mail.outbox == []
    assert message_notes(specialist)[0].read_at is not None


def test_email_preference_off_means_no_email(accepted, physician, specialist, post, run_beat):
    NotificationPreference.objects.create(user=specialist, kind="message", email=False)
    post(accepted, physician, "Not by email")
    mail.outbox.clear()
    assert run_beat(minutes=10) == 0 and mail.outbox == []
    assert len(message_notes(specialist)) == 1  # still in the app
    assert run_beat(minutes=20) == 0  # and not looked at again


def test_the_kind_is_on_the_email_settings_page(client, specialist):
    client.force_login(specialist)
    page = client.get("/notifications/email/")
    assert b"Chat message while away" in page.content
    client.post("/notifications/email/", {"offer": "on"})
    assert not notifications.wants_email(specialist, "message")


def test_email_links_use_the_base_url_when_set(accepted, physician, specialist, post, run_beat, settings):
    settings.TELECONSULT_BASE_URL = "https://portal.example.org"
    post(accepted, physician, "Linked")
    mail.outbox.clear()
    run_beat(minutes=10)
    body = mail.outbox[0].body
    assert f"https://portal.example.org/consults/{accepted.pk}/" in body
    assert "https://portal.example.org/notifications/email/" in body


def test_in_debug_email_links_use_the_address_the_portal_was_served_at(
    accepted, physician, specialist, run_beat, settings, client, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    cache.clear()
    settings.DEBUG = True
    settings.TELECONSULT_BASE_URL = ""
    client.force_login(physician)
    with_port = {"HTTP_HOST": "localhost:8123"}
    with django_capture_on_commit_callbacks(execute=True):
        posted = client.post(
            f"/api/v1/consults/{accepted.pk}/messages/",
            {"text": "Served on 8123"},
            content_type="application/json",
            **with_port,
        )
    assert posted.status_code == 201
    mail.outbox.clear()
    run_beat(minutes=10)  # outside any request, as beat runs it
    links = re.findall(r"https?://\S+", mail.outbox[0].body)
    assert f"http://localhost:8123/consults/{accepted.pk}/" in links
    assert all(link.startswith("http://localhost:8123/") for link in links)
    assert ChatMessage.objects.filter(consult=accepted).count() == 1


@pytest.mark.django_db(transaction=True)
def test_over_the_room_socket_present_people_are_not_told_and_reading_there_marks_it_read(
    accepted, physician, specialist
):
    """The room's own presence decides, and chat.read in the room ends the notification."""
    import json

    from asgiref.sync import async_to_sync, sync_to_async
    from channels.testing import WebsocketCommunicator
    from rest_framework.authtoken.models import Token

    from teleconsult.asgi import application

    keys = {user.pk: Token.objects.get_or_create(user=user)[0].key for user in (physician, specialist)}

    def socket(user):
        headers = [(b"authorization", f"Token {keys[user.pk]}".encode()), (b"origin", b"http://testserver")]
        return WebsocketCommunicator(application, f"/ws/consults/{accepted.pk}/", headers=headers)

    async def until(comm, type_):
        while True:
            frame = json.loads(await comm.receive_from(timeout=3))
            if frame["type"] == type_:
                return frame

    post = sync_to_async(lambda text: actions.post_message(accepted, author=physician, text=text))
    notes = sync_to_async(lambda: [(n.title, n.read_at is not None) for n in message_notes(specialist)])

    async def scenario():
        here = socket(specialist)
        assert (await here.connect())[0]
        await until(here, "presence")
        await post("While you are here")
        seen = await until(here, "chat.message")
        await here.send_to(text_data=json.dumps({"type": "chat.read", "up_to_id": seen["id"]}))
        await until(here, "chat.read")  # as the browser does for what it shows
        while_present = await notes()
        await here.disconnect()
        message = await post("While you are away")
        while_away = await notes()
        back = socket(specialist)
        assert (await back.connect())[0]
        await until(back, "presence")
        await back.send_to(text_data=json.dumps({"type": "chat.read", "up_to_id": message.pk}))
        await until(back, "chat.read")
        after_reading = await notes()
        await back.disconnect()
        return while_present, while_away, after_reading

    while_present, while_away, after_reading = async_to_sync(scenario)()
    assert while_present == []
    assert while_away == [(f"1 unread message in consult #{accepted.pk}", False)]
    assert after_reading == [(f"1 unread message in consult #{accepted.pk}", True)]

"""Notifications: rows, emails per kind with opt-out, the live WebSocket, and the pages."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.core import mail

from consultations import actions, notifications, reports
from consultations.consumers import NotificationsConsumer
from consultations.groups import consult_group, notifications_group
from consultations.models import Notification, NotificationPreference

pytestmark = pytest.mark.django_db


def test_group_names():
    assert consult_group(7) == "consult.7"
    assert notifications_group(3) == "notifications.3"


def test_new_offer_notifies_and_emails_the_pool(consult, specialist):
    note = Notification.objects.get(user=specialist)
    assert note.kind == "offer" and note.url == f"/consults/{consult.pk}/"
    assert [m.to for m in mail.outbox] == [[specialist.email]]
    assert "New routine consult offered" in mail.outbox[0].subject
    assert "Doe" not in mail.outbox[0].body  # no patient details in email


def test_accept_notifies_the_requester(accepted, physician):
    assert Notification.objects.filter(user=physician, kind="accepted").count() == 1
    assert physician.email in [m.to[0] for m in mail.outbox]


def test_info_request_notifies_and_emails(accepted, specialist, physician, django_capture_on_commit_callbacks):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        actions.request_info(accepted, by=specialist, question="Prior imaging?")
    note = Notification.objects.get(user=physician, kind="info_requested")
    assert note.body == "Prior imaging?"
    assert [m.to[0] for m in mail.outbox] == [physician.email]


def test_report_and_addendum_tell_requester_and_patient(
    accepted, specialist, physician, patient_user, password, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        reports.save_draft(accepted, by=specialist, findings="F", impression="I")
        reports.sign_report(accepted, by=specialist, password=password)
    assert set(Notification.objects.filter(kind="report_signed").values_list("user", flat=True)) == {
        physician.pk,
        patient_user.pk,
    }
    assert {m.to[0] for m in mail.outbox} == {physician.email, patient_user.email}
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        reports.start_addendum(accepted, by=specialist, reason="Correction")
        reports.save_draft(accepted, by=specialist, impression="I, corrected")
        reports.sign_report(accepted, by=specialist, password=password)
    assert set(Notification.objects.filter(kind="addendum").values_list("user", flat=True)) == {
        physician.pk,
        patient_user.pk,
    }
    assert len(mail.outbox) == 2


def test_email_opt_out_per_kind(physician, study, specialist, django_capture_on_commit_callbacks):
    from tests.factories import ConsultFactory

    NotificationPreference.objects.create(user=specialist, kind="offer", email=False)
    consult = ConsultFactory(requester=physician, study=study)
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(consult, by=physician)
    assert Notification.objects.filter(user=specialist, kind="offer").exists()  # still in the app
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        actions.accept_consult(consult, by=specialist)
    assert [m.to[0] for m in mail.outbox] == [physician.email]  # other kinds unaffected


def test_nothing_goes_out_when_the_transaction_rolls_back(physician, study, specialist):
    from django.db import transaction

    from tests.factories import ConsultFactory

    consult = ConsultFactory(requester=physician, study=study)
    with pytest.raises(RuntimeError), transaction.atomic():
        actions.submit_consult(consult, by=physician)
        raise RuntimeError("rolled back")
    assert mail.outbox == [] and not Notification.objects.exists()


def test_email_settings_page(client, specialist):
    client.force_login(specialist)
    page = client.get("/notifications/email/")
    assert page.status_code == 200 and b"New consult offered" in page.content
    response = client.post("/notifications/email/", {"accepted": "on"})
    assert response.status_code == 302
    assert not notifications.wants_email(specialist, "offer")
    assert notifications.wants_email(specialist, "accepted")


def test_notification_page_and_mark_read(client, consult, specialist):
    client.force_login(specialist)
    page = client.get("/notifications/")
    assert page.status_code == 200 and b"New routine consult offered" in page.content
    assert b'data-nav-count="notifications">1<' in page.content
    note = Notification.objects.get(user=specialist)
    response = client.get(f"/notifications/{note.pk}/open/")
    assert response.status_code == 302 and response.url == f"/consults/{consult.pk}/"
    assert notifications.unread_count(specialist) == 0


def test_someone_elses_notification_is_404(client, consult, physician, specialist):
    client.force_login(physician)
    note = Notification.objects.get(user=specialist)
    assert client.get(f"/notifications/{note.pk}/open/").status_code == 404


def _communicator(user):
    communicator = WebsocketCommunicator(NotificationsConsumer.as_asgi(), "/ws/notifications/")
    communicator.scope["user"] = user
    return communicator


@pytest.mark.django_db(transaction=True)
def test_websocket_pushes_new_notifications_and_counts():
    from tests.factories import SpecialistFactory

    user = SpecialistFactory(email="ws@example.com")

    async def scenario():
        from channels.db import database_sync_to_async

        communicator = _communicator(user)
        connected, _ = await communicator.connect()
        assert connected
        assert await communicator.receive_json_from() == {"type": "notification.unread", "unread": 0}

        @database_sync_to_async
        def make():
            notifications.notify([user], kind="offer", consult=None, title="Hello")

        await make()
        frame = await communicator.receive_json_from(timeout=5)
        assert frame["type"] == "notification" and frame["notification"]["title"] == "Hello"
        assert frame["unread"] == 1
        await communicator.send_json_to({"type": "notification.read"})
        assert (await communicator.receive_json_from(timeout=5))["unread"] == 0
        await communicator.send_json_to({"type": "notification.read", "ids": "all"})
        assert (await communicator.receive_json_from(timeout=5))["code"] == "bad_ids"
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_anonymous_websocket_is_closed_with_4403():
    async def scenario():
        communicator = _communicator(AnonymousUser())
        connected, _ = await communicator.connect()
        assert connected
        assert await communicator.receive_output(timeout=2) == {"type": "websocket.close", "code": 4403}

    async_to_sync(scenario)()


def test_push_uses_the_users_group(consult, specialist):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(notifications_group(specialist.pk), channel)
    notifications.push(Notification.objects.get(user=specialist))
    message = async_to_sync(layer.receive)(channel)
    assert message["type"] == "notification.created" and message["unread"] == 1


def test_email_links_are_absolute(settings, consult, specialist):
    settings.TELECONSULT_BASE_URL = "https://portal.example.org"
    note = Notification.objects.get(user=specialist)
    Notification.objects.filter(pk=note.pk).update(emailed_at=None)
    mail.outbox.clear()
    note.refresh_from_db()
    assert notifications.email_notification(note)
    assert f"https://portal.example.org/consults/{consult.pk}/" in mail.outbox[0].body
    assert not notifications.email_notification(Notification.objects.get(pk=note.pk))  # once only

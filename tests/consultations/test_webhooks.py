"""Webhooks: signed deliveries to a real HTTP receiver on loopback, retries and pausing, the SSRF
guard, bad input, what payloads hold, and who may manage a subscription (pages and API)."""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from pydicom.data import get_testdata_file

from consultations import actions, reports
from consultations.models import Notification, WebhookDelivery, WebhookSubscription
from consultations.webhooks import events, log, signing, subscriptions
from consultations.webhooks.tasks import MAX_TRIES

API = "/api/v1/webhooks/"


class Receiver:
    """A webhook receiver on loopback: keeps each request, answers ``status``."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 204
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/teleconsult"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[str]:
        return [request["headers"]["Teleconsult-Event"] for request in self.requests]

    def payloads(self) -> list[dict]:
        return [json.loads(request["body"]) for request in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.TELECONSULT_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.TELECONSULT_WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    server = Receiver()
    yield server
    server.stop()


def practice_of(user):
    return user.memberships.get(role="admin").practice


def subscribe(user, url, events_=("report.signed",), **fields) -> WebhookSubscription:
    practice = fields.pop("practice", practice_of(user))
    return subscriptions.create(user, url=url, events=list(events_), practice_id=practice.pk, **fields)


def sign(consult, specialist, password):
    reports.save_draft(consult, by=specialist, findings="No intracranial haemorrhage.", impression="Normal CT head.")
    return reports.sign_report(consult, by=specialist, password=password)


# -- delivery ----------------------------------------------------------------------------------


def test_report_signed_reaches_the_receiver_signed(
    receiver, physician, accepted, specialist, password, django_capture_on_commit_callbacks
):
    sub = subscribe(physician, receiver.url, ("report.signed", "consult.accepted"))
    with django_capture_on_commit_callbacks(execute=True):
        sign(accepted, specialist, password)

    assert receiver.events() == ["report.signed"]
    request = receiver.requests[0]
    assert request["path"] == "/hooks/teleconsult"
    assert request["headers"]["Content-Type"] == "application/json"
    assert signing.verify(sub.secret, request["body"], request["headers"]["Teleconsult-Signature"])
    assert not signing.verify("whsec_other", request["body"], request["headers"]["Teleconsult-Signature"])
    payload = json.loads(request["body"])
    assert payload["event"] == "report.signed"
    assert payload["id"] == request["headers"]["Teleconsult-Delivery"]
    assert payload["data"]["consult"]["reference"] == f"ServiceRequest/{accepted.pk}"
    assert payload["data"]["report"]["reference"] == f"DiagnosticReport/{accepted.pk}"
    assert payload["data"]["study"]["reference"] == f"ImagingStudy/{accepted.study.study_instance_uid}"
    delivery = WebhookDelivery.objects.get(subscription=sub)
    assert delivery.status == "delivered"
    assert [(a.number, a.status_code) for a in delivery.attempt_log.all()] == [(1, 204)]


def test_signature_outside_the_tolerance_is_refused():
    body = b'{"event":"webhook.test"}'
    old = int(time.time()) - signing.TOLERANCE_SECONDS - 5
    assert not signing.verify("whsec_x", body, signing.header("whsec_x", body, timestamp=old))
    assert signing.verify("whsec_x", body, signing.header("whsec_x", body))
    assert not signing.verify("whsec_x", body + b" ", signing.header("whsec_x", body))
    assert not signing.verify("whsec_x", body, "garbage")


def test_receiver_answering_500_gets_retries_then_the_webhook_is_paused_and_its_owner_told(
    receiver, settings, physician, consult, specialist, django_capture_on_commit_callbacks
):
    settings.TELECONSULT_WEBHOOK_PAUSE_AFTER_FAILURES = 1
    receiver.status = 500
    sub = subscribe(physician, receiver.url, ("consult.accepted",))
    with django_capture_on_commit_callbacks(execute=True):
        actions.accept_consult(consult, by=specialist)

    assert len(receiver.requests) == MAX_TRIES == 8
    assert len({r["headers"]["Teleconsult-Delivery"] for r in receiver.requests}) == 1  # one delivery, retried
    assert len({r["body"] for r in receiver.requests}) == 1
    delivery = WebhookDelivery.objects.get(subscription=sub)
    assert delivery.status == "failed"
    assert [a.status_code for a in delivery.attempt_log.all()] == [500] * 8
    sub.refresh_from_db()
    assert sub.state == "paused"
    assert "HTTP 500" in sub.paused_reason
    note = Notification.objects.get(user=physician, kind="webhook_paused")
    assert note.url == reverse("consultations:webhook", args=[sub.pk])
    assert any(physician.email in m.to and "paused" in m.subject for m in mail.outbox)

    # Paused: the next event is not sent; resumed, it is.
    receiver.status = 204
    consult.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        actions.request_info(consult, by=specialist, question="Prior imaging?")
    assert len(receiver.requests) == 8
    subscriptions.resume(sub)
    assert sub.consecutive_failures == 0
    with django_capture_on_commit_callbacks(execute=True):
        events.send_test(sub)
    assert receiver.events()[-1] == "webhook.test"


def test_failures_below_the_limit_do_not_pause(
    receiver, physician, consult, specialist, django_capture_on_commit_callbacks
):
    receiver.status = 503
    sub = subscribe(physician, receiver.url, ("consult.accepted",))
    with django_capture_on_commit_callbacks(execute=True):
        actions.accept_consult(consult, by=specialist)
    sub.refresh_from_db()
    assert (sub.state, sub.consecutive_failures) == ("active", 1)
    assert not Notification.objects.filter(kind="webhook_paused").exists()


def test_redirects_are_not_followed(receiver, physician, django_capture_on_commit_callbacks):
    receiver.status = 302
    sub = subscribe(physician, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        events.send_test(sub)
    attempts = WebhookDelivery.objects.get(subscription=sub).attempt_log.all()
    assert attempts[0].status_code == 302 and "redirects are not followed" in attempts[0].error


def test_study_received_after_ingest(receiver, physician, django_capture_on_commit_callbacks):
    from studies.ingest import ingest_files

    subscribe(physician, receiver.url, ("study.received",))
    data = open(get_testdata_file("CT_small.dcm"), "rb").read()  # noqa: SIM115
    with django_capture_on_commit_callbacks(execute=True):
        results = ingest_files([("ct.dcm", io.BytesIO(data))], user=physician)
    assert results[0].status == "stored"
    with django_capture_on_commit_callbacks(execute=True):  # the same instance again: no new study
        ingest_files([("ct.dcm", io.BytesIO(data))], user=physician)
    assert receiver.events() == ["study.received"]
    payload = receiver.payloads()[0]
    assert payload["data"]["study"]["reference"].startswith("ImagingStudy/1.")
    assert payload["data"]["study"]["num_instances"] == 1


def test_only_the_studys_practice_and_global_subscriptions_are_told(
    receiver, physician, outsider, admin_user, consult, specialist, django_capture_on_commit_callbacks
):
    mine = subscribe(physician, receiver.url + "?mine", ("consult.accepted",))
    theirs = subscribe(outsider, receiver.url + "?theirs", ("consult.accepted",))
    everyone = subscriptions.create(admin_user, url=receiver.url + "?global", events=["consult.accepted"])
    not_asked = subscribe(physician, receiver.url + "?other-event", ("report.signed",))
    with django_capture_on_commit_callbacks(execute=True):
        actions.accept_consult(consult, by=specialist)
    assert sorted(r["path"] for r in receiver.requests) == ["/hooks/teleconsult?global", "/hooks/teleconsult?mine"]
    assert {s.pk for s in (mine, everyone)} == set(WebhookDelivery.objects.values_list("subscription", flat=True))
    assert not WebhookDelivery.objects.filter(subscription__in=[theirs, not_asked]).exists()


def test_consult_created_is_sent_on_the_first_submission_only(
    receiver, physician, draft, specialist, django_capture_on_commit_callbacks
):
    subscribe(physician, receiver.url, ("consult.created",))
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(draft, by=physician)
    assert receiver.events() == ["consult.created"]
    assert receiver.payloads()[0]["data"]["consult"] == {
        "id": draft.pk,
        "reference": f"ServiceRequest/{draft.pk}",
        "state": "submitted",
        "priority": "routine",
        "specialty": "neuroradiology",
    }


# -- payloads ----------------------------------------------------------------------------------


def test_payloads_hold_no_patient_name_or_id_unless_the_resource_is_included(
    receiver, physician, consult, specialist, django_capture_on_commit_callbacks
):
    patient = consult.study.patient
    subscribe(physician, receiver.url + "?plain", ("consult.accepted",))
    subscribe(physician, receiver.url + "?full", ("consult.accepted",), include_resource=True)
    with django_capture_on_commit_callbacks(execute=True):
        actions.accept_consult(consult, by=specialist)
    bodies = {r["path"].split("?")[1]: r["body"].decode() for r in receiver.requests}
    for secret in (patient.display_name, patient.name, patient.patient_id, "Doe", "Jane"):
        assert secret not in bodies["plain"]
    assert "resource" not in json.loads(bodies["plain"])
    full = json.loads(bodies["full"])
    assert full["resource"]["consult"]["study"]["patient_name"] == patient.display_name
    assert full["resource"]["consult"]["question"] == consult.question


def test_included_resource_is_withheld_from_a_maker_who_may_not_see_it(
    receiver, physician, admin_user, consult, specialist, django_capture_on_commit_callbacks
):
    # A practice admin who is not on the consult's care team does not get it through the webhook either.
    practice = practice_of(physician)
    sub = subscribe(physician, receiver.url, ("consult.accepted",), include_resource=True)
    practice.memberships.filter(user=physician).update(role="clinician")
    with django_capture_on_commit_callbacks(execute=True):
        actions.accept_consult(consult, by=specialist)
    payload = receiver.payloads()[0]
    assert payload["resource"] is None and "no longer manages" in payload["resource_withheld"]
    assert sub.pk


# -- the SSRF guard and bad input --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "https://10.0.0.5/hook",
        "https://192.168.1.20/hook",
        "http://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "https://100.64.0.1/hook",
    ],
)
def test_ssrf_guard_refuses_private_addresses(auth_client, physician, url):
    response = auth_client(physician).post(
        API, {"url": url, "events": ["report.signed"], "practice": practice_of(physician).pk}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "webhook_url_not_public"
    assert response.json()["field"] == "url"
    assert "public addresses" in response.json()["detail"]
    assert not WebhookSubscription.objects.exists()


def test_ssrf_guard_is_checked_again_before_each_try(receiver, settings, physician, django_capture_on_commit_callbacks):
    sub = subscribe(physician, receiver.url)
    settings.TELECONSULT_WEBHOOK_ALLOWED_NETWORKS = []
    with django_capture_on_commit_callbacks(execute=True):
        events.send_test(sub)
    assert receiver.requests == []
    attempt = WebhookDelivery.objects.get(subscription=sub).attempt_log.first()
    assert attempt.status_code is None and "loopback" in attempt.error


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"url": "not-a-url"}, "url", "not a URL"),
        ({"url": "https://8.8.8.8/a b"}, "url", "may not contain spaces"),
        ({"url": "ftp://files.example.org/hook"}, "url", "ftp: URLs are not accepted"),
        ({"url": "https://user:pw@8.8.8.8/hook"}, "url", "no user name or password"),
        ({"url": ""}, "url", "may not be blank"),
        ({"events": ["consult.exploded"]}, "events", "Unknown event 'consult.exploded'"),
        ({"events": []}, "events", "at least one"),
        ({"events": "report.signed"}, "events", "list"),
        ({"practice": 999999}, "practice", "that you administer"),
        ({"practice": None}, "practice", "Choose the practice"),
    ],
)
def test_bad_input_is_a_clear_400(auth_client, physician, body, field, words):
    data = {"url": "https://8.8.8.8/hook", "events": ["report.signed"], "practice": practice_of(physician).pk}
    data.update(body)
    response = auth_client(physician).post(API, data, format="json")
    assert response.status_code == 400, response.content
    answer = response.json()
    message = answer.get("detail", "") if answer.get("field") == field else json.dumps(answer.get(field))
    assert words in message, answer
    assert not WebhookSubscription.objects.exists()


def test_http_is_refused_outside_debug(auth_client, settings, physician):
    settings.DEBUG = False
    response = auth_client(physician).post(
        API, {"url": "http://8.8.8.8/hook", "events": ["report.signed"], "practice": practice_of(physician).pk}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "webhook_url_not_https"


def test_another_practices_id_reads_as_unknown(auth_client, physician, outsider):
    response = auth_client(physician).post(
        API, {"url": "https://8.8.8.8/", "events": ["report.signed"], "practice": practice_of(outsider).pk}
    )
    assert response.status_code == 400 and "that you administer" in response.json()["detail"]


# -- the REST API -----------------------------------------------------------------------------


def test_api_create_shows_the_secret_once_and_rotates_it(auth_client, physician):
    client = auth_client(physician)
    response = client.post(
        API,
        {
            "url": "https://8.8.8.8/hook",
            "events": ["report.signed", "study.received"],
            "practice": practice_of(physician).pk,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("whsec_") and created["state"] == "active"
    assert created["events"] == ["report.signed", "study.received"]
    detail = client.get(f"{API}{created['id']}/").json()
    assert "secret" not in detail and detail["secret_hint"].endswith(created["secret"][-4:])
    assert [row["id"] for row in client.get(API).json()["results"]] == [created["id"]]
    rotated = client.post(f"{API}{created['id']}/rotate-secret/").json()
    assert rotated["secret"] != created["secret"]
    assert client.post(f"{API}{created['id']}/pause/").json()["state"] == "paused"
    assert client.post(f"{API}{created['id']}/resume/").json()["state"] == "active"
    patched = client.patch(
        f"{API}{created['id']}/", {"include_resource": True, "events": ["report.amended"]}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["events"] == ["report.amended"]
    bad = client.patch(f"{API}{created['id']}/", {"url": "https://10.1.1.1/"}, format="json")
    assert bad.status_code == 400
    assert client.delete(f"{API}{created['id']}/").status_code == 204


def test_api_test_event_and_delivery_log(auth_client, receiver, physician, django_capture_on_commit_callbacks):
    sub = subscribe(physician, receiver.url)
    client = auth_client(physician)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{API}{sub.pk}/test/")
    assert response.status_code == 202
    log_rows = client.get(f"{API}{sub.pk}/deliveries/").json()
    assert log_rows[0]["id"] == response.json()["delivery"] == receiver.requests[0]["headers"]["Teleconsult-Delivery"]
    assert log_rows[0]["status"] == "delivered"
    assert log_rows[0]["attempts"][0]["status_code"] == 204


def test_administrators_make_global_webhooks_and_practice_admins_may_not(auth_client, admin_user, physician):
    body = {"url": "https://8.8.8.8/", "events": ["report.signed"], "practice": None}
    assert auth_client(admin_user).post(API, body, format="json").status_code == 201
    assert auth_client(physician).post(API, body, format="json").status_code == 400
    assert auth_client(physician).get(API).json()["results"] == []


def test_outsider_gets_404_for_a_webhooks_page_api_and_log(client, auth_client, physician, outsider):
    sub = subscribe(physician, "https://8.8.8.8/hook")
    api = auth_client(outsider)
    assert api.get(f"{API}{sub.pk}/").status_code == 404
    assert api.get(f"{API}{sub.pk}/deliveries/").status_code == 404
    for action in ("pause", "resume", "rotate-secret", "test"):
        assert api.post(f"{API}{sub.pk}/{action}/").status_code == 404
    assert api.patch(f"{API}{sub.pk}/", {"url": "https://8.8.4.4/"}, format="json").status_code == 404
    assert api.delete(f"{API}{sub.pk}/").status_code == 404
    assert api.get(API).json()["results"] == []
    client.force_login(outsider)
    assert client.get(reverse("consultations:webhook", args=[sub.pk])).status_code == 404
    for action in ("pause", "resume", "rotate", "test", "delete"):
        assert client.post(reverse("consultations:webhook-action", args=[sub.pk, action])).status_code == 404
    assert (
        client.post(reverse("consultations:webhook-edit", args=[sub.pk]), {"url": "https://8.8.4.4/"}).status_code
        == 404
    )
    sub.refresh_from_db()
    assert sub.url == "https://8.8.8.8/hook" and sub.state == "active"


def test_clinicians_who_administer_nothing_and_patients_get_404(
    client, auth_client, physician, patient_user, colleague
):
    practice_of(colleague).memberships.filter(user=colleague).update(role="clinician")
    for user in (patient_user, colleague):
        client.force_login(user)
        assert client.get(reverse("consultations:webhooks")).status_code == 404
        assert auth_client(user).get(API).status_code == 404


# -- pages -------------------------------------------------------------------------------------


def test_practice_admin_reaches_webhooks_from_the_menu_and_manages_one(
    client, receiver, physician, django_capture_on_commit_callbacks
):
    client.force_login(physician)
    home = client.get("/").content.decode()
    assert reverse("consultations:webhooks") in home
    page = client.get(reverse("consultations:webhooks"))
    assert page.status_code == 200 and "Add a webhook" in page.content.decode()
    response = client.post(
        reverse("consultations:webhook-create"),
        {"url": receiver.url, "events": ["report.signed"], "practice": practice_of(physician).pk, "description": "EHR"},
    )
    sub = WebhookSubscription.objects.get()
    assert response.url == reverse("consultations:webhook", args=[sub.pk])
    first = client.get(response.url).content.decode()
    assert sub.secret in first and "shown this once" in first
    assert sub.secret not in client.get(response.url).content.decode()  # once only

    client.post(reverse("consultations:webhook-action", args=[sub.pk, "rotate"]))
    old = sub.secret
    sub.refresh_from_db()
    assert sub.secret != old and sub.secret in client.get(response.url).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("consultations:webhook-action", args=[sub.pk, "test"]))
    page = client.get(response.url).content.decode()
    assert "webhook.test" in page and "HTTP 204" in page

    client.post(reverse("consultations:webhook-action", args=[sub.pk, "pause"]))
    sub.refresh_from_db()
    assert sub.state == "paused" and "Resume" in client.get(response.url).content.decode()
    client.post(reverse("consultations:webhook-action", args=[sub.pk, "resume"]))
    sub.refresh_from_db()
    assert sub.state == "active"

    client.post(
        reverse("consultations:webhook-edit", args=[sub.pk]),
        {"url": receiver.url, "events": ["report.signed", "report.amended"], "include_resource": "on"},
    )
    sub.refresh_from_db()
    assert sub.events == ["report.signed", "report.amended"] and sub.include_resource


def test_page_refusals_are_flashed_not_500(client, physician):
    client.force_login(physician)
    response = client.post(
        reverse("consultations:webhook-create"),
        {"url": "https://169.254.169.254/", "events": ["report.signed"], "practice": practice_of(physician).pk},
        follow=True,
    )
    assert response.status_code == 200
    assert "link-local" in response.content.decode()
    response = client.post(
        reverse("consultations:webhook-create"),
        {"url": "https://8.8.8.8/", "events": ["nope"], "practice": practice_of(physician).pk},
        follow=True,
    )
    assert "Events:" in response.content.decode()
    assert not WebhookSubscription.objects.exists()


def test_menu_has_webhooks_for_admins_only(client, physician, admin_user, colleague):
    practice_of(colleague).memberships.filter(user=colleague).update(role="clinician")
    url = reverse("consultations:webhooks")
    for user, shown in ((physician, True), (admin_user, True), (colleague, False)):
        client.force_login(user)
        assert (f'href="{url}"' in client.get("/").content.decode()) is shown


# -- the log's bound ---------------------------------------------------------------------------


def test_delivery_log_keeps_the_last_200_of_30_days(physician):
    sub = subscribe(physician, "https://8.8.8.8/hook")
    now = timezone.now()
    old = WebhookDelivery.objects.create(
        subscription=sub, event="webhook.test", body="{}", created_at=now - timedelta(days=31)
    )
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(subscription=sub, event="webhook.test", body="{}", created_at=now - timedelta(minutes=i))
        for i in range(205)
    )
    log.prune(sub)
    kept = WebhookDelivery.objects.filter(subscription=sub)
    assert kept.count() == 200
    assert not kept.filter(pk=old.pk).exists()
    assert kept.order_by("created_at").first().created_at == now - timedelta(minutes=199)

"""Webhooks through the real pieces: a report signed on a real daphne, the event fanned out and
delivered by a real Celery worker on Redis, to a receiver on loopback that checks the signature."""

from __future__ import annotations

import json
import time

import pytest
import requests

from consultations import actions
from consultations.webhooks import signing
from tests.consultations.test_webhooks import Receiver
from tests.factories import ConsultFactory, make_study

pytestmark = pytest.mark.integration

WEBHOOK_ENV = {"TELECONSULT_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", "TELECONSULT_WEBHOOK_ALLOW_HTTP_LOOPBACK": "1"}


def _token(server, user, password) -> dict[str, str]:
    answer = requests.post(
        f"{server.url}/api/v1/auth/token/", json={"email": user.email, "password": password}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Token {answer.json()['token']}"}


@pytest.mark.django_db(transaction=True)
def test_report_signed_on_daphne_is_delivered_signed_by_a_real_worker(
    redis_url, daphne_factory, celery_worker_factory, live_user, password
):
    receiver = Receiver()
    try:
        worker = celery_worker_factory(wait=False, **WEBHOOK_ENV)
        server = daphne_factory(**WEBHOOK_ENV)
        physician = live_user("physician", email="hooks-owner@example.com")
        specialist = live_user("specialist", email="hooks-reader@example.com")
        consult = ConsultFactory(requester=physician, study=make_study(uploader=physician))
        actions.submit_consult(consult, by=physician)
        actions.accept_consult(consult, by=specialist)

        owner = _token(server, physician, password)
        practice = physician.memberships.get(role="admin").practice_id
        made = requests.post(
            f"{server.url}/api/v1/webhooks/",
            json={"url": receiver.url, "events": ["report.signed"], "practice": practice},
            headers=owner,
            timeout=30,
        )
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]

        reader = _token(server, specialist, password)
        draft = {"findings": "No intracranial haemorrhage.", "impression": "Normal CT head."}
        saved = requests.put(
            f"{server.url}/api/v1/consults/{consult.pk}/report/", json=draft, headers=reader, timeout=30
        )
        assert saved.status_code == 200, saved.text
        signed = requests.post(
            f"{server.url}/api/v1/consults/{consult.pk}/report/sign/",
            json={"password": password},
            headers=reader,
            timeout=30,
        )
        assert signed.status_code == 200, signed.text

        deadline = time.monotonic() + 60
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.2)
        assert receiver.events() == ["report.signed"], worker.log()[-2000:]
        request = receiver.requests[0]
        assert signing.verify(secret, request["body"], request["headers"]["Teleconsult-Signature"])
        assert json.loads(request["body"])["data"]["consult"]["reference"] == f"ServiceRequest/{consult.pk}"

        log = requests.get(f"{server.url}/api/v1/webhooks/{made.json()['id']}/deliveries/", headers=owner, timeout=30)
        assert log.json()[0]["status"] == "delivered"
        assert log.json()[0]["id"] == request["headers"]["Teleconsult-Delivery"]
        assert worker.stop() == 0
        assert "consultations.webhooks.tasks.deliver" in worker.log()
    finally:
        receiver.stop()

"""The real services: Redis channel layer, daphne on the test database, a Celery worker delivering mail."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
import uuid

import pytest
import requests
from asgiref.sync import async_to_sync

pytestmark = pytest.mark.integration


def test_channel_layer_round_trips_a_group_message_through_redis(redis_url):
    from channels_redis.pubsub import RedisPubSubChannelLayer

    prefix = f"test-{uuid.uuid4().hex}"
    # Two layers on one Redis, as two daphne processes would have.
    receiver_layer = RedisPubSubChannelLayer(hosts=[redis_url], prefix=prefix)
    sender_layer = RedisPubSubChannelLayer(hosts=[redis_url], prefix=prefix)

    async def round_trip():
        try:
            channel = await receiver_layer.new_channel()
            await receiver_layer.group_add("consult-1", channel)
            await sender_layer.group_send("consult-1", {"type": "chat.message", "text": "Bonjour"})
            received = await receiver_layer.receive(channel)
            await receiver_layer.group_discard("consult-1", channel)
            return received
        finally:
            await receiver_layer.flush()
            await sender_layer.flush()

    assert async_to_sync(round_trip)() == {"type": "chat.message", "text": "Bonjour"}


@pytest.mark.django_db(transaction=True)
def test_live_server_sees_rows_the_test_committed(live_server_url, live_user, password):
    user = live_user("specialist", email="live@example.com")

    response = requests.post(
        f"{live_server_url}/api/v1/auth/token/", json={"email": user.email, "password": password}, timeout=30
    )

    assert response.status_code == 200, response.text
    me = requests.get(
        f"{live_server_url}/api/v1/me/", headers={"Authorization": f"Token {response.json()['token']}"}, timeout=30
    )
    assert me.json()["role"] == "specialist"


def sign_up(base_url: str, email: str) -> requests.Response:
    session = requests.Session()
    form = session.get(f"{base_url}/accounts/signup/", timeout=30)
    assert form.status_code == 200, form.text[:500]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    return session.post(
        f"{base_url}/accounts/signup/",
        data={
            "csrfmiddlewaretoken": token,
            "email": email,
            "name": "Robin Patient",
            "role": "patient",
            "password1": "a-long-unusual-passphrase-42",
            "password2": "a-long-unusual-passphrase-42",
        },
        headers={"Referer": f"{base_url}/accounts/signup/"},
        timeout=30,
    )


@pytest.mark.django_db(transaction=True)
def test_confirmation_email_queued_by_daphne_is_sent_by_a_real_celery_worker(
    redis_url, daphne_factory, celery_worker_factory, service_environment
):
    # Both start side by side; the task waits in Redis until the worker is up.
    worker = celery_worker_factory(wait=False)
    server = daphne_factory()

    response = sign_up(server.url, "robin@example.com")

    assert response.status_code == 200, response.text[:500]
    message = service_environment.outbox.wait_for("robin@example.com", subject="confirm", timeout=60)
    assert any("/accounts/confirm-email/" in link for link in service_environment.outbox.links(message))
    assert worker.stop() == 0
    assert "teleconsult.mail.send_email" in worker.log()
    assert "succeeded" in worker.log()


@pytest.mark.django_db(transaction=True)
def test_two_daphnes_share_redis_and_one_restarts(redis_url, daphne_factory, live_user, password):
    first, second = daphne_factory(wait=False), daphne_factory(wait=False)
    first.wait_ready()
    second.wait_ready()
    user = live_user(email="shared@example.com")

    token = requests.post(
        f"{first.url}/api/v1/auth/token/", json={"email": user.email, "password": password}, timeout=30
    ).json()["token"]
    second.restart()

    me = requests.get(f"{second.url}/api/v1/me/", headers={"Authorization": f"Token {token}"}, timeout=30)
    assert me.status_code == 200
    assert me.json()["email"] == "shared@example.com"
    assert first.running and second.running


@pytest.mark.django_db(transaction=True)
def test_instances_stored_over_stow_get_thumbnails_from_a_real_celery_worker(
    redis_url, daphne_factory, celery_worker_factory, live_user, password
):
    from bench.ingest import multipart
    from studies.models import Instance
    from tests.studies import dicom_factory

    worker = celery_worker_factory(wait=False)
    # The daphne checks the files on two checking processes, as a production server does.
    server = daphne_factory(TELECONSULT_INGEST_PROCESSES="2")
    user = live_user(email="stow@example.com")
    token = requests.post(
        f"{server.url}/api/v1/auth/token/", json={"email": user.email, "password": password}, timeout=30
    ).json()["token"]
    files = [dicom_factory.make_ct(), dicom_factory.make_ct(), dicom_factory.make_mr()]
    body, content_type = multipart(files)

    answer = requests.post(
        f"{server.url}/dicomweb/studies",
        data=body,
        headers={"Authorization": f"Token {token}", "Content-Type": content_type},
        timeout=60,
    )

    assert answer.status_code == 200, answer.text[:500]
    assert len(answer.json()["00081199"]["Value"]) == 3
    deadline = time.monotonic() + 60
    while Instance.objects.filter(status=Instance.Status.PENDING).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    instances = list(Instance.objects.all())
    assert len(instances) == 3
    assert {instance.status for instance in instances} == {Instance.Status.READY}, worker.log()[-2000:]
    assert all(instance.thumbnail for instance in instances)
    assert worker.stop() == 0
    # One message for the request, fanned out by the worker into one render per instance.
    assert worker.log().count("studies.tasks.render_instances") >= 1
    assert worker.log().count("studies.tasks.render_instance[") >= 3
    # Killed outright, the daphne cannot stop its checking processes: they end themselves.
    checking = _descendants(server.pid)
    assert len(checking) >= 3, checking  # the forkserver and two checking processes (and a resource tracker)
    os.kill(server.pid, signal.SIGKILL)
    server.process.wait(10)
    deadline = time.monotonic() + 15
    while [pid for pid in checking if _running(pid)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in checking if _running(pid)] == []


@pytest.mark.django_db(transaction=True)
def test_a_stow_body_larger_than_the_servers_read_ahead_and_a_malformed_one_over_real_http(
    daphne_factory, service_environment, live_user, password
):
    """daphne receives the body into a file and hands it over a piece at a time as the server asks
    (teleconsult.bodies); the server splits it as it comes (studies.dicomweb.stow_body), holding at
    most 8 MB unread: the daphne's memory does not grow with the body."""
    from bench.ingest import multipart
    from studies.models import Instance
    from tests.studies import dicom_factory

    server = daphne_factory()
    user = live_user(email="stow-large@example.com")
    token = requests.post(
        f"{server.url}/api/v1/auth/token/", json={"email": user.email, "password": password}, timeout=30
    ).json()["token"]
    files = [dicom_factory.make_multiframe(frames=8, rows=512, columns=512) for _ in range(12)]  # 4 MB each
    body, content_type = multipart(files)
    assert len(body) > 48 * 1024 * 1024
    headers = {"Authorization": f"Token {token}", "Content-Type": content_type}
    # A first store, so what any upload loads once is loaded before the peak is read.
    warm_up, warm_up_type = multipart(files[:1])
    answer = requests.post(
        f"{server.url}/dicomweb/studies", data=warm_up, headers={**headers, "Content-Type": warm_up_type}, timeout=120
    )
    assert answer.status_code == 200, answer.text[:500]
    Instance.objects.all().delete()
    peak_before = _peak_memory(server.pid)

    answer = requests.post(f"{server.url}/dicomweb/studies", data=body, headers=headers, timeout=120)
    assert answer.status_code == 200, answer.text[:500]
    assert len(answer.json()["00081199"]["Value"]) == 12
    assert Instance.objects.count() == 12
    grown = _peak_memory(server.pid) - peak_before
    assert grown < 32 * 1024 * 1024, (
        f"the daphne's peak memory grew by {grown >> 20} MB for a {len(body) >> 20} MB body"
    )
    assert all(
        instance.size == len(data) for instance, data in zip(Instance.objects.order_by("pk"), files, strict=True)
    )

    cut = body[: len(body) // 2]  # no closing boundary
    answer = requests.post(f"{server.url}/dicomweb/studies", data=cut, headers=headers, timeout=120)
    assert answer.status_code == 400
    assert "Malformed multipart body" in answer.json()["detail"]
    assert Instance.objects.count() == 12
    # The request's directory goes once the answer is sent.
    incoming = service_environment.data_dir / "media" / ".incoming"
    deadline = time.monotonic() + 10
    while [name for name in os.listdir(incoming) if name.startswith("request-")] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [name for name in os.listdir(incoming) if name.startswith("request-")] == []


@pytest.mark.django_db(transaction=True)
def test_a_large_form_upload_from_anyone_is_refused_without_the_daphne_holding_it(daphne_factory):
    """Twisted would parse a multipart/form-data body into memory (several times its size) before
    any view could refuse it; daphne here leaves that to Django, which refuses the anonymous upload
    while the body waits on disk."""
    server = daphne_factory()
    session = requests.Session()
    assert session.get(f"{server.url}/accounts/login/", timeout=30).status_code == 200
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.dcm"\r\n'
            "Content-Type: application/dicom\r\n\r\n"
        ).encode()
        + bytes(40 * 1024 * 1024)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    peak_before = _peak_memory(server.pid)

    answer = session.post(
        f"{server.url}/api/v1/uploads/",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=120,
    )

    assert answer.status_code == 401
    grown = _peak_memory(server.pid) - peak_before
    assert grown < 24 * 1024 * 1024, (
        f"the daphne's peak memory grew by {grown >> 20} MB for a {len(body) >> 20} MB body"
    )
    assert session.get(f"{server.url}/accounts/login/", timeout=30).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_large_study_retrieved_by_a_slow_client_does_not_pile_up_in_the_daphne(daphne_factory, live_user, password):
    """Django would read a streamed response whole into a list before sending it under ASGI, and
    daphne would buffer whatever the client has not taken yet: the retrieve goes a batch at a time
    (teleconsult.responses), each held back while the client is slow (teleconsult.bodies)."""
    from tests.studies import dicom_factory

    server = daphne_factory()
    study_uid = "1.2.826.0.1.3680043.8.498.77"
    files = [
        dicom_factory.make_multiframe(frames=40, rows=512, columns=512, StudyInstanceUID=study_uid) for _ in range(3)
    ]  # 20 MB each
    token, auth = _stored_over_stow(server, live_user(email="retrieve-large@example.com"), password, files)
    accept = {"Accept": 'multipart/related; type="application/dicom"'}
    warm_up = requests.get(f"{server.url}/dicomweb/studies/{study_uid}", headers={**auth, **accept}, timeout=120)
    assert warm_up.status_code == 200 and len(warm_up.content) > sum(len(data) for data in files)
    peak_before = _peak_memory(server.pid)

    with requests.get(
        f"{server.url}/dicomweb/studies/{study_uid}", headers={**auth, **accept}, stream=True, timeout=120
    ) as answer:
        assert answer.status_code == 200
        pieces = answer.iter_content(256 * 1024)
        received = len(next(pieces))
        time.sleep(1.5)  # a slow client: the server could have sent all of it meanwhile
        grown_while_waiting = _peak_memory(server.pid) - peak_before
        received += sum(len(piece) for piece in pieces)

    assert received == len(warm_up.content)
    grown = _peak_memory(server.pid) - peak_before
    assert max(grown, grown_while_waiting) < 24 * 1024 * 1024, (
        f"the daphne's peak memory grew by {grown >> 20} MB for a {received >> 20} MB retrieve"
    )

    # HEAD of the same retrieve (a response of many pieces): the headers and nothing after them,
    # which a client on the same connection would read as the next response.
    host, port = server.url.split("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(
            f"HEAD /dicomweb/studies/{study_uid} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Token {token}\r\n"
            f"Accept: {accept['Accept']}\r\n\r\n".encode()
        )
        answer_bytes = b""
        raw.settimeout(2)
        with contextlib.suppress(TimeoutError):
            while piece := raw.recv(1 << 20):
                answer_bytes += piece
    headers_part, _, after = answer_bytes.partition(b"\r\n\r\n")
    assert headers_part.startswith(b"HTTP/1.1 200")
    assert after == b"", f"{len(after)} bytes of body sent after the headers of a HEAD answer"


@pytest.mark.django_db(transaction=True)
def test_a_download_failing_halfway_ends_the_connection_and_the_server_serves_on(
    daphne_factory, live_user, password, service_environment
):
    """A stored file gone missing under a retrieve: the client gets an incomplete answer at once,
    not a wait for the rest, and daphne's error page never runs on the started response."""
    from studies.models import Instance
    from tests.studies import dicom_factory

    server = daphne_factory()
    study_uid = "1.2.826.0.1.3680043.8.498.78"
    files = [
        dicom_factory.make_multiframe(frames=8, rows=512, columns=512, StudyInstanceUID=study_uid) for _ in range(2)
    ]
    _token, auth = _stored_over_stow(server, live_user(email="retrieve-broken@example.com"), password, files)
    last = Instance.objects.order_by("series__series_number", "series_id", "instance_number", "pk").last()
    os.remove(service_environment.data_dir / "media" / last.file.name)

    began = time.monotonic()
    answer = requests.get(
        f"{server.url}/dicomweb/studies/{study_uid}",
        headers={**auth, "Accept": 'multipart/related; type="application/dicom"'},
        stream=True,
        timeout=30,
    )
    assert answer.status_code == 200
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for _piece in answer.iter_content(1 << 20):
            pass
    assert time.monotonic() - began < 15

    assert requests.get(f"{server.url}/dicomweb/studies/{study_uid}/metadata", headers=auth, timeout=30).ok
    assert "failed after its response started" in server.log()
    assert "HTTP response has already been started" not in server.log()


def _stored_over_stow(server, user, password: str, files: list[bytes]) -> tuple[str, dict[str, str]]:
    """``files`` stored through ``server`` by ``user``; the user's API token and its header."""
    from bench.ingest import multipart

    token = requests.post(
        f"{server.url}/api/v1/auth/token/", json={"email": user.email, "password": password}, timeout=30
    ).json()["token"]
    auth = {"Authorization": f"Token {token}"}
    body, content_type = multipart(files)
    stored = requests.post(
        f"{server.url}/dicomweb/studies", data=body, headers={**auth, "Content-Type": content_type}, timeout=120
    )
    assert stored.status_code == 200, stored.text[:500]
    return token, auth


def _peak_memory(pid: int) -> int:
    """The peak resident memory of process ``pid`` so far, in bytes (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def _descendants(pid: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])  # noqa: SIM115
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie left for a parent that does not reap it has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

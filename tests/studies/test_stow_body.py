"""STOW-RS bodies split into parts as they arrive, in front of Django (studies.dicomweb.stow_body), through
the whole ASGI application as daphne runs it."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator

from studies.dicomweb import stow_body
from studies.models import Instance
from teleconsult.asgi import application
from tests.studies.test_dicomweb_helpers import make_dataset, to_bytes, token_for

pytestmark = pytest.mark.django_db(transaction=True)

BOUNDARY = "b0undary-77"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'.encode()


def multipart(*parts: bytes) -> bytes:
    body = b"".join(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n" for p in parts)
    return body + f"--{BOUNDARY}--\r\n".encode()


def scope(token: str | None, content_type: bytes = STOW_TYPE, length: int | None = None, path="/dicomweb/studies"):
    headers = [(b"host", b"testserver"), (b"content-type", content_type)]
    if token:
        headers.append((b"authorization", f"Token {token}".encode()))
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }


@async_to_sync
async def post(token, body: bytes, *, piece: int = 8192, content_type: bytes = STOW_TYPE, declare_length=True):
    """Send ``body`` in pieces of ``piece`` bytes, as daphne does; (status, JSON or text)."""
    length = len(body) if declare_length else None
    communicator = ApplicationCommunicator(application, scope(token, content_type, length))
    pieces = [body[i : i + piece] for i in range(0, len(body), piece)] or [b""]
    for number, chunk in enumerate(pieces, start=1):
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": number < len(pieces)})
    start = await communicator.receive_output(30)
    content = b""
    while True:
        message = await communicator.receive_output(30)
        content += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(5)
    try:
        return start["status"], json.loads(content)
    except ValueError:
        return start["status"], content.decode()


@pytest.fixture
def split_here(monkeypatch):
    """Counts bodies split by studies.dicomweb.stow_body (rather than by the view from Django's body)."""
    calls = []
    real = stow_body._split

    def counted(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(stow_body, "_split", counted)
    return calls


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path / "media"


def test_a_body_in_small_pieces_is_split_as_it_arrives_and_stored(physician, split_here, media):
    datasets = [make_dataset() for _ in range(3)]
    status, answer = post(token_for(physician), multipart(*map(to_bytes, datasets)), piece=1000)
    assert status == 200, answer
    assert len(answer["00081199"]["Value"]) == 3
    assert len(split_here) == 1
    assert Instance.objects.filter(sop_instance_uid__in=[ds.SOPInstanceUID for ds in datasets]).count() == 3
    assert os.listdir(media / ".incoming") == []  # the request's directory is gone


def test_a_body_larger_than_what_the_loop_holds_waits_for_the_splitting_thread(
    physician, split_here, media, monkeypatch
):
    monkeypatch.setattr(stow_body, "HIGH_WATER", 16 * 1024)
    monkeypatch.setattr(stow_body, "READ_SIZE", 4096)
    datasets = [make_dataset(rows=256, columns=256) for _ in range(4)]  # 128 KB of pixels each
    status, answer = post(token_for(physician), multipart(*map(to_bytes, datasets)), piece=4096)
    assert status == 200, answer
    assert len(answer["00081199"]["Value"]) == 4


def test_a_malformed_body_is_400_with_its_reason_after_authentication(physician, split_here, media):
    status, answer = post(token_for(physician), b"--" + BOUNDARY.encode() + b"\r\nno end")
    assert status == 400
    assert "Malformed multipart body" in answer["detail"]
    status, answer = post(None, b"--" + BOUNDARY.encode() + b"\r\nno end")
    assert status == 401  # who asks is checked before what they sent
    assert len(split_here) == 2
    assert os.listdir(media / ".incoming") == []


def test_a_body_over_the_limit_without_a_declared_length_is_413(physician, split_here, media, settings):
    settings.TELECONSULT_MAX_REQUEST_SIZE = 50_000
    body = multipart(*(to_bytes(make_dataset(rows=128, columns=128)) for _ in range(3)))
    status, answer = post(token_for(physician), body, declare_length=False)
    assert status == 413
    assert "larger than the limit" in answer["detail"]
    assert not Instance.objects.exists()


def test_requests_the_view_refuses_unread_go_to_django_unchanged(physician, split_here, media, settings):
    status, _answer = post(token_for(physician), b"{}", content_type=b"application/json")
    assert status == 415
    settings.TELECONSULT_MAX_REQUEST_SIZE = 10
    status, _answer = post(token_for(physician), multipart(b"x" * 100))
    assert status == 413
    assert split_here == []


def test_other_routes_are_not_touched(physician, split_here):
    assert stow_body.stow_boundary(scope("t", path="/api/v1/uploads/")) is None
    assert stow_body.stow_boundary(scope("t", path="/dicomweb/studies/1.2.3")) == BOUNDARY
    assert stow_body.stow_boundary({**scope("t"), "method": "GET"}) is None


@async_to_sync
async def _disconnect_midway(token: str) -> ApplicationCommunicator:
    communicator = ApplicationCommunicator(application, scope(token, length=10_000))
    await communicator.send_input({"type": "http.request", "body": b"--" + BOUNDARY.encode(), "more_body": True})
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(10)
    assert await communicator.receive_nothing()


def test_a_client_that_leaves_midway_gets_nothing_and_leaves_nothing(physician, media):
    _disconnect_midway(token_for(physician))
    assert os.listdir(media / ".incoming") == []
    assert not Instance.objects.exists()


def test_the_stream_hands_the_reader_what_it_asked_for_and_the_rest_at_the_end():
    async def scenario():
        stream = stow_body._FedStream(asyncio.get_running_loop())
        reads = []
        reader = threading.Thread(target=lambda: reads.extend([stream.read(5), stream.read(5), stream.read(5)]))
        reader.start()
        for piece in (b"ab", b"cde", b"fghij", b"kl"):
            await stream.put(piece)
        stream.end()
        await asyncio.get_running_loop().run_in_executor(None, reader.join)
        return reads

    assert async_to_sync(scenario)() == [b"abcde", b"fghij", b"kl"]


@async_to_sync
async def _cancelled_midway(token: str) -> None:
    communicator = ApplicationCommunicator(application, scope(token, length=10_000))
    await communicator.send_input({"type": "http.request", "body": b"--" + BOUNDARY.encode(), "more_body": True})
    await communicator.wait(0.5)  # the rest never comes: the application is cancelled, as daphne does
    assert communicator.future.cancelled()


def test_a_request_cancelled_midway_releases_its_splitting_thread_and_leaves_nothing(physician, media, monkeypatch):
    over = threading.Event()
    real = stow_body._split

    def split(*args):
        try:
            return real(*args)
        finally:
            over.set()

    monkeypatch.setattr(stow_body, "_split", split)
    _cancelled_midway(token_for(physician))
    assert over.wait(10), "the splitting thread still waits for a body that will never come"
    for _ in range(100):
        if not os.listdir(media / ".incoming"):
            break
        time.sleep(0.05)
    assert os.listdir(media / ".incoming") == []

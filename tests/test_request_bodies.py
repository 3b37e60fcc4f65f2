"""Request bodies handed from daphne's file a piece at a time (teleconsult.request_bodies); the whole
path through a real daphne is in tests/integration/test_services.py."""

from __future__ import annotations

import asyncio
import logging
import tempfile

from teleconsult import request_bodies
from teleconsult.request_bodies import BodyFromFile


def _file(data: bytes):
    body = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the queue under test)
    body.write(data)
    body.seek(0)
    return body


def _drain(queue: BodyFromFile, count: int) -> list[dict]:
    async def take():
        return [await queue.get() for _ in range(count)]

    return asyncio.run(take())


def test_the_body_comes_from_the_file_a_piece_at_a_time_and_the_file_closes_at_its_end():
    body = _file(b"abcdefghij")
    queue = BodyFromFile(body, piece_size=4)
    queue.put_nowait({"type": "http.request", "body": b"", "more_body": False})  # daphne's own, dropped

    messages = _drain(queue, 3)

    assert messages == [
        {"type": "http.request", "body": b"abcd", "more_body": True},
        {"type": "http.request", "body": b"efgh", "more_body": True},
        {"type": "http.request", "body": b"ij", "more_body": False},
    ]
    assert body.closed
    # After the body, daphne's messages come as they are queued.
    queue.put_nowait({"type": "http.disconnect"})
    assert _drain(queue, 1) == [{"type": "http.disconnect"}]


def test_a_body_of_whole_pieces_ends_with_an_empty_last_one_and_an_empty_body_with_one():
    queue = BodyFromFile(_file(b"abcdefgh"), piece_size=4)
    assert [message["more_body"] for message in _drain(queue, 3)] == [True, True, False]
    assert _drain(BodyFromFile(_file(b""), piece_size=4), 1) == [
        {"type": "http.request", "body": b"", "more_body": False}
    ]


def test_a_disconnect_before_the_body_is_read_ends_it_and_closes_the_file():
    body = _file(b"x" * 100)
    queue = BodyFromFile(body, piece_size=10)
    queue.put_nowait({"type": "http.request", "body": b"", "more_body": False})
    first = _drain(queue, 1)[0]
    assert first["body"] == b"x" * 10
    queue.put_nowait({"type": "http.disconnect"})

    assert _drain(queue, 1) == [{"type": "http.disconnect"}]
    assert body.closed


def test_a_file_closed_under_the_queue_reads_as_a_disconnect():
    body = _file(b"x" * 100)
    queue = BodyFromFile(body, piece_size=10)
    body.close()
    assert _drain(queue, 1) == [{"type": "http.disconnect"}]


def test_installed_once_for_the_daphne_it_was_written_for(monkeypatch, caplog):
    import daphne
    from daphne.http_protocol import WebRequest
    from daphne.server import Server

    assert daphne.__version__ == request_bodies.DAPHNE_VERSION, "check teleconsult.request_bodies against this daphne"
    assert request_bodies.install() is True
    assert request_bodies.install() is True  # again: nothing more
    assert Server.create_application is request_bodies._create_application
    # Requests are made without Twisted's parsing of form bodies, which daphne never reads.
    connected = []
    from twisted.web.test.requesthelper import DummyChannel

    channel = DummyChannel()
    channel.factory = type("Factory", (), {})()
    channel.factory.server = type(
        "Server", (), {"protocol_connected": lambda self, request: connected.append(request)}
    )()
    request = WebRequest(channel)
    assert connected == [request]
    assert request._parsePOSTFormSubmission is False

    # Another daphne: left as it is, and the log says why.
    monkeypatch.setattr(request_bodies, "_installed", False)
    monkeypatch.setattr(request_bodies, "DAPHNE_VERSION", "0.0")
    with caplog.at_level(logging.WARNING, logger="teleconsult.request_bodies"):
        assert request_bodies.install() is False
    assert "is not 0.0" in caplog.text

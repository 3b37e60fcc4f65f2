"""Request bodies handed from daphne's file a piece at a time (teleconsult.request_bodies); the whole
path through a real daphne is in tests/integration/test_services.py."""

from __future__ import annotations

import asyncio
import io
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
    assert body.closed  # at once, whether or not the application reads on

    assert _drain(queue, 1) == [{"type": "http.disconnect"}]


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
    assert "are not 0.0 and" in caplog.text


class _Protocol:
    def __init__(self, content) -> None:
        self.content = content


class _Server:
    """What daphne's Server gives create_application: its application, connections and replies."""

    def __init__(self) -> None:
        self.connections: dict = {}
        self.received: list = []

    def application(self, *, scope, receive, send):
        async def run():
            self.received.append((scope, [await receive(), await receive()]))

        return run()

    async def handle_reply(self, protocol, message):
        pass


def test_a_body_in_a_file_is_handed_over_from_the_file_and_a_small_one_as_daphne_does(monkeypatch):
    originals = []
    monkeypatch.setattr(
        request_bodies, "_original_create_application", lambda *args: originals.append(args) or "daphne's queue"
    )

    async def scenario():
        server = _Server()
        body = _file(b"y" * (request_bodies.PIECE_SIZE + 5))
        protocol = _Protocol(body)
        server.connections[protocol] = {}
        queue = request_bodies._create_application(server, protocol, {"type": "http", "path": "/"})
        assert isinstance(queue, BodyFromFile)
        assert protocol.content.read(8192) == b"" and not protocol.content.closed  # daphne's loop reads nothing
        queue.put_nowait({"type": "http.request", "body": b"", "more_body": False})  # and sends this, dropped
        await server.connections[protocol]["application_instance"]
        scope, messages = server.received[0]
        assert scope["asgi"] == {"version": "3.0"}
        assert [(len(m["body"]), m["more_body"]) for m in messages] == [(request_bodies.PIECE_SIZE, True), (5, False)]
        assert body.closed

        # A small body (in memory), and a WebSocket handshake: daphne's own way.
        small = _Protocol(io.BytesIO(b"small"))
        assert request_bodies._create_application(server, small, {"type": "http"}) == "daphne's queue"
        socket = _Protocol(_file(b"x" * 200_000))
        assert request_bodies._create_application(server, socket, {"type": "websocket"}) == "daphne's queue"
        assert [args[1] for args in originals] == [small, socket]

        # The connection went while the application was being made: nothing runs, the file goes.
        gone = _file(b"z" * 200_000)
        protocol = _Protocol(gone)
        server.connections[protocol] = {}
        made = []

        def application_then_gone(**kwargs):
            del server.connections[protocol]
            made.append(_Server.application(server, **kwargs))
            return made[-1]

        server.application = application_then_gone
        assert request_bodies._create_application(server, protocol, {"type": "http"}) is None
        assert gone.closed
        made[0].close()  # never started, as in daphne

    asyncio.run(scenario())

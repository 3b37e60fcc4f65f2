"""Request bodies handed from daphne's file a piece at a time (teleconsult.bodies); the whole
path through a real daphne is in tests/integration/test_services.py."""

from __future__ import annotations

import asyncio
import io
import logging
import tempfile

from teleconsult import bodies
from teleconsult.bodies import BodyFromFile


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

    assert daphne.__version__ == bodies.DAPHNE_VERSION, "check teleconsult.bodies against this daphne"
    assert bodies.install() is True
    assert bodies.install() is True  # again: nothing more
    assert Server.create_application is bodies._create_application
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
    monkeypatch.setattr(bodies, "_installed", False)
    monkeypatch.setattr(bodies, "DAPHNE_VERSION", "0.0")
    with caplog.at_level(logging.WARNING, logger="teleconsult.bodies"):
        assert bodies.install() is False
    assert "are not 0.0 and" in caplog.text


class _Protocol:
    """What daphne's WebRequest gives: its body, and Twisted's producer registration."""

    def __init__(self, content=None) -> None:
        self.content = content
        self.finished = False
        self.channel = object()
        self.producer = None
        self.events: list = []

    def registerProducer(self, producer, streaming):  # noqa: N802 (Twisted's name)
        assert self.producer is None and streaming
        self.producer = producer
        self.events.append("registered")

    def unregisterProducer(self):  # noqa: N802
        self.producer = None
        self.events.append("unregistered")


class _Server:
    """What daphne's Server gives create_application: its application, connections and replies."""

    def __init__(self) -> None:
        self.connections: dict = {}
        self.received: list = []
        self.sends: list = []

    def application(self, *, scope, receive, send):
        self.sends.append(send)

        async def run():
            self.received.append((scope, [await receive(), await receive()]))

        return run()

    async def handle_reply(self, protocol, message):
        protocol.events.append(message["type"] + ("+" if message.get("more_body") else ""))


def test_a_body_in_a_file_is_handed_over_from_the_file_and_a_small_one_as_daphne_does(monkeypatch):
    originals = []
    monkeypatch.setattr(bodies, "_original_create_application", lambda *args: originals.append(args) or "daphne's")

    async def scenario():
        server = _Server()
        body = _file(b"y" * (bodies.PIECE_SIZE + 5))
        protocol = _Protocol(body)
        server.connections[protocol] = {}
        queue = bodies._create_application(server, protocol, {"type": "http", "path": "/"})
        assert isinstance(queue, BodyFromFile)
        assert protocol.content.read(8192) == b"" and not protocol.content.closed  # daphne's loop reads nothing
        queue.put_nowait({"type": "http.request", "body": b"", "more_body": False})  # and sends this, dropped
        await server.connections[protocol]["application_instance"]
        scope, messages = server.received[0]
        assert scope["asgi"] == {"version": "3.0"}
        assert [(len(m["body"]), m["more_body"]) for m in messages] == [(bodies.PIECE_SIZE, True), (5, False)]
        assert body.closed
        assert server.sends[0].__self__.__class__ is bodies.ResponseFlow

        # A small body (in memory): daphne's queue, as daphne fills it; the response still flows.
        small = _Protocol(io.BytesIO(b"small"))
        server.connections[small] = {}
        queue = bodies._create_application(server, small, {"type": "http"})
        assert type(queue) is asyncio.Queue and small.content.getvalue() == b"small"
        queue.put_nowait({"type": "http.request", "body": b"small", "more_body": False})
        queue.put_nowait({"type": "http.disconnect"})
        await server.connections[small]["application_instance"]
        assert server.received[1][1][0]["body"] == b"small"
        assert server.sends[1].__self__.__class__ is bodies.ResponseFlow
        # A WebSocket handshake: daphne's own way.
        socket = _Protocol(_file(b"x" * 200_000))
        assert bodies._create_application(server, socket, {"type": "websocket"}) == "daphne's"
        assert [args[1] for args in originals] == [socket]

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
        assert bodies._create_application(server, protocol, {"type": "http"}) is None
        assert gone.closed
        made[0].close()  # never started, as in daphne

    asyncio.run(scenario())


def test_a_response_waits_while_twisted_has_paused_it_and_is_unregistered_before_its_end():
    async def scenario():
        server, protocol = _Server(), _Protocol()
        flow = bodies.ResponseFlow(server, protocol)
        await flow.send({"type": "http.response.start", "status": 200, "headers": []})
        await flow.send({"type": "http.response.body", "body": b"a", "more_body": True})
        assert protocol.producer is flow
        flow.pauseProducing()  # the client is not taking what was sent
        waiting = asyncio.ensure_future(flow.send({"type": "http.response.body", "body": b"b", "more_body": True}))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # handed to daphne, but the application waits
        flow.resumeProducing()
        await asyncio.wait_for(waiting, 1)
        flow.pauseProducing()
        waiting = asyncio.ensure_future(flow.send({"type": "http.response.body", "body": b"c", "more_body": True}))
        await asyncio.sleep(0.05)
        flow.stopProducing()  # the connection went: the application is let go
        await asyncio.wait_for(waiting, 1)
        await flow.send({"type": "http.response.body", "body": b"", "more_body": False})
        assert protocol.events == [
            "http.response.start",
            "registered",
            "http.response.body+",
            "http.response.body+",
            "http.response.body+",
            "unregistered",
            "http.response.body",
        ]
        assert protocol.producer is None

        # A response in one message never registers; nor does one whose request is over.
        other = _Protocol()
        await bodies.ResponseFlow(server, other).send({"type": "http.response.body", "body": b"x"})
        finished = _Protocol()
        finished.channel = None
        await bodies.ResponseFlow(server, finished).send(
            {"type": "http.response.body", "body": b"x", "more_body": True}
        )
        assert "registered" not in other.events + finished.events

    asyncio.run(scenario())


def test_the_answer_to_head_goes_without_its_body():
    async def scenario():
        server, protocol = _Server(), _Protocol()
        protocol.method = b"HEAD"
        sent = []

        async def handle_reply(protocol, message):
            sent.append(message)

        server.handle_reply = handle_reply
        flow = bodies.ResponseFlow(server, protocol)
        await flow.send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await flow.send({"type": "http.response.body", "body": b"hello", "more_body": False})
        assert sent[0]["headers"] == [(b"content-length", b"5")]
        assert sent[1] == {"type": "http.response.body", "body": b"", "more_body": False}

    asyncio.run(scenario())


def test_an_application_failing_after_its_response_started_closes_the_connection(caplog):
    class Lost(_Protocol):
        lost = False

        def loseConnection(self):  # noqa: N802 (Twisted's name)
            self.lost = True

    async def fails(flow, *, start: bool):
        if start:
            await flow.send({"type": "http.response.start", "status": 200, "headers": []})
            await flow.send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise FileNotFoundError("a stored file went missing")

    async def scenario():
        server, protocol = _Server(), Lost()
        flow = bodies.ResponseFlow(server, protocol)
        with caplog.at_level(logging.ERROR, logger="teleconsult.bodies"):
            assert await bodies._guarded(fails(flow, start=True), protocol, flow) is None
        assert protocol.lost
        assert "failed after its response started" in caplog.text
        # Before the response started: daphne's own 500, as ever.
        early = Lost()
        flow = bodies.ResponseFlow(server, early)
        try:
            await bodies._guarded(fails(flow, start=False), early, flow)
        except FileNotFoundError:
            pass
        else:
            raise AssertionError("the error should reach daphne")
        assert not early.lost

    asyncio.run(scenario())

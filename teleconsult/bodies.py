"""Request and response bodies through daphne without holding them whole in memory.

daphne 4.2 (Twisted underneath) holds every upload and every download whole in memory, whatever
the application does (django/daphne#483, open since 2023):

- Twisted's ``Request`` parses a ``multipart/form-data`` POST body into ``request.args`` before
  daphne sees the request: the whole body read into memory and parsed again into copies, for
  arguments daphne never uses. A browser upload of 1 GB cost several GB there, and anyone could
  send one, signed in or not, since this happens before any view.
- daphne then reads the body back from the temporary file Twisted received it into and puts all
  of it into the application's input queue at once, in messages of 8 KB, before the application
  has read any of it.
- A response goes out as fast as the application sends it: daphne writes each piece to Twisted,
  which buffers what the client has not taken yet, without limit. A 320 MB study retrieved by a
  slow client (WADO-RS, a ZIP download) grew the daphne by more than 800 MB. And the answer to a
  HEAD request went out with its body, which a client reads as the next response.
- An application that fails after its response started (a download whose file went missing
  halfway) leaves the client waiting, and daphne's error page then fails on the started
  response, which stops daphne's application checker for the life of the process.

``install()`` switches the first off; for a body Twisted received into a temporary file (from
100 kB up, or sent in chunks) it has the input queue read that file a piece at a time, as the
application asks for the next piece, so an upload sits in the temporary file (on disk, see
``studies.storage.keep_temporary_files_on_disk``) and in at most one piece of memory per request;
and it gives every HTTP response a ``ResponseFlow``, Twisted's producer for it, so that the
application's ``send`` waits while the client is not taking what was sent, and drops the body of
an answer to HEAD; an application failing after its response started is logged and its
connection closed (``_guarded``).
``teleconsult.serve`` (the server's start-up) installs it. It is written against one version of daphne
and of Twisted (both pinned in requirements.txt): with others it logs a warning and leaves daphne as
it is. Installed, it leaves daphne's ``--request-buffer-size`` to bodies under 100 kB; larger ones
come in pieces of ``PIECE_SIZE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging

logger = logging.getLogger(__name__)

DAPHNE_VERSION = "4.2.3"
TWISTED_VERSION = "26.10.0"
PIECE_SIZE = 256 * 1024  # read from the body's file per message handed to the application

_installed = False


class _HandedOver:
    """What daphne finds in place of the body's file once the input queue has taken the file:
    daphne's own reading loop gets nothing from it and sends one empty last message, which the
    queue drops."""

    closed = False

    def read(self, size: int = -1) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True


class BodyFromFile(asyncio.Queue):
    """The input queue of one HTTP request whose body waits in a file: each ``get`` while the body
    lasts reads its next piece from the file; daphne's other messages (``http.disconnect``) queue
    as ever. A disconnect (the client left, or the response is over) ends the body at once and
    closes its file: the application gets the disconnect next, not the rest of a body nobody waits
    for (daphne itself would still hand over every byte it had queued). Django aborts the request
    on it, and ``studies.dicomweb.stow_body`` stops splitting."""

    def __init__(self, body, piece_size: int = PIECE_SIZE) -> None:
        super().__init__()
        self._body = body
        self._piece_size = piece_size
        self._dropped = False

    def put_nowait(self, message) -> None:
        if self._body is not None and not self._dropped and message.get("type") == "http.request":
            self._dropped = True  # daphne's own (empty) copy of the body: the file is the body
            return
        if message.get("type") == "http.disconnect":
            self._close()  # also when the application never reads on: the file goes now
        super().put_nowait(message)

    async def get(self):
        if self._body is None:
            return await super().get()
        if not self.empty():
            # The client left (or the response ended) before the application read the whole body.
            self._close()
            return await super().get()
        try:
            piece = self._body.read(self._piece_size)
        except (OSError, ValueError):  # the file closed under it: the request is over
            self._close()
            return {"type": "http.disconnect"}
        more = len(piece) == self._piece_size
        if not more:
            self._close()
        return {"type": "http.request", "body": piece, "more_body": more}

    def _close(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            with contextlib.suppress(OSError):
                body.close()


class ResponseFlow:
    """The application's ``send`` for one HTTP response, and Twisted's producer for it: while the
    connection's write buffer is full, Twisted pauses the producer, and a body message with more to
    come returns only once Twisted resumes it (the client took what was sent). What a slow client
    has not taken yet then stays with the application (a file read a piece at a time) instead of
    piling up in daphne."""

    def __init__(self, server, protocol) -> None:
        self._server = server
        self._protocol = protocol
        self._writable = asyncio.Event()
        self._writable.set()
        self._registered = False
        self.started = False  # the response's start went to daphne

    # Twisted's IPushProducer, called on the event loop's thread (daphne's asyncio reactor).
    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's name)
        self._writable.clear()

    def resumeProducing(self) -> None:  # noqa: N802
        self._writable.set()

    def stopProducing(self) -> None:  # noqa: N802
        self._writable.set()  # the connection is going: daphne drops what is sent from here on

    async def send(self, message) -> None:
        if message.get("type") != "http.response.body":
            self.started = self.started or message.get("type") == "http.response.start"
            await self._server.handle_reply(self._protocol, message)
            return
        if message.get("body") and getattr(self._protocol, "method", None) == b"HEAD":
            # The headers of a GET, without its body: daphne would send the body too, and the
            # client would read it as the start of the next response on the connection.
            message = {**message, "body": b""}
        more = message.get("more_body", False)
        if more:
            self._register()
        else:
            self._unregister()  # before daphne finishes the request, as Twisted asks
        await self._server.handle_reply(self._protocol, message)
        if more:
            await self._writable.wait()

    def _register(self) -> None:
        protocol = self._protocol
        if self._registered or protocol.finished or protocol.channel is None or protocol.producer is not None:
            return
        protocol.registerProducer(self, True)
        self._registered = True

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            if self._protocol.channel is not None:
                self._protocol.unregisterProducer()


async def _guarded(application, protocol, flow: ResponseFlow):
    """Run ``application``; an error it raises once its response has started (a streamed download
    whose file went missing halfway) is logged and ends the connection, so the client sees an
    incomplete answer at once instead of waiting for the rest. Left to daphne, its error page
    would fail on the started response, and the failure would stop daphne's application checker
    (the loop that reaps finished applications and closed connections) for the life of the
    process."""
    try:
        return await application
    except Exception:
        if not flow.started or getattr(protocol, "finished", False):
            raise  # daphne answers 500 as ever, or (the answer is complete) only logs it
        logger.exception("the application failed after its response started; the connection is closed")
        with contextlib.suppress(Exception):
            protocol.loseConnection()
        return None


def _create_application(server, protocol, scope):
    """``daphne.server.Server.create_application`` for HTTP: a ``ResponseFlow`` as the application's
    ``send``, and a ``BodyFromFile`` input queue when Twisted received the body into a file.
    WebSocket connections go daphne's own way."""
    if scope.get("type") != "http":
        return _original_create_application(server, protocol, scope)
    # From here as daphne's own create_application, but for the queue and send.
    assert "application_instance" not in server.connections[protocol]
    body = getattr(protocol, "content", None)
    if body is None or isinstance(body, io.BytesIO):
        input_queue = asyncio.Queue()
    else:
        input_queue = BodyFromFile(body)
        protocol.content = _HandedOver()
    scope.setdefault("asgi", {"version": "3.0"})
    flow = ResponseFlow(server, protocol)
    application_instance = server.application(scope=scope, receive=input_queue.get, send=flow.send)
    if protocol not in server.connections:
        if isinstance(input_queue, BodyFromFile):
            input_queue._close()
        return None
    server.connections[protocol]["application_instance"] = asyncio.ensure_future(
        _guarded(application_instance, protocol, flow),
        loop=asyncio.get_event_loop(),
    )
    return input_queue


def _original_create_application(server, protocol, scope):  # replaced by install()
    raise RuntimeError("bodies.install() has not run")


def install() -> bool:
    """Patch daphne as the module's docstring says (once); False, with a warning logged, when the
    installed daphne or Twisted is not the version this was written against."""
    global _installed, _original_create_application
    if _installed:
        return True
    try:
        import daphne
        import twisted
        from daphne.http_protocol import WebRequest
        from daphne.server import Server
    except ImportError:
        return False
    versions = (daphne.__version__, twisted.__version__)
    if versions != (DAPHNE_VERSION, TWISTED_VERSION):
        logger.warning(
            "bodies: daphne %s and Twisted %s are not %s and %s, which teleconsult.bodies "
            "was written against; uploads and downloads are held in memory whole by daphne until it is checked "
            "and updated",
            *versions,
            DAPHNE_VERSION,
            TWISTED_VERSION,
        )
        return False

    original_init = WebRequest.__init__

    def init_without_form_parsing(self, *args, **kwargs):
        kwargs.setdefault("parsePOSTFormSubmission", False)  # daphne never reads request.args
        original_init(self, *args, **kwargs)

    WebRequest.__init__ = init_without_form_parsing
    _original_create_application = Server.create_application
    Server.create_application = _create_application
    _installed = True
    return True

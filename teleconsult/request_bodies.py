"""Request bodies through daphne without holding them whole in memory.

daphne 4.2 (Twisted underneath) holds every upload whole in memory, whatever the application
does with it (django/daphne#483, open since 2023):

- Twisted's ``Request`` parses a ``multipart/form-data`` POST body into ``request.args`` before
  daphne sees the request: the whole body read into memory and parsed again into copies, for
  arguments daphne never uses. A browser upload of 1 GB cost several GB there, and anyone could
  send one, signed in or not, since this happens before any view.
- daphne then reads the body back from the temporary file Twisted received it into and puts all
  of it into the application's input queue at once, in messages of 8 KB, before the application
  has read any of it.

``install()`` switches the first off and, for a body Twisted received into a temporary file (from
100 kB up, or sent in chunks), has the input queue read that file a piece at a time, as the
application asks for the next piece: an upload then sits in the temporary file (on disk, see
``studies.storage.keep_temporary_files_on_disk``) and in at most one piece of memory per request.
``teleconsult.asgi`` (what daphne loads) installs it. It is written against one version of daphne
and of Twisted (both pinned in requirements.txt): with others it logs a warning and leaves daphne as
it is. Installed, it leaves daphne's ``--request-buffer-size`` to bodies under 100 kB; larger ones
come in pieces of ``PIECE_SIZE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from functools import partial

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
    on it, and ``studies.stow_body`` stops splitting."""

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


def _create_application(server, protocol, scope):
    """``daphne.server.Server.create_application``, with a ``BodyFromFile`` input queue for an HTTP
    request whose body Twisted received into a file; any other request goes the usual way."""
    body = getattr(protocol, "content", None)
    if scope.get("type") != "http" or body is None or isinstance(body, io.BytesIO):
        return _original_create_application(server, protocol, scope)
    # From here as daphne's own create_application, but for the queue.
    assert "application_instance" not in server.connections[protocol]
    input_queue = BodyFromFile(body)
    protocol.content = _HandedOver()
    scope.setdefault("asgi", {"version": "3.0"})
    application_instance = server.application(
        scope=scope,
        receive=input_queue.get,
        send=partial(server.handle_reply, protocol),
    )
    if protocol not in server.connections:
        input_queue._close()
        return None
    server.connections[protocol]["application_instance"] = asyncio.ensure_future(
        application_instance,
        loop=asyncio.get_event_loop(),
    )
    return input_queue


def _original_create_application(server, protocol, scope):  # replaced by install()
    raise RuntimeError("request_bodies.install() has not run")


def install() -> bool:
    """Patch daphne as the module's docstring says (once); False, with a warning logged, when the
    installed daphne is not the version this was written against."""
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
            "request bodies: daphne %s and Twisted %s are not %s and %s, which teleconsult.request_bodies "
            "was written against; uploads are held in memory whole by daphne until it is checked and updated",
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

"""STOW-RS request bodies split into their part files as daphne hands them over, before Django sees them.

Django reads a whole request body into a temporary file before any view runs, and the STOW-RS
view then read it back to split the parts: every upload was written twice before its files were
checked. ``StowBodyReader`` sits in front of Django's ASGI application: for a STOW-RS request it
splits the multipart body straight from the ASGI messages into a request directory
(``storage.request_dir``), on a thread so that the file writes stay off the event loop, and hands
Django an empty body with the parts (or the reason the body is malformed) in the scope. The view
then checks the request as ever (authentication, media type, size) and takes the parts from there.

Anything else, and a STOW-RS request the view will refuse without reading its body (another media
type, no boundary, a declared length over the limit), goes to Django unchanged.

daphne itself (Twisted's ``Request``) receives the whole body, into a temporary file from 100 kB
up, before it calls the application; ``teleconsult.bodies`` then hands it over from that
file a piece at a time as this reader asks. So the split starts once the body is in, not while it
is on the wire, and memory holds at most HIGH_WATER of it (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.urls import Resolver404, resolve

from .. import storage
from .errors import DicomwebError
from .multipart import Part, read_multipart
from .stow import stow_boundary as stow_request_boundary

SCOPE_KEY = "teleconsult.stow_body"
STOW_VIEWS = {"dicomweb:studies", "dicomweb:study"}
# Bytes received but not yet split that the event loop holds before it waits for the splitting
# thread: a fast client cannot make one request hold more memory than this.
HIGH_WATER = 8 * 1024 * 1024
READ_SIZE = 256 * 1024  # what the splitting thread reads at a time
# Threads of their own, so that many large uploads at once never take the event loop's default
# executor from what else needs it (name lookups of the channel layer's connections, say); more
# uploads than threads wait their turn, each holding at most HIGH_WATER meanwhile.
_splitters = ThreadPoolExecutor(max_workers=8, thread_name_prefix="stow-split")
_cleaners = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stow-clean")


@dataclass
class StowBody:
    """The parts of a STOW-RS body split before the view ran, or why it could not be split."""

    parts: list[Part]
    error: DicomwebError | None = None


def stow_boundary(scope) -> str | None:
    """The multipart boundary of a STOW-RS request that the view will read; None for any other."""
    if scope.get("type") != "http" or scope.get("method") != "POST":
        return None
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    try:
        match = resolve(path[len(root) :] if root and path.startswith(root) else path)
    except Resolver404:
        return None
    if match.view_name not in STOW_VIEWS:
        return None
    headers = dict(scope.get("headers") or [])
    content_length = headers.get(b"content-length")
    try:
        # The view's own checks: what they refuse is left to the view, which reads no body for it.
        return stow_request_boundary(
            headers.get(b"content-type", b"").decode("latin-1"),
            content_length.decode("latin-1") if content_length is not None else None,
            settings.TELECONSULT_MAX_REQUEST_SIZE,
        )
    except DicomwebError:
        return None


class _FedStream:
    """A binary stream read by the splitting thread and fed by the event loop.

    The reader is woken once what it asked for is there (not for every message, which daphne
    sends in small pieces), and the loop waits while more than HIGH_WATER is unread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Condition()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._wanted = 0  # what the reader waits for
        self._ended = False
        self._closed = False  # the reader is done (finished or gave up): more data is dropped
        self._drained = asyncio.Event()

    async def put(self, data: bytes) -> None:
        """Hand ``data`` to the reader, first waiting while it has more than HIGH_WATER to read."""
        while True:
            self._drained.clear()
            with self._lock:
                if self._closed:
                    return
                if self._buffered <= max(HIGH_WATER, self._wanted):  # never below what the reader awaits
                    if data:
                        self._chunks.append(data)
                        self._buffered += len(data)
                        if self._buffered >= self._wanted:
                            self._lock.notify()
                    return
            await self._drained.wait()

    def end(self) -> None:
        """No more data: the reader gets what is left, then b""."""
        with self._lock:
            self._ended = True
            self._lock.notify()

    def close(self) -> None:
        """Called by the reader when it stops reading (done, or given up on a malformed body)."""
        with self._lock:
            self._closed = self._ended = True
            self._chunks.clear()
            self._buffered = 0
            self._lock.notify_all()
        self._loop.call_soon_threadsafe(self._drained.set)

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes: fewer only at the end of the body."""
        with self._lock:
            self._wanted = size
            while self._buffered < size and not self._ended:
                self._lock.wait()
            out = bytearray()
            while self._chunks and len(out) < size:
                chunk = self._chunks.popleft()
                if len(chunk) > size - len(out):
                    self._chunks.appendleft(chunk[size - len(out) :])
                    chunk = chunk[: size - len(out)]
                out += chunk
            self._buffered -= len(out)
        self._loop.call_soon_threadsafe(self._drained.set)
        return bytes(out)


def _split(stream: _FedStream, boundary: str, directory: str) -> list[Part]:
    try:
        limit = settings.TELECONSULT_MAX_REQUEST_SIZE
        return read_multipart(stream, boundary, directory, max_size=limit, chunk_size=READ_SIZE)
    finally:
        stream.close()


def _remove_after(split, directory) -> None:
    """Remove the request's directory once its split is over (at once if it never started)."""
    with contextlib.suppress(BaseException):
        split.exception()  # waits; its outcome was the request's business
    directory.cleanup()


class StowBodyReader:
    """ASGI middleware: see the module's docstring."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        boundary = stow_boundary(scope)
        if boundary is None:
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        directory = storage.request_dir()
        stream = _FedStream(loop)
        split = _splitters.submit(_split, stream, boundary, directory.name)
        try:
            disconnected = False
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected = True
                    break
                await stream.put(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            stream.end()
            if disconnected:
                stream.close()
            try:
                body = StowBody(parts=await asyncio.wrap_future(split))
            except DicomwebError as exc:
                body = StowBody(parts=[], error=exc)
            if disconnected:
                return  # as Django does when the client leaves before the body is in

            replayed = False

            async def replay():
                # Django reads the (now empty) body first, then listens for the disconnect.
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                return await receive()

            await self.app({**scope, SCOPE_KEY: body}, replay, send)
        finally:
            # Also when this is cancelled midway: a reader still waiting for data is released, a
            # split not started yet never starts, and the files go once the split is over.
            stream.close()
            split.cancel()
            await asyncio.shield(loop.run_in_executor(_cleaners, _remove_after, split, directory))

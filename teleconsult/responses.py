"""Streaming responses served under ASGI a batch at a time, not read whole into memory first.

Under ASGI (daphne), Django serves a ``StreamingHttpResponse`` or ``FileResponse`` whose content
is a plain (synchronous) iterator by reading all of it into a list first
(``StreamingHttpResponse.__aiter__``: ``sync_to_async(list)``, with a warning), then sending it:
a 2 GB DICOM file, a study retrieved over WADO-RS or a study ZIP sat whole in the daphne's memory
before its first byte left. These subclasses take the content from the request's worker thread
about ``BATCH_SIZE`` at a time instead, handing the thread's database connections back between
batches; with ``teleconsult.bodies`` holding each batch back while the client is slow, a download
costs the daphne a few MB and no database connection while it waits, whatever its size. Under
WSGI and in Django's test client they are Django's own classes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from asgiref.sync import sync_to_async
from django.db import connections
from django.http import FileResponse, StreamingHttpResponse

BATCH_SIZE = 1024 * 1024

logger = logging.getLogger(__name__)


def _next_batch(parts: Iterator[bytes]) -> list[bytes]:
    """The next parts of ``parts``, about BATCH_SIZE of them; empty once it is exhausted.

    The thread's database connections go back (to the pool) after each batch, outside a
    transaction: a download to a slow client would otherwise hold one for its whole length, and a
    few of them would leave the rest of the server waiting for a connection. Content that queries
    again gets a connection again; it must not keep a cursor open across its parts."""
    batch: list[bytes] = []
    size = 0
    try:
        for part in parts:
            batch.append(part)
            size += len(part)
            if size >= BATCH_SIZE:
                break
    finally:
        for connection in connections.all(initialized_only=True):
            if connection.in_atomic_block or not connection.get_autocommit():
                continue  # a transaction of the content's own: left as it is
            try:
                connection.close()
            except Exception:
                logger.exception("streamed response: database connection %s not handed back", connection.alias)
    return batch


class _Batched:
    async def __aiter__(self):
        if self.is_async:
            async for part in self.streaming_content:
                yield part
            return
        parts = iter(self.streaming_content)
        # The request's own worker thread (thread-sensitive), where the view made the iterator.
        take = sync_to_async(_next_batch)
        while batch := await take(parts):
            for part in batch:
                yield part


class StreamingResponse(_Batched, StreamingHttpResponse):
    """``StreamingHttpResponse``, served under ASGI a batch at a time."""


class FileStreamResponse(_Batched, FileResponse):
    """``FileResponse``, served under ASGI a batch at a time."""


def head_without_streamed_body(get_response: Callable) -> Callable:
    """Middleware: the answer to HEAD of a streamed response carries no body, so its content is not
    made at all (a study ZIP or a retrieve is not read, compressed and thrown away); the content
    is closed with the response. The headers, Content-Length among them, stay those of GET."""

    def middleware(request):
        response = get_response(request)
        if request.method == "HEAD" and getattr(response, "streaming", False):
            response.streaming_content = []
        return response

    return middleware

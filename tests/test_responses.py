"""Streaming responses served under ASGI a batch at a time (teleconsult.responses); the memory of a
real daphne serving a large download to a slow client is in tests/integration/test_services.py."""

from __future__ import annotations

import asyncio
import io

from teleconsult import responses
from teleconsult.responses import BATCH_SIZE, FileStreamResponse, StreamingResponse

PART = BATCH_SIZE // 2


def _served(response) -> list[bytes]:
    """The parts ASGI serving takes from ``response``."""

    async def take():
        return [part async for part in response]

    return asyncio.run(take())


def test_a_generator_is_taken_a_batch_at_a_time_not_whole_before_the_first_byte():
    produced = []

    def parts():
        for number in range(10):
            produced.append(number)
            yield bytes([number]) * PART

    seen = []
    response = StreamingResponse(parts())

    async def take():
        async for part in response:
            seen.append((part[:1], len(produced)))

    asyncio.run(take())
    assert [first for first, _ in seen] == [bytes([n]) for n in range(10)]
    # The first part left when two of the ten had been made (one batch), not all ten.
    assert seen[0][1] == 2
    assert [count for _, count in seen] == [2, 2, 4, 4, 6, 6, 8, 8, 10, 10]


def test_a_file_is_served_whole_in_batches_and_synchronous_serving_is_djangos():
    data = bytes(range(256)) * (3 * BATCH_SIZE // 256 + 7)
    served = b"".join(_served(FileStreamResponse(io.BytesIO(data))))
    assert served == data
    assert b"".join(FileStreamResponse(io.BytesIO(data))) == data  # WSGI, the test client
    assert b"".join(StreamingResponse(iter([b"a", b"", b"b"]))) == b"ab"
    assert b"".join(_served(StreamingResponse(iter([b"a", b"", b"b"])))) == b"ab"


def test_an_asynchronous_iterator_is_served_as_it_comes():
    async def parts():
        yield b"x"
        yield b"y"

    assert b"".join(_served(StreamingResponse(parts()))) == b"xy"


def test_the_database_connections_go_back_between_batches_outside_a_transaction(monkeypatch):
    class Connection:
        def __init__(self, in_atomic_block: bool) -> None:
            self.in_atomic_block = in_atomic_block
            self.closed = 0

        def get_autocommit(self) -> bool:
            return True

        def close(self) -> None:
            self.closed += 1

    idle, in_transaction = Connection(False), Connection(True)
    manual = Connection(False)
    manual.get_autocommit = lambda: False  # a transaction begun by hand: not cut short
    monkeypatch.setattr(responses.connections, "all", lambda initialized_only=False: [idle, in_transaction, manual])

    parts = iter([b"a" * PART] * 5)
    assert len(responses._next_batch(parts)) == 2
    assert (idle.closed, in_transaction.closed) == (1, 0)
    assert len(responses._next_batch(parts)) == 2
    assert len(responses._next_batch(parts)) == 1
    assert responses._next_batch(parts) == []
    assert (idle.closed, in_transaction.closed, manual.closed) == (4, 0, 0)


def test_head_of_a_streamed_response_makes_none_of_its_content(rf, db):
    made = []

    def parts():
        made.append("started")
        yield b"x" * PART

    content = parts()
    streamed = StreamingResponse(content)
    streamed["Content-Length"] = str(PART)
    middleware = responses.head_without_streamed_body(lambda request: streamed)

    response = middleware(rf.head("/download"))
    assert b"".join(response) == b"" and made == []
    assert response["Content-Length"] == str(PART)
    response.close()  # the content goes with the response
    assert content.gi_frame is None
    # GET: untouched.
    again = responses.head_without_streamed_body(lambda request: StreamingResponse(parts()))(rf.get("/download"))
    assert b"".join(again) == b"x" * PART

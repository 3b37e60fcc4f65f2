"""multipart/related (RFC 2387) as DICOMweb uses it: answers encoded lazily, part by part, and
request bodies split into one temporary file per part while they stream in."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .errors import DicomwebError


def new_boundary() -> str:
    return uuid.uuid4().hex


def multipart_content_type(part_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return f"{value}; transfer-syntax={transfer_syntax}" if transfer_syntax else value


def multipart_stream(parts: Iterable[tuple[str, Iterable[bytes]]], boundary: str) -> Iterator[bytes]:
    """Encode parts lazily: each part is its Content-Type and an iterable of byte chunks."""
    for content_type, chunks in parts:
        yield f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode("latin-1")
        yield from chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("latin-1")


def file_chunks(opener, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Chunks of a stored file, opened only when the stream reaches it."""
    with opener() as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


@dataclass
class Part:
    path: str
    headers: dict[str, str]
    size: int

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class _Input:
    """Reads the request body in chunks, counting bytes against the request size limit."""

    def __init__(self, stream: BinaryIO, max_size: int, chunk_size: int) -> None:
        self.stream = stream
        self.max_size = max_size
        self.chunk_size = chunk_size
        self.buf = bytearray()
        self.total = 0

    def fill(self) -> bool:
        chunk = self.stream.read(self.chunk_size)
        if not chunk:
            return False
        self.total += len(chunk)
        if self.total > self.max_size:
            raise DicomwebError(f"The request is larger than the limit of {self.max_size} bytes.", status=413)
        self.buf += chunk
        return True

    def need(self, size: int) -> bool:
        while len(self.buf) < size:
            if not self.fill():
                return False
        return True


MAX_PREAMBLE = 64 * 1024
MAX_PART_HEADERS = 16 * 1024
MAX_PARTS = 20000  # the same order as the zip entry limit: each part becomes a temporary file
# RFC 2046 keeps boundaries a sender writes to 70 characters, but real senders write longer ones
# (Orthanc: two UUIDs, 73 characters); a receiver takes them up to this, and refuses longer ones.
MAX_BOUNDARY = 200


def malformed(message: str) -> DicomwebError:
    return DicomwebError(f"Malformed multipart body: {message}", status=400)


def check_boundary(boundary: str | None) -> None:
    """Refuse a missing boundary, or one longer than MAX_BOUNDARY characters."""
    if not boundary:
        raise malformed("Content-Type has no boundary parameter.")
    if len(boundary) > MAX_BOUNDARY:
        raise malformed(
            f"the boundary parameter is {len(boundary)} characters long; at most {MAX_BOUNDARY} are accepted."
        )


def _after_boundary(body: _Input, pos: int) -> tuple[bool, int]:
    """After a boundary: ``--`` closes the body, else optional blanks and CRLF start a part."""
    if not body.need(pos + 2):
        raise malformed("it ends right after a boundary.")
    if body.buf[pos : pos + 2] == b"--":
        return True, pos + 2
    while body.need(pos + 1) and body.buf[pos] in b" \t":
        pos += 1
    if not body.need(pos + 2) or body.buf[pos : pos + 2] != b"\r\n":
        raise malformed("a boundary is not followed by a line break.")
    return False, pos + 2


def _part_headers(body: _Input) -> dict[str, str]:
    if not body.need(2):
        raise malformed("it ends inside the headers of a part.")
    if body.buf[:2] == b"\r\n":
        del body.buf[:2]
        return {}
    while (end := body.buf.find(b"\r\n\r\n")) < 0:
        if len(body.buf) > MAX_PART_HEADERS or not body.fill():
            raise malformed("the headers of a part are too long or never end.")
    if end > MAX_PART_HEADERS:
        raise malformed("the headers of a part are too long.")
    headers = {}
    for line in bytes(body.buf[:end]).decode("latin-1").split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon:
            raise malformed(f"a part header line has no colon: {line[:80]!r}.")
        headers[name.strip().lower()] = value.strip()
    del body.buf[: end + 4]
    return headers


def read_multipart(
    stream: BinaryIO, boundary: str, directory: str, *, max_size: int, chunk_size: int = 256 * 1024
) -> list[Part]:
    """Stream a multipart body into one temporary file per part under ``directory``.

    Only a chunk and a boundary's length stay in memory, whatever the size of the parts.
    """
    check_boundary(boundary)
    dash = b"--" + boundary.encode("latin-1")
    delimiter = b"\r\n" + dash
    body = _Input(stream, max_size, chunk_size)
    while True:
        if body.buf.startswith(dash):
            pos = len(dash)
            break
        index = body.buf.find(delimiter)
        if index >= 0:
            pos = index + len(delimiter)
            break
        if len(body.buf) > MAX_PREAMBLE or not body.fill():
            raise malformed("the body does not contain the boundary given in Content-Type.")
    closed, pos = _after_boundary(body, pos)
    del body.buf[:pos]
    if closed:
        raise DicomwebError("The multipart body has no parts.", status=400)
    parts: list[Part] = []
    while True:
        headers = _part_headers(body)
        handle, path = tempfile.mkstemp(dir=directory, suffix=".dcm")
        size = 0
        with os.fdopen(handle, "wb") as out:
            while True:
                index = body.buf.find(delimiter)
                if index >= 0:
                    out.write(body.buf[:index])
                    size += index
                    closed, pos = _after_boundary(body, index + len(delimiter))
                    del body.buf[:pos]
                    break
                keep = len(delimiter) - 1
                if len(body.buf) > keep:
                    flush = len(body.buf) - keep
                    out.write(body.buf[:flush])
                    size += flush
                    del body.buf[:flush]
                if not body.fill():
                    raise malformed("it ends before the closing boundary.")
        parts.append(Part(path=path, headers=headers, size=size))
        if closed:
            return parts
        if len(parts) >= MAX_PARTS:
            raise DicomwebError(f"The request has more than {MAX_PARTS} parts; send them in several requests.", 413)

"""The byte-level structure of a PS3.10 file: its file meta information, and every element of its
data set walked without reading values.

The walk refuses truncated files, malformed sequences and absurd nesting before pydicom (which
recurses) reads anything, and finds where the pixel data is and how long it is. A deflated data set
is inflated to a temporary file first, refused past ``MAX_INFLATED_SIZE`` (a deflate bomb).
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from pydicom.uid import UID
from pydicom.valuerep import VR

from .. import dicomjson, storage
from .results import IngestRefusedError, human

# Deeper nesting than this is refused; real objects (SR trees, enhanced multi-frame) stay far below.
MAX_SEQUENCE_DEPTH = 48
PIXEL_DATA_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
# pydicom inflates a deflated data set in memory; larger ones are refused (a deflate bomb).
MAX_INFLATED_SIZE = 512 * 1024 * 1024
UNDEFINED_LENGTH = 0xFFFFFFFF
_LONG_LENGTH_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UR", b"UT", b"UN", b"SV", b"UV"}
_KNOWN_VRS = {vr.value.encode() for vr in VR}
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


def walk_file(fp: BinaryIO, size: int) -> tuple[str, str, Layout]:
    """Read the file meta information after the "DICM" marker, then walk the data set (inflated to a
    temporary file first when deflated): (transfer syntax, media storage SOP class, layout)."""
    transfer_syntax, meta_sop_class, dataset_start = _read_file_meta(fp, size)
    if transfer_syntax == DEFLATED:
        with tempfile.TemporaryFile() as inflated:
            inflated_size = _inflate(fp, dataset_start, size, inflated)
            layout = walk(inflated, 0, inflated_size, EXPLICIT_VR_LITTLE_ENDIAN)
    else:
        layout = walk(fp, dataset_start, size, transfer_syntax)
    return transfer_syntax, meta_sop_class, layout


def _read_file_meta(fp: BinaryIO, size: int) -> tuple[str, str, int]:
    """Read group 0002 after the DICM marker: (transfer syntax, media storage SOP class, dataset start)."""
    pos = 132
    values: dict[int, str] = {}
    while pos + 8 <= size:
        fp.seek(pos)
        head = fp.read(8)
        group, element = struct.unpack("<HH", head[:4])
        if group != 0x0002:
            break
        vr = head[4:6]
        if vr in _LONG_LENGTH_VRS:
            extra = fp.read(4)
            if len(extra) < 4:
                break
            (length,) = struct.unpack("<I", extra)
            header = 12
        elif vr.isalpha() and vr.isupper():
            (length,) = struct.unpack("<H", head[6:8])
            header = 8
        else:
            # Some writers encode the meta group in implicit VR.
            (length,) = struct.unpack("<I", head[4:8])
            header = 8
        if length == UNDEFINED_LENGTH or pos + header + length > size:
            raise IngestRefusedError("truncated", "The file ends inside its file meta information (group 0002).")
        if length <= 256:
            values[element] = fp.read(length).decode("ascii", "replace").strip("\x00 ")
        pos += header + length
    transfer_syntax = values.get(0x0010, "")
    if not transfer_syntax:
        raise IngestRefusedError(
            "bad_file_meta",
            "The bytes after the 'DICM' marker are not valid DICOM file meta information "
            "(no Transfer Syntax UID in group 0002).",
        )
    return transfer_syntax, values.get(0x0002, ""), pos


def _inflate(fp: BinaryIO, start: int, size: int, out: BinaryIO) -> int:
    """Inflate a deflated data set into ``out`` chunk by chunk, refusing it past MAX_INFLATED_SIZE."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    fp.seek(start)
    try:
        while chunk := fp.read(storage.CHUNK_SIZE):
            while chunk:
                piece = inflater.decompress(chunk, storage.CHUNK_SIZE)
                total += len(piece)
                if total > MAX_INFLATED_SIZE:
                    raise IngestRefusedError(
                        "too_large",
                        f"The deflated data set expands beyond {human(MAX_INFLATED_SIZE)}; this is refused.",
                    )
                out.write(piece)
                chunk = inflater.unconsumed_tail
        tail = inflater.flush()
    except zlib.error as exc:
        raise IngestRefusedError("corrupt", f"The deflated data set could not be inflated: {exc}") from None
    out.write(tail)
    out.flush()
    return total + len(tail)


@dataclass
class Layout:
    """What the walk found: the pixel data (where it is, its VR and length), how deep sequences
    nest, and notes on what does not conform."""

    pixel_tag: int | None = None
    pixel_vr: str = ""
    pixel_length: int | None = None  # None when encapsulated (compressed)
    fragments: int = 0  # encapsulated fragments, the basic offset table excluded
    max_depth: int = 0
    notes: list[str] = field(default_factory=list)


def _encoding(transfer_syntax: str) -> tuple[bool, bool]:
    """(implicit VR, little endian) of a transfer syntax; private ones are read as explicit little endian."""
    uid = UID(transfer_syntax)
    try:
        return uid.is_implicit_VR, uid.is_little_endian
    except ValueError:
        return False, True


def tag_name(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def walk(fp: BinaryIO, start: int, size: int, transfer_syntax: str) -> Layout:
    """Walk every element of the data set without reading values (seek past them).

    Refuses truncated files, malformed sequences and absurd nesting before pydicom (which
    recurses) reads anything, and finds where the pixel data is and how long it is.
    """
    implicit, little = _encoding(transfer_syntax)
    layout = Layout()
    if start + 8 <= size:
        # Like pydicom, trust the encoding of the first element over the transfer syntax.
        fp.seek(start + 4)
        first_is_implicit = fp.read(2) not in _KNOWN_VRS
        if first_is_implicit != implicit:
            layout.notes.append(
                f"the data set is encoded in {'implicit' if first_is_implicit else 'explicit'} VR, "
                f"not as its transfer syntax {transfer_syntax} says"
            )
            implicit = first_is_implicit
    # Each open sequence or item: [kind, end offset or None when undefined, implicit, byte order]
    stack: list[list] = []
    pos = start
    while True:
        while stack and stack[-1][1] is not None and pos >= stack[-1][1]:
            if pos > stack[-1][1]:
                raise IngestRefusedError(
                    "corrupt", "An element runs past the end of the sequence or item that holds it."
                )
            stack.pop()
        if pos >= size:
            if stack:
                raise IngestRefusedError("truncated", "The file ends inside a sequence (its end marker is missing).")
            return layout
        if pos + 8 > size:
            raise IngestRefusedError("truncated", f"The file ends in the middle of an element header at byte {pos}.")
        here_implicit, order = (stack[-1][2], stack[-1][3]) if stack else (implicit, "<" if little else ">")
        fp.seek(pos)
        head = fp.read(8)
        group, element = struct.unpack(order + "HH", head[:4])
        tag = group << 16 | element
        if group == 0xFFFE:
            (length,) = struct.unpack(order + "I", head[4:])
            pos += 8
            if tag == _ITEM:
                if not stack or stack[-1][0] != "seq":
                    raise IngestRefusedError("corrupt", "A sequence item appears outside any sequence.")
                end = None if length == UNDEFINED_LENGTH else pos + length
                if end is not None and end > size:
                    raise IngestRefusedError("truncated", "The file ends inside a sequence item.")
                stack.append(["item", end, here_implicit, order])
            elif tag == _ITEM_END:
                if not stack or stack[-1][0] != "item" or stack[-1][1] is not None:
                    raise IngestRefusedError("corrupt", "An item end marker appears where no item is open.")
                stack.pop()
            elif tag == _SEQUENCE_END:
                if not stack or stack[-1][0] != "seq" or stack[-1][1] is not None:
                    raise IngestRefusedError("corrupt", "A sequence end marker appears where no sequence is open.")
                stack.pop()
            else:
                raise IngestRefusedError("corrupt", f"Unknown delimiter tag {tag_name(tag)}.")
            continue
        if stack and stack[-1][0] == "seq":
            raise IngestRefusedError(
                "corrupt", f"Element {tag_name(tag)} sits directly in a sequence, outside any item."
            )
        if here_implicit:
            (length,) = struct.unpack(order + "I", head[4:])
            header, vr = 8, b""
        else:
            vr = head[4:6]
            if vr in _LONG_LENGTH_VRS:
                if pos + 12 > size:
                    raise IngestRefusedError(
                        "truncated", f"The file ends in the middle of element {tag_name(tag)}'s header."
                    )
                (length,) = struct.unpack(order + "I", fp.read(4))
                header = 12
            elif vr in _KNOWN_VRS:
                (length,) = struct.unpack(order + "H", head[6:])
                header = 8
            else:
                raise IngestRefusedError(
                    "corrupt", f"Element {tag_name(tag)} at byte {pos} has no valid value representation."
                )
        value_start = pos + header
        if tag in PIXEL_DATA_TAGS and (length == UNDEFINED_LENGTH or not stack):
            if length == UNDEFINED_LENGTH:
                pos, fragments = _scan_fragments(fp, value_start, size, order)
            else:
                pos, fragments = value_start + length, 0
                if pos > size:
                    raise IngestRefusedError(
                        "truncated",
                        f"The file is truncated: its pixel data declares {length} bytes but only "
                        f"{size - value_start} remain in the file.",
                    )
            if not stack:
                layout.pixel_tag = tag
                layout.pixel_vr = vr.decode("ascii") if vr else ("OB" if tag == 0x7FE00010 and fragments else "OW")
                layout.pixel_length = None if length == UNDEFINED_LENGTH else length
                layout.fragments = max(fragments - 1, 0)
            continue
        is_sequence = (
            vr == b"SQ"
            or length == UNDEFINED_LENGTH
            or (here_implicit and group % 2 == 0 and dicomjson.dictionary_vr(tag) == "SQ")
        )
        if is_sequence:
            end = None if length == UNDEFINED_LENGTH else value_start + length
            if end is not None and end > size:
                raise IngestRefusedError("truncated", f"The file ends inside sequence {tag_name(tag)}.")
            # An undefined-length UN holds a sequence encoded in implicit VR little endian.
            nested_implicit, nested_order = (True, "<") if vr == b"UN" else (here_implicit, order)
            stack.append(["seq", end, nested_implicit, nested_order])
            depth = sum(1 for entry in stack if entry[0] == "seq")
            layout.max_depth = max(layout.max_depth, depth)
            if depth > MAX_SEQUENCE_DEPTH:
                raise IngestRefusedError(
                    "too_deep", f"Sequences are nested more than {MAX_SEQUENCE_DEPTH} levels deep; this is refused."
                )
            pos = value_start
            continue
        pos = value_start + length
        if pos > size:
            raise IngestRefusedError(
                "truncated",
                f"The file is truncated: element {tag_name(tag)} declares {length} bytes but only "
                f"{size - value_start} remain.",
            )


def _scan_fragments(fp: BinaryIO, pos: int, size: int, order: str) -> tuple[int, int]:
    """Skip the items of encapsulated pixel data; (position after the end marker, number of items)."""
    count = 0
    while True:
        if pos + 8 > size:
            raise IngestRefusedError(
                "truncated",
                f"The file is truncated inside its compressed pixel data (after {max(count - 1, 0)} fragments).",
            )
        fp.seek(pos)
        group, element, length = struct.unpack(order + "HHI", fp.read(8))
        tag = group << 16 | element
        if tag == _SEQUENCE_END:
            return pos + 8, count
        if tag != _ITEM or length == UNDEFINED_LENGTH:
            raise IngestRefusedError("corrupt", "The compressed pixel data holds something other than fragment items.")
        pos += 8 + length
        if pos > size:
            raise IngestRefusedError(
                "truncated", f"The file is truncated inside its compressed pixel data (fragment {count} is cut short)."
            )
        count += 1

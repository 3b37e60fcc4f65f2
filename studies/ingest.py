"""Ingest DICOM files: validate, store, and record Patient/Study/Series/Instance.

Every way in (browser page, REST upload, STOW-RS, ``import_dicom``) calls ``ingest_file`` or
``ingest_files``. A file is checked in this order, each failure refused with a code and a reason
that names the problem: size, the PS3.10 "DICM" prefix, the file meta information, the structure
of the whole file (walked element by element without reading values, so truncation, absurd
nesting and pixel data shorter than declared are caught without loading the file), then pydicom
reads the header (``stop_before_pixels``, large values deferred). Files pydicom reads with
warnings are kept and marked ``coerced``.

Storage: the file is staged with its preamble zeroed and hashed; when its batch commits it is moved
into the default storage and the rows of all the batch's files are written together in one
transaction (``IngestBatch``), and the thumbnails are queued after commit. Re-sending an instance
with the same bytes is "already_stored"; different bytes under a stored SOPInstanceUID are a
"conflict" and the original is kept.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import multiprocessing
import operator
import os
import re
import stat
import struct
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

import pydicom
from django.conf import settings
from django.db import DataError, IntegrityError, OperationalError, connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from psycopg.types.json import Jsonb
from pydicom.charset import default_encoding
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels.utils import get_expected_length
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.valuerep import VR

from accounts.practices import default_practice

from . import checking_process, dicomjson, storage
from .models import Instance, Patient, Series, Study
from .permissions import visible_studies

logger = logging.getLogger(__name__)

STORED = "stored"
ALREADY_STORED = "already_stored"
REFUSED = "refused"

# Deeper nesting than this is refused; real objects (SR trees, enhanced multi-frame) stay far below.
MAX_SEQUENCE_DEPTH = 48
# Values larger than this in binary VRs are kept out of Instance.metadata (bulk data).
BULK_DATA_THRESHOLD = 1024
# Files written per transaction by ingest_files (a STOW-RS request is one batch whatever its size).
BATCH_SIZE = 20
BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
PIXEL_DATA_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
# pydicom inflates a deflated data set in memory; larger ones are refused (a deflate bomb).
MAX_INFLATED_SIZE = 512 * 1024 * 1024
UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# Non-conforming UIDs seen in the wild (hex digests, letters) are kept if they are safe in a URL path.
LENIENT_UID_PATTERN = re.compile(r"^[0-9A-Za-z._-]+$")
UNDEFINED_LENGTH = 0xFFFFFFFF
_LONG_LENGTH_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UR", b"UT", b"UN", b"SV", b"UV"}
SUPPORTED_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_KNOWN_VRS = {vr.value.encode() for vr in VR}
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


# Every code a refused file can carry, and what it means (API docs and clients read this table).
REFUSAL_CODES = {
    "empty": "the file (or archive) holds no bytes or no files",
    "too_large": "over the per-file or per-request size limit, or a deflated data set expanding too far",
    "not_dicom": "no 'DICM' marker after the 128-byte preamble (not a DICOM PS3.10 file)",
    "bad_file_meta": "no valid file meta information (group 0002) after the 'DICM' marker",
    "truncated": "the file ends before an element, sequence or the pixel data it declares",
    "corrupt": "malformed structure or a header pydicom cannot read",
    "too_deep": "sequences nested deeper than the server reads",
    "missing_uid": "no Study, Series or SOP Instance UID",
    "invalid_uid": "a UID too long or with characters unsafe in a URL",
    "dimensions_mismatch": "pixel data smaller than rows x columns x frames x samples declare",
    "dicomdir": "a DICOMDIR media index, skipped (the files it lists are imported)",
    "wrong_study": "sent to a study (STOW-RS .../studies/{uid}) it does not belong to",
    "forbidden_study": "belongs to a stored study the uploader may not see (ask for it to be shared)",
    "no_practice": "starts a new study, and the uploader belongs to no practice to file it under",
    "conflict": "the SOP Instance UID (or series) is already stored with other content; the stored one is kept",
    "unreadable": "the upload could not be read from disk",
    "zip_unsafe": "an archive entry with an absolute or '..' path",
    "zip_too_many_entries": "an archive with more entries than allowed",
    "zip_too_large": "an archive expanding beyond the allowed total size",
    "zip_bomb": "an archive whose compression ratio is beyond the allowed one",
    "zip_encrypted": "an encrypted archive entry",
    "zip_unsupported": "an archive entry compressed with an unsupported method",
    "zip_corrupt": "an archive that cannot be read",
}


@dataclass
class IngestResult:
    filename: str
    status: str  # "stored" | "already_stored" | "refused"
    code: str = ""
    reason: str = ""
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    instance_id: int | None = None
    coerced: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


class IngestRefusedError(Exception):
    """A file that will not be stored, with a code for programs and a reason for people."""

    def __init__(self, code: str, reason: str, **uids: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.uids = uids


# ---------------------------------------------------------------------------------------------
# Public entry points


def ingest_file(
    source,
    *,
    filename: str,
    user,
    study_uid: str | None = None,
    batch: IngestBatch | None = None,
    practice=None,
) -> IngestResult:
    """Ingest one file (a path or a seekable binary file object). Never raises for bad data.

    Inside ``with IngestBatch(user) as batch``, pass ``batch``: the file is checked and staged at
    once, its rows are written with the others' when the batch commits, and the result returned
    here is final from then on (a file found stored meanwhile becomes "already_stored", one of a
    study the user may not see "forbidden_study"). ``practice``: where a new study is filed (the
    user's default practice when not given).
    """
    if batch is None:
        with IngestBatch(user, practice=practice) as single:
            return ingest_file(source, filename=filename, user=user, study_uid=study_uid, batch=single)
    return batch.add(_checked(source, filename, study_uid, _Limits.from_settings()))


def ingest_paths(
    files: Sequence[tuple[str, str]], *, batch: IngestBatch, study_uid: str | None = None, owned: bool = False
) -> list[IngestResult]:
    """``ingest_file`` for several files given as (name, path), checked side by side.

    With ``TELECONSULT_INGEST_PROCESSES`` above 1, the files are checked, read and staged on that
    many checking processes (Python reads a header on one core at a time), and handed to ``batch``
    in order; the rows are written by this process as ever. One result per file, in order.
    ``owned``: the files are the server's own temporary files (``storage.request_dir``), which are
    stored themselves rather than copies, their preamble zeroed in place.
    """
    limits = _Limits.from_settings()
    pool = _checking_pool() if len(files) > 1 else None
    if pool is None:
        return [batch.add(_checked(path, name, study_uid, limits, owned)) for name, path in files]
    # A few files per checking process in flight at a time, so that one large upload does not keep
    # the pool from the uploads that arrive while it is checked.
    window = 2 * settings.TELECONSULT_INGEST_PROCESSES
    in_flight: collections.deque[Future | None] = collections.deque()
    submitted = 0
    results: list[IngestResult] = []
    try:
        for name, path in files:
            while submitted < len(files) and len(in_flight) < window:
                in_flight.append(_submit(pool, files[submitted], study_uid, limits, owned) if pool else None)
                pool = pool if in_flight[-1] is not None else None
                submitted += 1
            future, outcome = in_flight.popleft(), None
            if future is not None:
                try:
                    outcome = future.result()
                except (BrokenProcessPool, CancelledError):
                    # A checking process died, or another upload that met the dead process shut
                    # the pool down and cancelled this check.
                    if pool is not None:
                        _discard_checking_pool(pool)
                    pool = None
            if outcome is None:
                # No pool, or it broke (a process killed, out of memory): checked here, and a new
                # pool starts for the next upload.
                outcome = _checked(path, name, study_uid, limits, owned)
            results.append(batch.add(outcome))
    finally:
        for future in in_flight:
            # Checks that will not be handed to the batch (an error above): their staged files go.
            with contextlib.suppress(BaseException):
                outcome = future.result() if future is not None and not future.cancel() else None
                if isinstance(outcome, _Pending):
                    outcome.staged.discard()
    return results


def _submit(
    pool: ProcessPoolExecutor, file: tuple[str, str], study_uid: str | None, limits: _Limits, owned: bool
) -> Future | None:
    """The check of ``file`` on the pool; None when the pool has lost a process (it is discarded)."""
    name, path = file
    try:
        return pool.submit(_checked, path, name, study_uid, limits, owned)
    except (BrokenProcessPool, RuntimeError):
        # Broken, or shut down by another upload that found it broken ("cannot schedule new
        # futures after shutdown").
        _discard_checking_pool(pool)
        return None


def ingest_files(
    files: Iterable[tuple[str, Any]], *, user, study_uid: str | None = None, practice=None
) -> list[IngestResult]:
    """Ingest many files; zip archives are checked, then expanded entry by entry. One result per file."""
    return list(iter_ingest(files, user=user, study_uid=study_uid, practice=practice))


def iter_ingest(
    files: Iterable[tuple[str, Any]], *, user, study_uid: str | None = None, practice=None
) -> Iterator[IngestResult]:
    """``ingest_files`` as a generator, for callers that show progress.

    Files are written in batches of ``BATCH_SIZE``, one transaction each; a batch's results are
    yielded once it is committed.
    """
    results: list[IngestResult] = []
    with IngestBatch(user, practice=practice) as batch:
        for result in _iter_ingest(files, batch=batch, study_uid=study_uid):
            results.append(result)
            if len(results) >= BATCH_SIZE:
                batch.commit()
                yield from results
                results.clear()
    yield from results


def _iter_ingest(
    files: Iterable[tuple[str, Any]], *, batch: IngestBatch, study_uid: str | None
) -> Iterator[IngestResult]:
    budget = settings.TELECONSULT_MAX_REQUEST_SIZE
    total = 0
    # Files on disk wait here to be checked together (``ingest_paths``), up to a batch's worth;
    # results still come out in the order of ``files``.
    waiting: list[tuple[str, str]] = []

    def checked_waiting() -> list[IngestResult]:
        results = ingest_paths(waiting, batch=batch, study_uid=study_uid) if waiting else []
        waiting.clear()
        return results

    for filename, source in files:
        try:
            with _opened(source) as fp:
                size = _size_of(fp)
                total += size
                if total > budget:
                    yield from checked_waiting()
                    yield IngestResult(
                        filename=filename,
                        status=REFUSED,
                        code="too_large",
                        reason=f"This upload is over the limit of {_human(budget)} in total; send the rest separately.",
                    )
                    continue
                if _is_zip(fp):
                    yield from checked_waiting()
                    yield from _ingest_zip(fp, filename=filename, batch=batch, study_uid=study_uid)
                    continue
        except OSError as exc:
            yield from checked_waiting()
            yield IngestResult(
                filename=filename, status=REFUSED, code="unreadable", reason=f"The file could not be read: {exc}"
            )
            continue
        path = _path_of(source)
        if path is None:
            yield from checked_waiting()
            yield ingest_file(source, filename=filename, user=batch.user, study_uid=study_uid, batch=batch)
            continue
        waiting.append((filename, path))
        if len(waiting) >= BATCH_SIZE:
            yield from checked_waiting()
    yield from checked_waiting()


def _path_of(source) -> str | None:
    """The path of a file on disk (a path, or an upload Django spooled to a temporary file)."""
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    temporary_file_path = getattr(source, "temporary_file_path", None)
    return temporary_file_path() if temporary_file_path else None


# ---------------------------------------------------------------------------------------------
# One file


@contextlib.contextmanager
def _opened(source) -> Iterator[BinaryIO]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fp:
            yield fp
    else:
        source.seek(0)
        yield source


def _size_of(fp: BinaryIO) -> int:
    fp.seek(0, os.SEEK_END)
    size = fp.tell()
    fp.seek(0)
    return size


def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _checked(
    source, filename: str, study_uid: str | None, limits: _Limits, owned: bool = False
) -> _Pending | IngestResult:
    """A file checked and staged, or its refusal. Runs here or on a checking process alike.
    ``owned``: ``source`` is a path to a temporary file of the server's own, staged where it lies."""
    try:
        with _opened(source) as fp:
            in_place = os.fspath(source) if owned else None
            return _check(fp, filename=filename, study_uid=study_uid, limits=limits, in_place=in_place)
    except IngestRefusedError as exc:
        return IngestResult(filename=filename, status=REFUSED, code=exc.code, reason=exc.reason, **exc.uids)
    except OSError as exc:
        return IngestResult(
            filename=filename, status=REFUSED, code="unreadable", reason=f"The file could not be read: {exc}"
        )


@dataclass(frozen=True)
class _Limits:
    """What checking a file needs from the settings, handed to checking processes explicitly."""

    max_file_size: int
    staging_dir: str | None

    @classmethod
    def from_settings(cls) -> _Limits:
        return cls(settings.TELECONSULT_MAX_FILE_SIZE, storage.staging_dir())


def _check(
    fp: BinaryIO, *, filename: str, study_uid: str | None, limits: _Limits, in_place: str | None = None
) -> _Pending:
    """Check one file, read its header and stage it (a copy, or the file at ``in_place``, the path of
    ``fp``, itself); raises IngestRefusedError with the reason.

    Reads nothing but the file and ``limits``, so it runs the same on a checking process."""
    size = _size_of(fp)
    if size == 0:
        raise IngestRefusedError("empty", "The file is empty (0 bytes).")
    if size > limits.max_file_size:
        raise IngestRefusedError(
            "too_large", f"The file is {_human(size)}, over the limit of {_human(limits.max_file_size)}."
        )
    if os.path.basename(filename.replace("\\", "/")).upper() == "DICOMDIR":
        raise IngestRefusedError(
            "dicomdir", "DICOMDIR is a media index, not an image: skipped (the files it lists are imported)."
        )
    head = fp.read(132)
    if len(head) < 132 or head[128:132] != b"DICM":
        raise IngestRefusedError(
            "not_dicom",
            "Not a DICOM file: there is no 'DICM' marker after the 128-byte preamble (DICOM PS3.10 file format).",
        )
    transfer_syntax, meta_sop_class, dataset_start = _read_file_meta(fp, size)
    if transfer_syntax == DEFLATED:
        with tempfile.TemporaryFile() as inflated:
            inflated_size = _inflate(fp, dataset_start, size, inflated)
            layout = _walk(inflated, 0, inflated_size, EXPLICIT_VR_LITTLE_ENDIAN)
    else:
        layout = _walk(fp, dataset_start, size, transfer_syntax)

    ds = _read_header(fp)
    read_warnings = list(layout.notes)
    if str(meta_sop_class) == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
        raise IngestRefusedError(
            "dicomdir", "DICOMDIR is a media index, not an image: skipped (the files it lists are imported)."
        )

    uids = _uids(ds, meta_sop_class)
    read_warnings += [
        f"{key} {value} is not a conforming UID"
        for key, value in uids.items()
        if key != "sop_class_uid" and not UID_PATTERN.match(value)
    ]
    if study_uid is not None and uids["study_instance_uid"] != study_uid:
        raise IngestRefusedError(
            "wrong_study",
            f"The file belongs to study {uids['study_instance_uid']}, not to study {study_uid} it was sent to.",
            **uids,
        )
    _check_pixel_data(ds, layout, uids)
    metadata, metadata_warnings = _metadata(ds, layout, uids)
    read_warnings += metadata_warnings
    fields = _instance_fields(ds, layout, transfer_syntax)

    patient, study, series = _row_values(ds, uids)
    result = IngestResult(filename=filename, status=STORED, **uids)
    if read_warnings:
        result.coerced = True
        result.reason = "Stored; the file does not fully conform: " + "; ".join(read_warnings)
    # Serialized here, on the checking process: the server then handles one string per file
    # rather than thousands of small objects (unpickling them and its garbage collector's passes
    # over them cost it more than the JSON encoding itself).
    metadata_json = json.dumps(metadata)
    if in_place is not None:
        staged = storage.stage_in_place(in_place)
    else:
        staged = storage.stage_with_zeroed_preamble(fp, limits.staging_dir)
    return _Pending(result, uids, fields, metadata_json, patient, study, series, staged)


# ---------------------------------------------------------------------------------------------
# File structure


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
                        f"The deflated data set expands beyond {_human(MAX_INFLATED_SIZE)}; this is refused.",
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
class _Layout:
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


def _tag_name(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _walk(fp: BinaryIO, start: int, size: int, transfer_syntax: str) -> _Layout:
    """Walk every element of the data set without reading values (seek past them).

    Refuses truncated files, malformed sequences and absurd nesting before pydicom (which
    recurses) reads anything, and finds where the pixel data is and how long it is.
    """
    implicit, little = _encoding(transfer_syntax)
    layout = _Layout()
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
                raise IngestRefusedError("corrupt", f"Unknown delimiter tag {_tag_name(tag)}.")
            continue
        if stack and stack[-1][0] == "seq":
            raise IngestRefusedError(
                "corrupt", f"Element {_tag_name(tag)} sits directly in a sequence, outside any item."
            )
        if here_implicit:
            (length,) = struct.unpack(order + "I", head[4:])
            header, vr = 8, b""
        else:
            vr = head[4:6]
            if vr in _LONG_LENGTH_VRS:
                if pos + 12 > size:
                    raise IngestRefusedError(
                        "truncated", f"The file ends in the middle of element {_tag_name(tag)}'s header."
                    )
                (length,) = struct.unpack(order + "I", fp.read(4))
                header = 12
            elif vr in _KNOWN_VRS:
                (length,) = struct.unpack(order + "H", head[6:])
                header = 8
            else:
                raise IngestRefusedError(
                    "corrupt", f"Element {_tag_name(tag)} at byte {pos} has no valid value representation."
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
                raise IngestRefusedError("truncated", f"The file ends inside sequence {_tag_name(tag)}.")
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
                f"The file is truncated: element {_tag_name(tag)} declares {length} bytes but only "
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


def _read_header(fp: BinaryIO) -> Dataset:
    # pydicom's warnings are not captured here: warnings.catch_warnings swaps process-wide state
    # and is not safe with uploads read in several threads. Non-conformance is noted by our own
    # checks instead (encoding, UIDs, invalid values).
    fp.seek(0)
    try:
        return pydicom.dcmread(fp, stop_before_pixels=True, defer_size=BULK_DATA_THRESHOLD)
    except RecursionError:
        raise IngestRefusedError("too_deep", "Sequences are nested too deeply to read; this is refused.") from None
    except Exception as exc:
        raise IngestRefusedError("corrupt", f"The DICOM header could not be read: {exc}") from None


def _text(ds: Dataset, keyword: str, max_length: int) -> str:
    """A header value as one string (values joined by backslashes), NULs removed, stripped."""
    plain = _plain_text(ds, keyword)
    if plain is not None:
        return plain.replace("\x00", "").strip()[:max_length]
    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        value = "\\".join(str(v) for v in value)
    return str(value).replace("\x00", "").strip()[:max_length]


def _plain_text(ds: Dataset, keyword: str) -> str | None:
    """The value of a text element as pydicom's ``str`` gives it, decoded straight from its bytes
    (this is read a dozen times per file); None when pydicom must decode it (another character
    set, escape sequences, a value read already, bytes the character set cannot decode)."""
    tag = tag_for_keyword(keyword)
    raw = ds.get_item(tag, keep_deferred=True)
    if not isinstance(raw, RawDataElement) or raw.value is None or b"\x1b" in raw.value:
        return None
    vr = raw.VR or dicomjson.dictionary_vr(tag)
    if vr in _ASCII_TEXT_VRS:
        encoding = default_encoding
    elif vr in _CHARSET_TEXT_VRS:
        encoding = dicomjson.text_encoding(ds.get("SpecificCharacterSet"))
        if encoding is None:
            return None
    else:
        return None
    try:
        text = raw.value.decode(encoding)
    except UnicodeDecodeError:
        return None
    if vr == "PN" and "=" in text:
        return None  # component groups: pydicom drops empty trailing ones
    text = text.rstrip("\x00 ")
    if vr in ("LT", "ST", "UT", "PN"):
        return text  # one value (PN: pydicom strips the whole, not each value)
    parts = text.split("\\")
    if len(parts) > 1 and any(part != part.strip(" \x00") for part in parts):
        return None  # blanks around one of several values: pydicom keeps some of them
    return text


def _uids(ds: Dataset, meta_sop_class: str) -> dict[str, str]:
    uids = {
        "study_instance_uid": _text(ds, "StudyInstanceUID", 200),
        "series_instance_uid": _text(ds, "SeriesInstanceUID", 200),
        "sop_instance_uid": _text(ds, "SOPInstanceUID", 200),
    }
    names = {
        "study_instance_uid": "StudyInstanceUID",
        "series_instance_uid": "SeriesInstanceUID",
        "sop_instance_uid": "SOPInstanceUID",
    }
    sop_class = _text(ds, "SOPClassUID", 200) or meta_sop_class
    missing = [names[key] for key, value in uids.items() if not value]
    if missing:
        raise IngestRefusedError(
            "missing_uid",
            f"The file has no {' and no '.join(missing)}; every instance needs Study, Series and SOP Instance UIDs.",
            **{key: value for key, value in uids.items() if value and len(value) <= 64},
        )
    for key, value in uids.items():
        if len(value) > 64 or not LENIENT_UID_PATTERN.match(value):
            raise IngestRefusedError(
                "invalid_uid", f"{names[key]} {value[:80]!r} is not a valid UID (digits and dots, at most 64)."
            )
    uids["sop_class_uid"] = sop_class[:64]
    return uids


def _check_pixel_data(ds: Dataset, layout: _Layout, uids: dict[str, str]) -> None:
    if layout.pixel_tag is None or "Rows" not in ds or "Columns" not in ds:
        return
    frames = _int(ds, "NumberOfFrames", 1) or 1
    if layout.pixel_length is None:
        if layout.fragments < frames:
            raise IngestRefusedError(
                "dimensions_mismatch",
                f"The file declares {frames} frame(s) but its compressed pixel data holds only "
                f"{layout.fragments} fragment(s).",
                **uids,
            )
        return
    try:
        expected = get_expected_length(ds, unit="bytes") if layout.pixel_tag == 0x7FE00010 else None
    except Exception:
        expected = None
    if not isinstance(expected, int):
        bits = _int(ds, "BitsAllocated", 0) or (32 if layout.pixel_tag == 0x7FE00008 else 64)
        samples = _int(ds, "SamplesPerPixel", 1) or 1
        expected = (_int(ds, "Rows", 0) or 0) * (_int(ds, "Columns", 0) or 0) * frames * samples * bits // 8
    if layout.pixel_length < expected:
        raise IngestRefusedError(
            "dimensions_mismatch",
            f"The pixel data is {layout.pixel_length} bytes but {_int(ds, 'Rows', 0)} rows x "
            f"{_int(ds, 'Columns', 0)} columns x {frames} frame(s) declared need {expected} bytes.",
            **uids,
        )


def _int(ds: Dataset, keyword: str, default: int | None, low: int = 0, high: int = 2**31 - 1) -> int | None:
    try:
        value = ds.get(keyword)
        if isinstance(value, MultiValue | list):
            value = value[0] if value else None
        number = int(float(value)) if value not in (None, "") else None
    except Exception:
        return default
    if number is None or not low <= number <= high:
        return default
    return number


# ---------------------------------------------------------------------------------------------
# Metadata and fields


_BULK_MARK = "teleconsult:bulk"
_ASCII_TEXT_VRS = {"AE", "AS", "CS", "DA", "DT", "TM", "UI"}
_CHARSET_TEXT_VRS = {"SH", "LO", "UC", "LT", "ST", "UT", "PN"}


def _strip_bulk_marks(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get("BulkDataURI") == _BULK_MARK:
            return {"vr": node.get("vr", "UN")}
        return {key: _strip_bulk_marks(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_strip_bulk_marks(value) for value in node]
    return node


def _metadata(ds: Dataset, layout: _Layout, uids: dict[str, str]) -> tuple[dict, list[str]]:
    """The header as DICOM JSON, and the elements left out because their values are invalid (or,
    like NaN or a NUL inside a text, valid for pydicom but not storable as JSON).

    Bulk data (pixel data, large binary values) keeps only its VR, so DICOMweb can answer with a
    BulkDataURI for it. Plain elements are converted straight from their bytes
    (``studies.dicomjson``), the others by pydicom, one by one rather than with pydicom's
    ``suppress_invalid_tags``, which switches pydicom's process-wide validation to "raise" while it
    runs and so would make uploads read in other threads at that moment fail.
    """
    document: dict[str, dict] = {}
    left_out: list[str] = []
    marked: list[Any] = []

    def mark_bulk(element) -> str:
        marked.append(element.tag)
        return _BULK_MARK

    try:
        encoding = dicomjson.text_encoding(ds.get("SpecificCharacterSet"))
    except Exception:
        encoding = None
    try:
        # The elements as stored (raw where pydicom has not converted them yet): no lookup per tag.
        for tag, raw in list(ds.items()):
            key = f"{int(tag):08X}"
            if isinstance(raw, RawDataElement) and raw.value is None and raw.length > BULK_DATA_THRESHOLD:
                vr = raw.VR or dicomjson.dictionary_vr(int(tag)) or "UN"
                if vr in BULK_VRS:
                    document[key] = {"vr": vr}
                    continue
            marked.clear()
            try:
                converted = _element_json(ds, tag, raw, encoding, mark_bulk)
                document[key] = _strip_bulk_marks(converted) if marked else converted
            except RecursionError:
                raise
            except Exception:
                left_out.append(_tag_name(int(tag)))
    except RecursionError:
        raise IngestRefusedError(
            "too_deep", "Sequences are nested too deeply to read; this is refused.", **uids
        ) from None
    if layout.pixel_tag is not None:
        document[f"{layout.pixel_tag:08X}"] = {"vr": layout.pixel_vr or "OW"}
    notes = [f"invalid values left out of the metadata: {', '.join(left_out[:10])}"] if left_out else []
    return dict(sorted(document.items())), notes


def _element_json(ds: Dataset, tag: BaseTag, raw, encoding: str | None, mark_bulk) -> dict:
    """One element of ``ds`` as DICOM JSON: plain elements straight from their bytes, the items of
    a sequence element by element the same way (with their own character set when they name one),
    anything else by pydicom. An element pydicom cannot convert raises, whatever its depth, so the
    caller leaves out the whole top-level element, as pydicom's own conversion would fail it. So
    does a value pydicom accepts but a JSON column cannot hold (the direct way never gives one).
    ``raw``: the element as ``ds`` holds it (``Dataset.items()``), converted or not."""
    if encoding is not None:
        if isinstance(raw, RawDataElement):
            direct = dicomjson.element_json(raw, encoding)  # None for a deferred value, read below
            if direct is not None:
                return direct
        # A sequence, raw or already read (by the checks before this), is converted item by item.
        private = (int(tag) >> 16) % 2
        if raw.VR == "SQ" or (not private and not raw.VR and dicomjson.dictionary_vr(int(tag)) == "SQ"):
            return {"vr": "SQ", "Value": [_item_json(item, encoding, mark_bulk) for item in ds[tag].value]}
    converted = ds[tag].to_json_dict(mark_bulk, BULK_DATA_THRESHOLD)
    if not dicomjson.storable(converted):
        raise ValueError("a value pydicom accepts but a JSON column cannot hold (NaN, infinity, a NUL)")
    return converted


def _item_json(item: Dataset, encoding: str | None, mark_bulk) -> dict:
    if 0x00080005 in item:
        # An item naming its own character set: its text is decoded with it, as pydicom does (an
        # empty value naming the default repertoire, not the enclosing data set's).
        try:
            encoding = dicomjson.text_encoding(item[0x00080005].value)
        except Exception:
            encoding = None
    return {f"{int(tag):08X}": _element_json(item, tag, raw, encoding, mark_bulk) for tag, raw in list(item.items())}


def _instance_fields(ds: Dataset, layout: _Layout, transfer_syntax: str) -> dict:
    return {
        "transfer_syntax_uid": transfer_syntax[:64],
        "instance_number": _int(ds, "InstanceNumber", None, low=-(2**31)),
        "rows": _int(ds, "Rows", None),
        "columns": _int(ds, "Columns", None),
        "number_of_frames": _int(ds, "NumberOfFrames", 1, low=1) or 1,
        "bits_allocated": _int(ds, "BitsAllocated", None, high=32767),
        "photometric_interpretation": _text(ds, "PhotometricInterpretation", 32),
        "has_pixel_data": layout.pixel_tag is not None,
    }


def _date(value: str) -> dt.date | None:
    digits = value.replace(".", "").replace("-", "").strip()[:8]
    try:
        return dt.datetime.strptime(digits, "%Y%m%d").date()
    except ValueError:
        return None


def _time(value: str) -> dt.time | None:
    text = value.replace(":", "").strip().split(".")[0]
    if not text.isdigit() or len(text) < 2:
        return None
    parts = [int(text[i : i + 2]) for i in range(0, min(len(text), 6), 2)]
    hour, minute, second = (parts + [0, 0])[:3]
    try:
        return dt.time(hour, minute, min(second, 59))
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Database


def _patient_key(ds: Dataset, study_uid: str) -> tuple[str, str]:
    patient_id = _text(ds, "PatientID", 64)
    issuer = _text(ds, "IssuerOfPatientID", 64)
    if not patient_id:
        # Without an ID, studies are never merged into one "unknown" patient: one record per study.
        issuer = "teleconsult:no-id:" + hashlib.sha256(study_uid.encode()).hexdigest()[:32]
    return patient_id, issuer


def _row_values(ds: Dataset, uids: dict[str, str]) -> tuple[dict, dict, dict]:
    """What the Patient, Study and Series rows of a file would hold, read while the header is open."""
    patient_id, issuer = _patient_key(ds, uids["study_instance_uid"])
    patient = {
        "patient_id": patient_id,
        "issuer": issuer,
        "name": _text(ds, "PatientName", 324),
        "birth_date": _date(_text(ds, "PatientBirthDate", 16)),
        "sex": _text(ds, "PatientSex", 16),
    }
    study = {
        "study_date": _date(_text(ds, "StudyDate", 16)),
        "study_time": _time(_text(ds, "StudyTime", 32)),
        "description": _text(ds, "StudyDescription", 256),
        "accession_number": _text(ds, "AccessionNumber", 64),
        "study_id": _text(ds, "StudyID", 32),
        "referring_physician": _text(ds, "ReferringPhysicianName", 324),
    }
    series = {
        "modality": _text(ds, "Modality", 16),
        "series_number": _int(ds, "SeriesNumber", None, low=-(2**31)),
        "description": _text(ds, "SeriesDescription", 256),
        "body_part": _text(ds, "BodyPartExamined", 64),
    }
    return patient, study, series


@dataclass(eq=False)
class _Pending:
    """A checked file staged for storage whose rows the batch writes when it commits."""

    result: IngestResult
    uids: dict[str, str]
    fields: dict
    metadata: str  # the DICOM JSON header, serialized
    patient: dict
    study: dict
    series: dict
    staged: storage.StagedFile
    stored: storage.Stored | None = None

    @property
    def sop_instance_uid(self) -> str:
        return self.uids["sop_instance_uid"]

    @property
    def study_instance_uid(self) -> str:
        return self.uids["study_instance_uid"]

    @property
    def series_instance_uid(self) -> str:
        return self.uids["series_instance_uid"]

    @property
    def sha256(self) -> str:
        return self.staged.sha256


@dataclass
class _Written:
    """What one write of pending files did, applied to the batch only once its savepoint is released."""

    stored: list[tuple[_Pending, Instance, Study, Series]] = field(default_factory=list)
    new_series: set[str] = field(default_factory=set)
    refused: list[tuple[_Pending, str, str]] = field(default_factory=list)
    resent: list[tuple[_Pending, int, str]] = field(default_factory=list)  # (file, stored pk, stored sha256)
    repeats: list[tuple[_Pending, _Pending]] = field(default_factory=list)  # (file, earlier file in this write)
    allowed: set[str] = field(default_factory=set)
    created: set[int] = field(default_factory=set)  # pks of the studies this write created


class _RowsChangedError(IntegrityError):
    """Rows a write depends on were stored by a simultaneous upload after the write looked them up."""


def _stored_instances(sop_instance_uids: Iterable[str]) -> dict[str, tuple[int, str]]:
    """SOP Instance UID -> (pk, sha256) of those already stored."""
    rows = Instance.objects.filter(sop_instance_uid__in=set(sop_instance_uids)).values_list(
        "sop_instance_uid", "pk", "sha256"
    )
    return {uid: (pk, sha256) for uid, pk, sha256 in rows}


def _sort_out(
    items: list[_Pending], existing: dict[str, tuple[int, str]], forbidden: set[str], written: _Written
) -> list[_Pending]:
    """Settle the files of studies the user may not see, re-sends and repeats; the others."""
    firsts: dict[str, _Pending] = {}
    fresh: list[_Pending] = []
    for item in items:
        if item.study_instance_uid in forbidden:
            # Otherwise one instance carrying someone else's StudyInstanceUID would be a way into
            # their study (the uploader is granted access to the study it lands in).
            reason = (
                f"The file belongs to study {item.study_instance_uid}, which is stored and not shared "
                "with you: ask for access to it first."
            )
            written.refused.append((item, "forbidden_study", reason))
        elif item.sop_instance_uid in existing:
            written.resent.append((item, *existing[item.sop_instance_uid]))
        elif item.sop_instance_uid in firsts:
            written.repeats.append((item, firsts[item.sop_instance_uid]))
        else:
            firsts[item.sop_instance_uid] = item
            fresh.append(item)
    return fresh


def _in_their_series(
    items: list[_Pending], studies: dict[str, Study], series: dict[str, Series], written: _Written
) -> list[_Pending]:
    """The files whose series is new or already in their own study; the others are conflicts."""
    kept: list[_Pending] = []
    owners: dict[str, str] = {}  # series UID -> study UID, for series new in this write
    for item in items:
        known = series.get(item.series_instance_uid)
        if known is not None:
            study = studies.get(item.study_instance_uid)
            if study is None and known.study.study_instance_uid == item.study_instance_uid:
                raise _RowsChangedError("the study was stored by a simultaneous upload after it was looked up")
            belongs = study is not None and known.study_id == study.pk
        else:
            belongs = owners.setdefault(item.series_instance_uid, item.study_instance_uid) == item.study_instance_uid
        if belongs:
            kept.append(item)
        else:
            reason = f"Series {item.series_instance_uid} is already stored in another study; the stored one is kept."
            written.refused.append((item, "conflict", reason))
    return kept


class IngestBatch:
    """The database side of ingesting several files: their rows written together, in one transaction.

    ``ingest_file`` checks and stages each file and hands it to the batch; when the batch commits,
    the rows of all its files are written at once: one query for the instances already stored, one
    to lock the batch's stored studies (in UID order, so simultaneous uploads do not deadlock), one
    for their series, the new rows inserted in bulk, the counts written once per study, and one
    render message for the lot. Results handed out by ``ingest_file`` inside a batch are final once
    the batch has committed.

    When a simultaneous upload creates one of the same rows first, the bulk write is rolled back (a
    savepoint) and the files are written one by one, each settling as stored, already stored or a
    conflict. Files moved into storage by a transaction that is rolled back are deleted again.
    """

    def __init__(self, user, *, practice=None) -> None:
        self.user = user
        self.uploader = user if user is not None and user.is_authenticated else None
        # The practice new studies (and their patient records) are filed under: the one named,
        # else the uploader's default practice. Files adding to a stored study go to its practice.
        self.practice = practice if practice is not None else default_practice(self.uploader)
        self._atomic: transaction.Atomic | None = None
        # Study UIDs this batch's user may add to, kept across the batch's transactions.
        self._allowed: set[str] = set()

    def __enter__(self) -> IngestBatch:
        self._begin()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit(restart=False)
        else:
            self._end(exc_type, exc, tb)

    def add(self, checked: _Pending | IngestResult) -> IngestResult:
        """Take a checked file (its rows are written at commit); its result, final once committed."""
        if isinstance(checked, IngestResult):
            return checked
        self._pending.append(checked)
        return checked.result

    def _begin(self) -> None:
        self._studies: dict[str, Study] = {}  # locked in this transaction
        self._series: dict[str, Series] = {}
        self._series_added: dict[int, int] = {}  # series pk -> instances stored
        self._study_added: dict[int, list] = {}  # study pk -> [instances, new series, new modalities, study]
        self._stored: set[str] = set()
        self._pending: list[_Pending] = []
        self._created: set[int] = set()  # pks of the studies created in this transaction
        self._atomic = transaction.atomic()
        self._atomic.__enter__()

    def _end(self, exc_type=None, exc=None, tb=None) -> None:
        atomic, self._atomic = self._atomic, None
        if atomic is None:
            return  # a failed commit already ended this transaction
        try:
            if exc_type is None:
                self._flush()
                self._write_counts()
        except BaseException as error:
            atomic.__exit__(type(error), error, error.__traceback__)
            self._abandon()
            raise
        try:
            atomic.__exit__(exc_type, exc, tb)
        except BaseException:
            self._abandon()
            raise
        if exc_type is not None:
            self._abandon()

    def commit(self, *, restart: bool = True) -> None:
        """Write the pending files' rows and the counts, commit, and (``restart``) begin the
        next transaction."""
        self._end()
        if restart:
            self._begin()

    def _abandon(self) -> None:
        for name in self._stored:
            storage.delete(name)
        for pending in self._pending:
            pending.staged.discard()

    # -- writing the rows ---------------------------------------------------------------------

    def _flush(self) -> None:
        # The files stay in self._pending until written, so an error here lets _abandon remove them.
        pending = self._pending
        if not pending:
            return
        rendered: list[int] = []
        try:
            rendered += self._write(pending)
        except (IntegrityError, OperationalError, DataError) as exc:
            # A simultaneous upload wrote one of the same rows first (or the database broke a lock
            # conflict with it): the bulk write is rolled back and each file is written on its own.
            logger.info("ingest: writing %d files one by one after %s", len(pending), type(exc).__name__)
            for item in pending:
                rendered += self._write_alone(item)
        self._pending = []
        if rendered:
            _queue_renders(rendered)

    def _write_alone(self, item: _Pending) -> list[int]:
        for _attempt in range(3):
            try:
                return self._write([item])
            except IntegrityError:
                # The instance, its patient, study or series was stored meanwhile and is visible
                # now: writing again settles the file with every check (a re-send, a conflict, a
                # study the user may not see) made anew.
                continue
            except OperationalError:
                break
            except DataError as exc:
                reason = f"The header holds a value the database cannot store: {exc}".strip()
                self._apply(_Written(refused=[(item, "corrupt", reason)]))
                return []
        reason = "The instance could not be recorded because of a simultaneous change to its study; send it again."
        self._apply(_Written(refused=[(item, "conflict", reason)]))
        return []

    def _write(self, items: list[_Pending]) -> list[int]:
        """Write the rows of ``items`` in a savepoint; returns the pks of the instances stored."""
        written = _Written()
        with transaction.atomic():
            # Instances first, then studies: the study of any instance found here is committed
            # already, so it is among the locked studies and the visibility check covers it.
            existing = _stored_instances(item.sop_instance_uid for item in items)
            studies = self._lock_studies({item.study_instance_uid for item in items})
            forbidden = self._forbidden(studies)
            written.allowed = set(studies) - forbidden
            fresh = _sort_out(items, existing, forbidden, written)
            series = self._stored_series({item.series_instance_uid for item in fresh})
            placed = self._filed(_in_their_series(fresh, studies, series, written), studies, written)
            placed = [item for item in placed if self._placed(item, written)]
            created = _create_studies(
                [item for item in placed if item.study_instance_uid not in studies], self.uploader, self.practice
            )
            studies.update(created)
            written.allowed |= created.keys()
            written.created = {study.pk for study in created.values()}
            new_series = []
            for item in placed:
                if item.series_instance_uid not in series:
                    row = Series(
                        series_instance_uid=item.series_instance_uid,
                        study=studies[item.study_instance_uid],
                        **item.series,
                    )
                    series[item.series_instance_uid] = row
                    new_series.append(row)
            _insert(Series, new_series)
            written.new_series = {row.series_instance_uid for row in new_series}
            for item in placed:
                instance = Instance(
                    sop_instance_uid=item.sop_instance_uid,
                    sop_class_uid=item.uids["sop_class_uid"],
                    series=series[item.series_instance_uid],
                    file=item.stored.name,
                    size=item.stored.size,
                    sha256=item.stored.sha256,
                    metadata=_json_value(item.metadata),
                    uploaded_by=self.uploader,
                    **item.fields,
                )
                written.stored.append((item, instance, studies[item.study_instance_uid], instance.series))
            _insert(Instance, [instance for _item, instance, _study, _series in written.stored])
        self._apply(written)
        return [instance.pk for _item, instance, _study, _series in written.stored]

    def _filed(self, items: list[_Pending], studies: dict[str, Study], written: _Written) -> list[_Pending]:
        """The files that have a practice to go to: their stored study's, or the batch's for a new
        study; the others are refused."""
        if self.practice is not None:
            return items
        kept = []
        for item in items:
            if item.study_instance_uid in studies:
                kept.append(item)
            else:
                reason = (
                    "Name the practice to file a new study under (practice=<number>)."
                    if self.uploader is not None and self.uploader.is_admin
                    else "You are not a member of a practice yet, so a new study has nowhere to be filed: "
                    "ask a practice admin to admit you."
                )
                written.refused.append((item, "no_practice", reason))
        return kept

    def _placed(self, item: _Pending, written: _Written) -> bool:
        """Move the file into storage (once: a write rolled back and retried reuses it); False,
        with the file refused, when storage fails."""
        if item.stored is None:
            try:
                item.stored = storage.store(item.staged)
            except OSError as exc:
                written.refused.append((item, "unreadable", f"The file could not be stored: {exc}"))
                return False
            self._stored.add(item.stored.name)
        return True

    def _lock_studies(self, study_uids: set[str]) -> dict[str, Study]:
        """The stored studies among ``study_uids``, locked until commit (one ingest at a time per
        study, so their counts stay exact under simultaneous uploads)."""
        studies = {uid: self._studies[uid] for uid in study_uids if uid in self._studies}
        missing = sorted(study_uids - studies.keys())
        if missing:
            locked = Study.objects.select_for_update().filter(study_instance_uid__in=missing)
            studies.update((study.study_instance_uid, study) for study in locked.order_by("study_instance_uid"))
        return studies

    def _forbidden(self, studies: dict[str, Study]) -> set[str]:
        """Stored studies this batch's user may not add to: those they may not see. Ingest without
        a user (the system's own objects) may add to any study."""
        if self.user is None:
            return set()
        unknown = [uid for uid in studies if uid not in self._allowed]
        if not unknown:
            return set()
        visible = visible_studies(self.user).filter(study_instance_uid__in=unknown)
        return set(unknown) - set(visible.values_list("study_instance_uid", flat=True))

    def _stored_series(self, series_uids: set[str]) -> dict[str, Series]:
        series = {uid: self._series[uid] for uid in series_uids if uid in self._series}
        missing = series_uids - series.keys()
        if missing:
            series.update(
                (row.series_instance_uid, row)
                for row in Series.objects.filter(series_instance_uid__in=missing).select_related("study")
            )
        return series

    def _drop(self, item: _Pending) -> None:
        if item.stored is not None:
            self._stored.discard(item.stored.name)
            storage.delete(item.stored.name)
            item.stored = None
        item.staged.discard()

    def _apply(self, written: _Written) -> None:
        """Settle each file's result and join the written rows to the batch's caches and counts."""
        self._allowed |= written.allowed
        self._created |= written.created
        for item, instance, study, series in written.stored:
            item.result.status = STORED
            item.result.instance_id = instance.pk
            self._studies[study.study_instance_uid] = study
            self._series[series.series_instance_uid] = series
            self._series_added[series.pk] = self._series_added.get(series.pk, 0) + 1
            added = self._study_added.setdefault(study.pk, [0, 0, set(), study])
            added[0] += 1
            if series.series_instance_uid in written.new_series:
                written.new_series.discard(series.series_instance_uid)
                added[1] += 1
                if series.modality:
                    added[2].add(series.modality)
        for item, code, reason in written.refused:
            self._settle(item, REFUSED, code=code, reason=reason)
        for item, pk, sha256 in written.resent:
            self._settle_resend(item, pk, sha256)
        for item, first in written.repeats:
            if first.result.status == STORED:
                self._settle_resend(item, first.result.instance_id, first.sha256)
            else:
                self._settle(item, first.result.status, code=first.result.code, reason=first.result.reason)

    def _settle_resend(self, item: _Pending, pk: int, sha256: str) -> None:
        if sha256 == item.sha256:
            self._settle(item, ALREADY_STORED, instance_id=pk)
        else:
            reason = (
                f"An instance with SOPInstanceUID {item.sop_instance_uid} is already stored with different "
                "content; the stored one is kept."
            )
            self._settle(item, REFUSED, code="conflict", reason=reason)

    def _settle(self, item: _Pending, status: str, *, code: str = "", reason: str = "", instance_id=None) -> None:
        self._drop(item)
        item.result.status, item.result.code, item.result.reason = status, code, reason
        item.result.instance_id, item.result.coerced = instance_id, False

    def _write_counts(self) -> None:
        """Add the transaction's instances, series and modalities to the counts, in one statement per
        table. (The uploader sees the study through its practice: no grant of its own is needed.)"""
        if connection.vendor == "postgresql":
            self._write_counts_postgresql()
        else:
            self._write_counts_orm()

    def _new_modalities(self) -> dict[int, str]:
        """ModalitiesInStudy of the studies this transaction adds a modality to, by study pk."""
        changed = {}
        for study_pk, (_added, _series, new_modalities, study) in self._study_added.items():
            if new_modalities - set(study.modality_list):
                changed[study_pk] = "\\".join(sorted({*study.modality_list, *new_modalities}))[:128]
        return changed

    def _write_counts_postgresql(self) -> None:
        # One statement per table whose text never changes (the rows come as arrays): built once,
        # not by the ORM for every batch, and prepared by psycopg where parameters are bound
        # server-side (DATABASE_SERVER_SIDE_BINDING).
        series_sql, study_sql = _count_statements()
        with connection.cursor() as cursor:
            if self._series_added:
                cursor.execute(series_sql, [list(self._series_added), list(self._series_added.values())])
            if self._study_added:
                modalities = self._new_modalities()
                rows = self._study_added.items()
                cursor.execute(
                    study_sql,
                    [
                        timezone.now(),
                        [study_pk for study_pk, _row in rows],
                        [added for _pk, (added, _series, _modalities, _study) in rows],
                        [new_series for _pk, (_added, new_series, _modalities, _study) in rows],
                        [modalities.get(study_pk) for study_pk, _row in rows],
                    ],
                )

    def _write_counts_orm(self) -> None:
        if self._series_added:
            increments = [When(pk=pk, then=Value(count)) for pk, count in self._series_added.items()]
            Series.objects.filter(pk__in=self._series_added).update(
                num_instances=F("num_instances") + Case(*increments, default=Value(0))
            )
        if not self._study_added:
            return
        instances, series = [], []
        for study_pk, (added, new_series, _new_modalities, _study) in self._study_added.items():
            instances.append(When(pk=study_pk, then=Value(added)))
            series.append(When(pk=study_pk, then=Value(new_series)))
        modalities = [When(pk=study_pk, then=Value(joined)) for study_pk, joined in self._new_modalities().items()]
        changes: dict[str, Any] = {
            "num_instances": F("num_instances") + Case(*instances, default=Value(0)),
            "num_series": F("num_series") + Case(*series, default=Value(0)),
            "updated_at": timezone.now(),
        }
        if modalities:
            changes["modalities"] = Case(*modalities, default=F("modalities"))
        Study.objects.filter(pk__in=self._study_added).update(**changes)


def _insert(model, rows: list) -> None:
    """Insert ``rows`` and give them their keys: on PostgreSQL one single-row INSERT, built once per
    model, sent for all of them in one pipeline (half the cost of ``bulk_create``'s one statement,
    whose text changes with the number of rows, so Django compiles and psycopg parses it anew);
    elsewhere ``bulk_create`` where the database returns keys, else one by one."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        fields, sql = _insert_statement(model)
        values = []
        for row in rows:
            row._prepare_related_fields_for_save(operation_name="bulk_create")
            values.append([_db_value(field, row) for field in fields])
        # Django's error classes (IntegrityError for a simultaneous upload) as for its own queries.
        with connection.cursor() as cursor, connection.wrap_database_errors:
            psycopg_cursor = cursor.cursor
            psycopg_cursor.executemany(sql, values, returning=True)
            for row in rows:
                row.pk = psycopg_cursor.fetchone()[0]
                row._state.adding, row._state.db = False, connection.alias
                psycopg_cursor.nextset()
        return
    if connection.features.can_return_rows_from_bulk_insert:
        # Batches keep each statement well under PostgreSQL's 65,535 parameters.
        model.objects.bulk_create(rows, batch_size=1000)
    else:
        for row in rows:
            row.save(force_insert=True)


class _JsonText(str):
    """A JSON field's value already serialized (by a checking process), sent to PostgreSQL as is."""


def _json_value(text: str):
    """A JSON field's value from its serialized form: kept so on PostgreSQL, where ``_insert``
    sends it as is; parsed elsewhere, where the ORM writes the rows."""
    return _JsonText(text) if connection.vendor == "postgresql" else json.loads(text)


def _db_value(field, row):
    value = field.pre_save(row, True)
    if isinstance(value, _JsonText):
        return Jsonb(value, dumps=str)
    return field.get_db_prep_save(value, connection)


@functools.cache
def _count_statements() -> tuple[str, str]:
    """The UPDATEs that add a batch's counts, rows given as arrays (PostgreSQL)."""
    quote = connection.ops.quote_name

    def column(model, name: str) -> str:
        return quote(model._meta.get_field(name).column)

    series_sql = (
        f"UPDATE {quote(Series._meta.db_table)} AS s SET {column(Series, 'num_instances')} = "  # noqa: S608 (names from the models)
        f"s.{column(Series, 'num_instances')} + v.added "
        f"FROM unnest(%s::bigint[], %s::integer[]) AS v(id, added) WHERE s.{column(Series, 'id')} = v.id"
    )
    study_sql = (
        f"UPDATE {quote(Study._meta.db_table)} AS s SET "  # noqa: S608 (names from the models)
        f"{column(Study, 'num_instances')} = s.{column(Study, 'num_instances')} + v.added, "
        f"{column(Study, 'num_series')} = s.{column(Study, 'num_series')} + v.series, "
        f"{column(Study, 'modalities')} = COALESCE(v.modalities, s.{column(Study, 'modalities')}), "
        f"{column(Study, 'updated_at')} = %s "
        "FROM unnest(%s::bigint[], %s::integer[], %s::integer[], %s::text[]) AS v(id, added, series, modalities) "
        f"WHERE s.{column(Study, 'id')} = v.id"
    )
    return series_sql, study_sql


@functools.cache
def _insert_statement(model) -> tuple[list, str]:
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    table, key = quote(model._meta.db_table), quote(model._meta.pk.column)
    return fields, f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING {key}"  # noqa: S608 (names from the model)


def _create_studies(items: list[_Pending], uploader, practice) -> dict[str, Study]:
    """Insert the studies of ``items`` (and their patients where new) under ``practice``, in UID
    order; by study UID. Patient records are the practice's own: the same PatientID and issuer in
    another practice is another record.

    Inserted in the caller's savepoint: a simultaneous upload creating the same patient or study
    makes the insert fail, the savepoint is rolled back and the files written again one by one.
    """
    firsts: dict[str, _Pending] = {}
    for item in sorted(items, key=lambda item: item.study_instance_uid):
        firsts.setdefault(item.study_instance_uid, item)
    if not firsts:
        return {}
    keys = {(item.patient["patient_id"], item.patient["issuer"]): item for item in firsts.values()}
    match = functools.reduce(operator.or_, (Q(patient_id=pid, issuer=issuer) for pid, issuer in keys))
    patients = {(row.patient_id, row.issuer): row for row in Patient.objects.filter(match, practice=practice)}
    new_patients = [
        Patient(**item.patient, practice=practice, uploaded_by=uploader)
        for key, item in sorted(keys.items())
        if key not in patients
    ]
    _insert(Patient, new_patients)
    patients.update(((row.patient_id, row.issuer), row) for row in new_patients)
    studies = {
        uid: Study(
            study_instance_uid=uid,
            patient=patients[(item.patient["patient_id"], item.patient["issuer"])],
            practice=practice,
            uploaded_by=uploader,
            **item.study,
        )
        for uid, item in firsts.items()
    }
    _insert(Study, list(studies.values()))
    return studies


def _queue_renders(instance_pks: list[int]) -> None:
    """After commit, one message for the thumbnails of the instances a batch stored."""

    def queue() -> None:
        from studies import tasks

        try:
            if len(instance_pks) == 1:
                tasks.render_instance.delay(instance_pk=instance_pks[0])
            else:
                tasks.render_instances.delay(instance_pks=instance_pks)
        except Exception:
            # The instances are stored: a broker that is down (or, without one, a render run in
            # place that fails) must not turn the upload into an error. They stay pending, and
            # beat's safety net (render_pending) queues them again.
            logger.exception("ingest: thumbnails of %d stored instances not queued now", len(instance_pks))

    transaction.on_commit(queue)


# ---------------------------------------------------------------------------------------------
# Checking processes

_pool_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_owner = 0  # the pid that started _pool: a forked child starts its own


def _checking_pool() -> ProcessPoolExecutor | None:
    """This process's pool of checking processes, started on first use; None when checking here."""
    global _pool, _pool_owner
    workers = settings.TELECONSULT_INGEST_PROCESSES
    if workers < 2 or multiprocessing.current_process().daemon:
        return None  # a daemonic process (a Celery prefork child) may not start processes
    with _pool_lock:
        if _pool is not None and _pool_owner == os.getpid() and _pool._max_workers != workers:
            _pool.shutdown(wait=False, cancel_futures=True)  # the setting changed (tests)
            _pool = None
        if _pool is None or _pool_owner != os.getpid():
            # Started from a fresh interpreter (forkserver), not forked from this one: a server
            # process has threads, and a fork copies their locks in whatever state they are.
            _pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=checking_process.start,
                initargs=(os.getpid(),),
            )
            _pool_owner = os.getpid()
        return _pool


def start_checking_processes() -> None:
    """Start the checking processes now (at server start) rather than on the first upload; first,
    with or without them, remove what uploads cut short by a killed process left in the staging
    directory (staged files and request directories a day old)."""
    try:
        storage.remove_stale_staged_files(max_age=dt.timedelta(days=1))
    except OSError:
        logger.exception("ingest: files left behind by uploads cut short could not be removed")
    pool = _checking_pool()
    if pool is None:
        return
    try:
        for _ in range(settings.TELECONSULT_INGEST_PROCESSES):
            pool.submit(_ready)
    except Exception:
        # The server serves anyway: uploads are checked in it while the pool cannot start.
        logger.exception("ingest: the checking processes could not be started")


def _ready() -> None:
    """Run on each checking process at start: unpickling it imports this module (and pydicom)."""


def _discard_checking_pool(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _pool_lock:
        if _pool is not pool:
            return  # discarded already, by another upload that met the same broken pool
        _pool = None
    logger.warning("ingest: a checking process died; files are checked here until a new pool starts")
    pool.shutdown(wait=False, cancel_futures=True)


# ---------------------------------------------------------------------------------------------
# Zip archives


def _is_zip(fp: BinaryIO) -> bool:
    fp.seek(0)
    head = fp.read(132)
    fp.seek(0)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return False  # a DICOM file whose preamble also looks like a zip is handled as DICOM
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06") and zipfile.is_zipfile(fp)


def _unsafe_name(name: str) -> bool:
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        return True
    return any(part == ".." for part in normalized.split("/"))


def _skipped_entry(info: zipfile.ZipInfo) -> bool:
    parts = info.filename.replace("\\", "/").split("/")
    is_symlink = stat.S_ISLNK(info.external_attr >> 16)
    return info.is_dir() or is_symlink or "__MACOSX" in parts or parts[-1] in {".DS_Store", "Thumbs.db"}


def _check_zip(archive: zipfile.ZipFile, filename: str) -> list[zipfile.ZipInfo]:
    """Every check on the archive's directory, before a single entry is extracted."""
    entries = archive.infolist()
    if len(entries) > settings.TELECONSULT_ZIP_MAX_ENTRIES:
        raise IngestRefusedError(
            "zip_too_many_entries",
            f"The archive has {len(entries)} entries, over the limit of {settings.TELECONSULT_ZIP_MAX_ENTRIES}.",
        )
    for info in entries:
        if _unsafe_name(info.filename):
            raise IngestRefusedError(
                "zip_unsafe",
                f"The archive entry {info.filename!r} has an absolute or '..' path; the archive is refused.",
            )
        if info.compress_type not in SUPPORTED_ZIP_METHODS:
            raise IngestRefusedError(
                "zip_unsupported",
                f"The archive entry {info.filename!r} uses a compression method this server does not read "
                "(use stored or deflate).",
            )
        if info.flag_bits & 0x1:
            raise IngestRefusedError(
                "zip_encrypted", f"The archive entry {info.filename!r} is encrypted; send it unencrypted."
            )
    files = [info for info in entries if not _skipped_entry(info)]
    total = sum(info.file_size for info in files)
    if total > settings.TELECONSULT_ZIP_MAX_UNCOMPRESSED:
        raise IngestRefusedError(
            "zip_too_large",
            f"The archive expands to {_human(total)}, over the limit of "
            f"{_human(settings.TELECONSULT_ZIP_MAX_UNCOMPRESSED)}.",
        )
    ratio_limit = settings.TELECONSULT_ZIP_MAX_RATIO
    for info in files:
        if info.file_size > ratio_limit * max(info.compress_size, 1) and info.file_size > 1024 * 1024:
            raise IngestRefusedError(
                "zip_bomb",
                f"The archive entry {info.filename!r} expands {info.file_size // max(info.compress_size, 1)} times "
                f"(limit {ratio_limit}); it looks like a zip bomb and the archive is refused.",
            )
    compressed = sum(info.compress_size for info in files)
    if total > 1024 * 1024 and total > ratio_limit * max(compressed, 1):
        raise IngestRefusedError(
            "zip_bomb",
            f"The archive expands {total // max(compressed, 1)} times (limit {ratio_limit}); "
            "it looks like a zip bomb and is refused.",
        )
    return files


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, out: BinaryIO) -> None:
    """Stream one entry, never writing more than its declared size or the per-file limit."""
    limit = min(info.file_size, settings.TELECONSULT_MAX_FILE_SIZE)
    written = 0
    with archive.open(info) as entry:
        while chunk := entry.read(storage.CHUNK_SIZE):
            written += len(chunk)
            if written > limit:
                raise IngestRefusedError(
                    "zip_bomb", f"The archive entry {info.filename!r} expands beyond its declared size."
                )
            out.write(chunk)


def _ingest_zip(fp: BinaryIO, *, filename: str, batch: IngestBatch, study_uid: str | None) -> Iterator[IngestResult]:
    try:
        with zipfile.ZipFile(fp) as archive:
            entries = _check_zip(archive, filename)
            if not entries:
                raise IngestRefusedError("empty", "The archive holds no files.")
            for info in entries:
                entry_name = f"{filename}/{info.filename}"
                if info.file_size > settings.TELECONSULT_MAX_FILE_SIZE:
                    yield IngestResult(
                        filename=entry_name,
                        status=REFUSED,
                        code="too_large",
                        reason=f"The file is {_human(info.file_size)}, over the limit of "
                        f"{_human(settings.TELECONSULT_MAX_FILE_SIZE)}.",
                    )
                    continue
                with tempfile.TemporaryFile() as out:
                    try:
                        _extract(archive, info, out)
                    except IngestRefusedError as exc:
                        yield IngestResult(filename=entry_name, status=REFUSED, code=exc.code, reason=exc.reason)
                        continue
                    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
                        yield IngestResult(
                            filename=entry_name,
                            status=REFUSED,
                            code="zip_corrupt",
                            reason=f"The archive entry could not be extracted: {exc}",
                        )
                        continue
                    yield ingest_file(out, filename=entry_name, user=batch.user, study_uid=study_uid, batch=batch)
    except IngestRefusedError as exc:
        yield IngestResult(filename=filename, status=REFUSED, code=exc.code, reason=exc.reason)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
        yield IngestResult(
            filename=filename, status=REFUSED, code="zip_corrupt", reason=f"The zip archive could not be read: {exc}"
        )

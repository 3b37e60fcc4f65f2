"""Checking one file, in order, up to the first refusal: size, the PS3.10 "DICM" prefix, the file
meta information, the structure of the whole file (``structure``), the header pydicom reads
(``header``), the UIDs, the pixel data against the declared dimensions; then the file is staged.

Reads nothing but the file and its ``Limits``, so it runs the same here or on a checking process
(``pool``); what it gives back (``Pending`` or a refused ``IngestResult``) is pickled back from there.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from pydicom.dataset import Dataset
from pydicom.pixels.utils import get_expected_length

from .. import storage
from . import header, structure
from .header import int_value
from .results import REFUSED, STORED, IngestRefusedError, IngestResult, human
from .structure import Layout

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


@contextlib.contextmanager
def opened(source) -> Iterator[BinaryIO]:
    """``source`` (a path or a seekable binary file object) open for reading from its start."""
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fp:
            yield fp
    else:
        source.seek(0)
        yield source


def size_of(fp: BinaryIO) -> int:
    fp.seek(0, os.SEEK_END)
    size = fp.tell()
    fp.seek(0)
    return size


@dataclass(frozen=True)
class Limits:
    """What checking a file needs from the settings, handed to checking processes explicitly."""

    max_file_size: int
    staging_dir: str | None

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(settings.TELECONSULT_MAX_FILE_SIZE, storage.staging_dir())


@dataclass(eq=False)
class Pending:
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


def checked(
    source, filename: str, study_uid: str | None, limits: Limits, owned: bool = False
) -> Pending | IngestResult:
    """A file checked and staged, or its refusal. Runs here or on a checking process alike.
    ``owned``: ``source`` is a path to a temporary file of the server's own, staged where it lies."""
    try:
        with opened(source) as fp:
            in_place = os.fspath(source) if owned else None
            return check(fp, filename=filename, study_uid=study_uid, limits=limits, in_place=in_place)
    except IngestRefusedError as exc:
        return IngestResult(filename=filename, status=REFUSED, code=exc.code, reason=exc.reason, **exc.uids)
    except OSError as exc:
        return IngestResult(
            filename=filename, status=REFUSED, code="unreadable", reason=f"The file could not be read: {exc}"
        )


def check(
    fp: BinaryIO, *, filename: str, study_uid: str | None, limits: Limits, in_place: str | None = None
) -> Pending:
    """Check one file, read its header and stage it (a copy, or the file at ``in_place``, the path of
    ``fp``, itself); raises IngestRefusedError with the reason.

    Reads nothing but the file and ``limits``, so it runs the same on a checking process."""
    size = size_of(fp)
    if size == 0:
        raise IngestRefusedError("empty", "The file is empty (0 bytes).")
    if size > limits.max_file_size:
        raise IngestRefusedError(
            "too_large", f"The file is {human(size)}, over the limit of {human(limits.max_file_size)}."
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
    transfer_syntax, meta_sop_class, layout = structure.walk_file(fp, size)

    ds = header.read_header(fp)
    read_warnings = list(layout.notes)
    if str(meta_sop_class) == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
        raise IngestRefusedError(
            "dicomdir", "DICOMDIR is a media index, not an image: skipped (the files it lists are imported)."
        )

    uids = header.read_uids(ds, meta_sop_class)
    read_warnings += [
        f"{key} {value} is not a conforming UID"
        for key, value in uids.items()
        if key != "sop_class_uid" and not header.UID_PATTERN.match(value)
    ]
    if study_uid is not None and uids["study_instance_uid"] != study_uid:
        raise IngestRefusedError(
            "wrong_study",
            f"The file belongs to study {uids['study_instance_uid']}, not to study {study_uid} it was sent to.",
            **uids,
        )
    check_pixel_data(ds, layout, uids)
    metadata, metadata_warnings = header.metadata(ds, layout, uids)
    read_warnings += metadata_warnings
    fields = header.instance_fields(ds, layout, transfer_syntax)

    patient, study, series = header.row_values(ds, uids)
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
    return Pending(result, uids, fields, metadata_json, patient, study, series, staged)


def check_pixel_data(ds: Dataset, layout: Layout, uids: dict[str, str]) -> None:
    if layout.pixel_tag is None or "Rows" not in ds or "Columns" not in ds:
        return
    frames = int_value(ds, "NumberOfFrames", 1) or 1
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
        bits = int_value(ds, "BitsAllocated", 0) or (32 if layout.pixel_tag == 0x7FE00008 else 64)
        samples = int_value(ds, "SamplesPerPixel", 1) or 1
        expected = (int_value(ds, "Rows", 0) or 0) * (int_value(ds, "Columns", 0) or 0) * frames * samples * bits // 8
    if layout.pixel_length < expected:
        raise IngestRefusedError(
            "dimensions_mismatch",
            f"The pixel data is {layout.pixel_length} bytes but {int_value(ds, 'Rows', 0)} rows x "
            f"{int_value(ds, 'Columns', 0)} columns x {frames} frame(s) declared need {expected} bytes.",
            **uids,
        )

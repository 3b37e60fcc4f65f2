"""Zip archives among the uploads: every check on the archive's directory before a single entry
is extracted (unsafe paths, encryption, methods, entry count, total size, compression ratio), then
each entry extracted to a temporary file, never past its declared size, and checked as a file."""

from __future__ import annotations

import re
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from typing import BinaryIO

from django.conf import settings

from .. import storage
from .batch import IngestBatch
from .checks import Limits, checked
from .results import REFUSED, IngestRefusedError, IngestResult, human

SUPPORTED_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def is_zip(fp: BinaryIO) -> bool:
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
            f"The archive expands to {human(total)}, over the limit of "
            f"{human(settings.TELECONSULT_ZIP_MAX_UNCOMPRESSED)}.",
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


def ingest_zip(fp: BinaryIO, *, filename: str, batch: IngestBatch, study_uid: str | None) -> Iterator[IngestResult]:
    """The result of each file of the archive, checked and handed to ``batch`` like any file; one
    refusal for the whole archive when its directory fails a check or it cannot be read."""
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
                        reason=f"The file is {human(info.file_size)}, over the limit of "
                        f"{human(settings.TELECONSULT_MAX_FILE_SIZE)}.",
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
                    yield batch.add(checked(out, entry_name, study_uid, Limits.from_settings()))
    except IngestRefusedError as exc:
        yield IngestResult(filename=filename, status=REFUSED, code=exc.code, reason=exc.reason)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
        yield IngestResult(
            filename=filename, status=REFUSED, code="zip_corrupt", reason=f"The zip archive could not be read: {exc}"
        )

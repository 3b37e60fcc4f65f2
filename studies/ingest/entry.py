"""The entry points: one file (``ingest_file``), files on disk checked side by side on the checking
processes (``ingest_paths``), and a stream of uploads and zip archives written in batches
(``ingest_files``, ``iter_ingest``)."""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from django.conf import settings

from .batch import IngestBatch
from .checks import Limits, Pending, checked, opened, size_of
from .pool import checking_pool, discard_checking_pool, submit_check
from .results import REFUSED, IngestResult, human
from .zips import ingest_zip, is_zip

# Files written per transaction by ingest_files (a STOW-RS request is one batch whatever its size).
BATCH_SIZE = 20


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
    return batch.add(checked(source, filename, study_uid, Limits.from_settings()))


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
    limits = Limits.from_settings()
    pool = checking_pool() if len(files) > 1 else None
    if pool is None:
        return [batch.add(checked(path, name, study_uid, limits, owned)) for name, path in files]
    # A few files per checking process in flight at a time, so that one large upload does not keep
    # the pool from the uploads that arrive while it is checked.
    window = 2 * settings.TELECONSULT_INGEST_PROCESSES
    in_flight: collections.deque[Future | None] = collections.deque()
    submitted = 0
    results: list[IngestResult] = []
    try:
        for name, path in files:
            while submitted < len(files) and len(in_flight) < window:
                in_flight.append(submit_check(pool, files[submitted], study_uid, limits, owned) if pool else None)
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
                        discard_checking_pool(pool)
                    pool = None
            if outcome is None:
                # No pool, or it broke (a process killed, out of memory): checked here, and a new
                # pool starts for the next upload.
                outcome = checked(path, name, study_uid, limits, owned)
            results.append(batch.add(outcome))
    finally:
        for future in in_flight:
            # Checks that will not be handed to the batch (an error above): their staged files go.
            with contextlib.suppress(BaseException):
                outcome = future.result() if future is not None and not future.cancel() else None
                if isinstance(outcome, Pending):
                    outcome.staged.discard()
    return results


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
            with opened(source) as fp:
                size = size_of(fp)
                total += size
                if total > budget:
                    yield from checked_waiting()
                    yield IngestResult(
                        filename=filename,
                        status=REFUSED,
                        code="too_large",
                        reason=f"This upload is over the limit of {human(budget)} in total; send the rest separately.",
                    )
                    continue
                if is_zip(fp):
                    yield from checked_waiting()
                    yield from ingest_zip(fp, filename=filename, batch=batch, study_uid=study_uid)
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

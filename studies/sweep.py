"""Stored files that no row refers to, removed once they are older than a grace period.

Ingest moves each file into storage before the batch writes its rows, and commits the rows once
(``studies.ingest.batch``): a server killed in between (kill -9, the OOM killer, a power cut)
leaves no half-written rows, which is right, but it leaves the files it had moved, which nothing
else would ever remove. The same holds for a thumbnail or an attachment whose row went away
without its file.

Which files rows own is read from the models, not listed here: every ``FileField`` of every
installed model (the instance's DICOM file and thumbnail, a consult's attachments, a specialist's
licence scan, and whatever another app adds), so ``studies`` names no model of a higher app.
Everything the portal stores under the media root belongs to one of those rows, so the whole
media root is walked (a field's folder cannot always be known: ``upload_to`` may be a function),
but for hidden entries: the staging directory ``.incoming`` is the ingest's own, with its own
rules (``studies.storage``).

The grace period keeps a file whose rows are still being written: a file is moved into storage
before its batch commits. Memory stays bounded at any scale: the tree is walked a directory entry
at a time (``os.scandir`` on local storage, so even a folder of a million thumbnails is never
listed whole), and the candidates are checked against the database ``BATCH_SIZE`` at a time, one
query per model for each batch.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from django.apps import apps
from django.core.files.storage import FileSystemStorage, Storage, default_storage
from django.db import models
from django.utils import timezone

logger = logging.getLogger(__name__)

# Names per query. The file columns have no index, so each query reads its model's table once:
# larger batches read it less often (5,000 names are about 1 MB here, 10,000 parameters there).
BATCH_SIZE = 5000


@dataclass
class SweepReport:
    """What a sweep found: the unreferenced files old enough to go (removed unless a dry run) and
    their bytes, and how many files it checked."""

    removed: int = 0
    removed_bytes: int = 0
    checked: int = 0
    young: int = 0  # files within the grace period, not checked
    dry_run: bool = False


@dataclass(frozen=True)
class _Candidate:
    name: str
    size: int


def file_fields() -> dict[type[models.Model], list[str]]:
    """Every file field of every installed model, by model: the rows that own stored files."""
    found: dict[type[models.Model], list[str]] = {}
    for model in apps.get_models():
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, models.FileField):
                found.setdefault(model, []).append(model_field.attname)
    return found


def referenced(names: list[str], fields: dict[type[models.Model], list[str]]) -> set[str]:
    """Those of ``names`` that some row's file field holds: one query per model."""
    found: set[str] = set()
    for model, columns in fields.items():
        condition = models.Q()
        for column in columns:
            condition |= models.Q(**{f"{column}__in": names})
        for values in model._base_manager.filter(condition).order_by().values_list(*columns):
            found.update(values)
    return found


def walk(storage: Storage, folder: str) -> Iterator[tuple[str, int, float]]:
    """(name, size, modified as a timestamp) of every file under ``folder`` of ``storage``; hidden
    files and folders (the staging directory ``.incoming``) left out; a directory entry at a time
    on local storage."""
    if isinstance(storage, FileSystemStorage):
        yield from _walk_local(storage.location, folder)
    else:
        yield from _walk_storage(storage, folder)


def _walk_local(root: str, folder: str) -> Iterator[tuple[str, int, float]]:
    try:
        entries = os.scandir(os.path.join(root, folder) if folder else root)
    except (FileNotFoundError, NotADirectoryError):
        return
    with entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            name = posixpath.join(folder, entry.name) if folder else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    yield from _walk_local(root, name)
                elif entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    yield name, stat.st_size, stat.st_mtime
            except FileNotFoundError:
                continue  # removed meanwhile


def _walk_storage(storage: Storage, folder: str) -> Iterator[tuple[str, int, float]]:
    try:
        folders, files = storage.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return
    for file_name in files:
        name = posixpath.join(folder, file_name) if folder else file_name
        try:
            yield name, storage.size(name), storage.get_modified_time(name).timestamp()
        except FileNotFoundError:
            continue
    for sub in folders:
        if not sub.startswith("."):
            yield from _walk_storage(storage, posixpath.join(folder, sub) if folder else sub)


def _batches(items: Iterable[_Candidate], size: int) -> Iterator[list[_Candidate]]:
    batch: list[_Candidate] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def sweep_unreferenced_files(
    *,
    grace: dt.timedelta,
    dry_run: bool = False,
    storage: Storage | None = None,
    on_file: Callable[[str, int], None] | None = None,
    batch_size: int = BATCH_SIZE,
) -> SweepReport:
    """Remove (``dry_run``: only find) the stored files older than ``grace`` that no row refers
    to; ``on_file(name, size)`` is called for each. What was found, in a ``SweepReport``."""
    if grace < dt.timedelta(0):
        raise ValueError(f"The grace period must not be negative, not {grace}.")
    storage = storage or default_storage
    fields = file_fields()
    cutoff = (timezone.now() - grace).timestamp()
    report = SweepReport(dry_run=dry_run)

    def old_enough() -> Iterator[_Candidate]:
        for name, size, modified in walk(storage, ""):
            if modified >= cutoff:
                report.young += 1
                continue
            yield _Candidate(name, size)

    for batch in _batches(old_enough(), batch_size):
        report.checked += len(batch)
        kept = referenced([candidate.name for candidate in batch], fields)
        for candidate in batch:
            if candidate.name in kept:
                continue
            if not dry_run:
                try:
                    storage.delete(candidate.name)
                except FileNotFoundError:
                    continue
            report.removed += 1
            report.removed_bytes += candidate.size
            if on_file is not None:
                on_file(candidate.name, candidate.size)
    if report.removed and not dry_run:
        logger.warning(
            "sweep: removed %d stored files (%d bytes) that no row refers to", report.removed, report.removed_bytes
        )
    return report

"""The checking processes: a pool of processes, started from a fresh interpreter, that check, read
and stage uploaded files side by side (Python reads a header on one core at a time).

Functions run there are pickled by their module path (``checks.checked``, ``ready``); each process
starts with ``studies.checking_process.start``, which sets Django up before anything of this
package is imported there. Nothing starts at import: the pool starts on first use, or at server
start through ``start_checking_processes``.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from django.conf import settings

from .. import checking_process, storage
from .checks import Limits, checked

logger = logging.getLogger(__name__)

_pool_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_owner = 0  # the pid that started _pool: a forked child starts its own


def checking_pool() -> ProcessPoolExecutor | None:
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
    pool = checking_pool()
    if pool is None:
        return
    try:
        for _ in range(settings.TELECONSULT_INGEST_PROCESSES):
            pool.submit(ready)
    except Exception:
        # The server serves anyway: uploads are checked in it while the pool cannot start.
        logger.exception("ingest: the checking processes could not be started")


def ready() -> None:
    """Run on each checking process at start: unpickling it imports this package (and pydicom)."""


def discard_checking_pool(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _pool_lock:
        if _pool is not pool:
            return  # discarded already, by another upload that met the same broken pool
        _pool = None
    logger.warning("ingest: a checking process died; files are checked here until a new pool starts")
    pool.shutdown(wait=False, cancel_futures=True)


def submit_check(
    pool: ProcessPoolExecutor, file: tuple[str, str], study_uid: str | None, limits: Limits, owned: bool
) -> Future | None:
    """The check of ``file`` on the pool; None when the pool has lost a process (it is discarded)."""
    name, path = file
    try:
        return pool.submit(checked, path, name, study_uid, limits, owned)
    except (BrokenProcessPool, RuntimeError):
        # Broken, or shut down by another upload that found it broken ("cannot schedule new
        # futures after shutdown").
        discard_checking_pool(pool)
        return None

"""Where DICOM files are kept: staged to a temporary file, then moved into Django's default storage.

Staging copies the upload once, zeroing the 128-byte preamble (a preamble can carry an executable,
CVE-2019-11687) and computing the SHA-256 of the bytes as stored, so the hash of a re-sent file can
be compared before anything reaches storage. A temporary file of the server's own (a STOW-RS part,
written beside the staging directory) is not copied: its preamble is zeroed where it lies and the
file itself is staged. With FileSystemStorage the staged file lives on the same file system as the
media root, so saving it is a rename: a reader never sees half a file.

A request directory (``request_dir``) is named for its process (``request-<pid>-...``) and holds a
lock file that process keeps locked (``flock``) while the directory is in use. The lock goes with
the process, however it ends, so a server starting up removes exactly the directories of processes
that no longer exist (``remove_abandoned_request_dirs``), its own earlier life's or another
daphne's on the same data directory, and never a live one's, whatever pid it has now.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import logging
import multiprocessing.util
import os
import re
import secrets
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from typing import BinaryIO

from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage

PREAMBLE_SIZE = 128
STAGED_PREFIX = "ingest-"
REQUEST_DIR_PREFIX = "request-"
# Inside a request directory: the lock file its process holds while the directory is in use.
REQUEST_LOCK_NAME = ".lock"
# Beside the staged files: the server's own temporary files when the system keeps them in memory.
TEMP_DIR_NAME = "tmp"
MEMORY_FILE_SYSTEMS = {"tmpfs", "ramfs"}
CHUNK_SIZE = 1024 * 1024

logger = logging.getLogger(__name__)


class StagedFile(File):
    """A closed temporary file that FileSystemStorage moves into place instead of copying."""

    def __init__(self, path: str, sha256: str, size: int):
        super().__init__(None, name=os.path.basename(path))
        self.path = path
        self.sha256 = sha256
        self._staged_size = size

    @property
    def size(self) -> int:
        return self._staged_size

    def temporary_file_path(self) -> str:
        return self.path

    def open(self, mode: str = "rb"):
        self.file = open(self.path, mode)  # noqa: SIM115 - File.close() closes it
        return self

    def chunks(self, chunk_size: int | None = None):
        with open(self.path, "rb") as fp:
            while chunk := fp.read(chunk_size or CHUNK_SIZE):
                yield chunk

    def discard(self) -> None:
        """Remove the temporary file if it is still there (it is gone once storage moved it)."""
        if self.file is not None:
            self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def staging_dir() -> str | None:
    """Where files are staged: beside the media root with FileSystemStorage, else the temp dir."""
    if isinstance(default_storage, FileSystemStorage):
        path = os.path.join(default_storage.location, ".incoming")
        os.makedirs(path, exist_ok=True)
        return path
    return None


class RequestDir:
    """A request's directory, held by this process until ``cleanup()`` (or until the process ends).

    Used as ``tempfile.TemporaryDirectory`` is: ``name`` and ``cleanup()``, or ``with ... as path``.
    Its lock file is locked under a temporary name and only then renamed ``.lock``, so a ``.lock``
    that can be locked is always one whose process is gone, never one about to be locked. The lock
    is on an open file description of this process alone (not inherited across exec), of a file
    opened for writing, as NFS needs for an exclusive ``flock``. Where the file system cannot lock,
    the directory has no ``.lock`` and is left to the age rule (``remove_stale_staged_files``)."""

    def __init__(self, directory: str | None) -> None:
        self.name = tempfile.mkdtemp(prefix=f"{REQUEST_DIR_PREFIX}{os.getpid()}-", dir=directory)
        try:
            fd = _lock_request_dir(self.name)
        except BaseException:
            shutil.rmtree(self.name, ignore_errors=True)
            raise
        self._finalizer = weakref.finalize(self, _remove_request_dir, self.name, fd)

    def cleanup(self) -> None:
        self._finalizer()

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc_info) -> None:
        self.cleanup()


def _lock_request_dir(path: str) -> int | None:
    """Lock a fresh request directory's lock file; its descriptor, or None where locking fails."""
    locking = os.path.join(path, f"{REQUEST_LOCK_NAME}-new")
    fd = os.open(locking, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        os.unlink(locking)
        logger.warning("request directories: %s cannot be locked (%s); left to the age rule", path, exc)
        return None
    try:
        os.rename(locking, os.path.join(path, REQUEST_LOCK_NAME))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _remove_request_dir(path: str, fd: int | None) -> None:
    # Removed while still locked, so that no other process starts removing it too.
    try:
        shutil.rmtree(path, ignore_errors=True)
    finally:
        if fd is not None:
            os.close(fd)


def request_dir() -> RequestDir:
    """A temporary directory for one request's uploaded parts, on the staging directory's file
    system, so that they are staged where they lie (``stage_in_place``) and stored by a rename."""
    return RequestDir(staging_dir())


def _take_abandoned(path: str) -> int | None:
    """The lock of the request directory at ``path``, taken by this process, when the process that
    held it is gone (BlockingIOError while a live process holds it); None when it has no lock file
    (made before request directories had one, or its process was killed before it locked it: those
    are the age rule's)."""
    try:
        fd = os.open(os.path.join(path, REQUEST_LOCK_NAME), os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _held_by_a_live_process(path: str) -> bool:
    try:
        fd = _take_abandoned(path)
    except BlockingIOError:
        return True
    if fd is not None:
        os.close(fd)
    return False


def _request_dirs(directory: str) -> list[os.DirEntry]:
    with os.scandir(directory) as entries:
        return [
            entry
            for entry in entries
            if entry.name.startswith(REQUEST_DIR_PREFIX) and entry.is_dir(follow_symlinks=False)
        ]


def remove_abandoned_request_dirs() -> tuple[int, int]:
    """Remove the request directories whose process no longer exists (killed in a request: its
    parts were neither stored nor removed), whatever their age; how many, and their bytes.

    Run at server start-up (``teleconsult.serve``), so a restarted server does not carry what its
    earlier life left. A directory a live process holds is never touched, whichever server on the
    same data directory runs this, and whatever pid the process now has."""
    removed = size = 0
    for entry in _request_dirs(staging_dir() or tempfile.gettempdir()):
        with contextlib.suppress(OSError):  # BlockingIOError: a live process holds it
            lock = _take_abandoned(entry.path)
            if lock is None:
                continue
            try:
                # Removed while this process holds its lock, so no other server removes it too.
                held = _tree_size(entry.path)
                shutil.rmtree(entry.path)
            finally:
                os.close(lock)
            removed += 1
            size += held
    return removed, size


def _tree_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def remove_stale_staged_files(*, max_age: dt.timedelta) -> int:
    """Remove staged files and request directories older than ``max_age`` (left by a process killed
    while it staged them, or by a server killed in a request), and files of the same age in the
    server's own temporary directory (``keep_temporary_files_on_disk``); how many. A request
    directory a live process holds is kept, however old."""
    staging = staging_dir()
    directory = staging or tempfile.gettempdir()
    cutoff = time.time() - max_age.total_seconds()
    removed = 0
    for entry in os.scandir(directory):
        with contextlib.suppress(OSError):
            name = entry.name
            if entry.stat().st_mtime >= cutoff:
                continue
            if name.startswith(STAGED_PREFIX) and name.endswith(".dcm") and entry.is_file():
                os.unlink(entry.path)
                removed += 1
            elif name.startswith(REQUEST_DIR_PREFIX) and entry.is_dir(follow_symlinks=False):
                if _held_by_a_live_process(entry.path):
                    continue  # a long upload still in progress
                shutil.rmtree(entry.path)
                removed += 1
    own_temp = os.path.join(staging, TEMP_DIR_NAME) if staging is not None else None
    if own_temp is not None and os.path.isdir(own_temp):
        for entry in os.scandir(own_temp):
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
    return removed


def file_system_type(path: str, mounts: str = "/proc/mounts") -> str | None:
    """The type of the file system that holds ``path`` ("tmpfs", "ext4", ...), from the mount table
    ``mounts``; None where that table cannot be read."""
    try:
        with open(mounts, encoding="utf-8", errors="replace") as table:
            lines = table.read().splitlines()
    except OSError:
        return None
    real = os.path.realpath(path)
    deepest, kind = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        # The table writes a space, tab, newline or backslash in a mount point as an octal escape.
        point = re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), fields[1])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(deepest):  # the last of several mounts on one point wins
            deepest, kind = point, fields[2]
    return kind


def keep_temporary_files_on_disk(mounts: str = "/proc/mounts") -> str | None:
    """Where the system keeps temporary files in memory (``/tmp`` is a tmpfs by default on Debian 13
    and Fedora) and no ``TMPDIR`` (nor ``TEMP`` or ``TMP``) names a place, send the temporary files
    of this process, and of the processes it starts, to a directory beside the staging directory
    instead; that directory, or None when nothing changed.

    daphne receives every request body whole, into a temporary file, before the application sees
    it, and Django spools uploads to temporary files: in a tmpfs, a 4 GB upload would be held in
    memory. A temporary directory named in the environment is the operator's choice and is kept,
    tmpfs or not. Any trouble here is logged, and the server starts as it would have."""
    if any(os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")):
        return None
    try:
        system = tempfile.gettempdir()
        kind = file_system_type(system, mounts)
        if kind not in MEMORY_FILE_SYSTEMS:
            return None
        staging = staging_dir()
        if staging is None or file_system_type(staging, mounts) in MEMORY_FILE_SYSTEMS:
            logger.warning(
                "temporary files: %s is a %s and no directory on disk is known; set TMPDIR to a directory "
                "on disk so that large uploads are not held in memory",
                system,
                kind,
            )
            return None
        directory = os.path.join(staging, TEMP_DIR_NAME)
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        logger.warning("temporary files: left in %s: %s", tempfile.gettempdir(), exc)
        return None
    # multiprocessing keeps the sockets of its helper processes in a directory it makes once: made
    # now, it stays in the system's temporary directory (a short path, removed at exit).
    multiprocessing.util.get_temp_dir()
    tempfile.tempdir = directory
    os.environ["TMPDIR"] = directory  # for the processes this one starts (checking processes)
    logger.info("temporary files: %s is a %s; request bodies and uploads go to %s", system, kind, directory)
    return directory


def stage_with_zeroed_preamble(fp: BinaryIO, directory: str | None) -> StagedFile:
    """Copy ``fp`` (a PS3.10 file) to a temporary file in ``directory`` (``staging_dir()``, or None
    for the temp dir) with its preamble zeroed, hashing as it goes."""
    digest = hashlib.sha256()
    size = 0
    fd, path = tempfile.mkstemp(prefix=STAGED_PREFIX, suffix=".dcm", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            fp.seek(PREAMBLE_SIZE)
            zeros = bytes(PREAMBLE_SIZE)
            out.write(zeros)
            digest.update(zeros)
            size += PREAMBLE_SIZE
            while chunk := fp.read(CHUNK_SIZE):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return StagedFile(path, digest.hexdigest(), size)


def stage_in_place(path: str) -> StagedFile:
    """Stage a temporary file of the server's own without copying it: its preamble zeroed where it
    lies and its bytes hashed. Doing it again gives the same file and hash, so a check that has to
    be made again (its checking process died) finds the file as it was."""
    with open(path, "r+b") as fp:
        fp.write(bytes(PREAMBLE_SIZE))
        fp.seek(0)
        digest = hashlib.file_digest(fp, "sha256")
        size = os.fstat(fp.fileno()).st_size
    return StagedFile(path, digest.hexdigest(), size)


@dataclass
class Stored:
    name: str
    sha256: str
    size: int


def store(staged: StagedFile) -> Stored:
    """Save a staged file under a name of its own (its hash, and a random part so that two uploads
    of the same bytes never share a file one of them may delete); the name is returned."""
    name = f"dicom/{staged.sha256[:2]}/{staged.sha256}-{secrets.token_hex(6)}.dcm"
    try:
        saved = default_storage.save(name, staged)
    finally:
        staged.discard()
    return Stored(name=saved, sha256=staged.sha256, size=staged.size)


def delete(name: str) -> None:
    if name:
        default_storage.delete(name)

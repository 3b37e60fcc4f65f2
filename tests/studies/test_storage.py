"""Staging: a file copied with its preamble zeroed, or one of the server's own staged where it lies."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from studies import storage

DATA = b"MZ" + b"\x90" * 126 + b"DICM" + os.urandom(3000)
EXPECTED = bytes(128) + DATA[128:]


def test_copying_zeroes_the_preamble_and_hashes_the_copy(tmp_path):
    staged = storage.stage_with_zeroed_preamble(io.BytesIO(DATA), str(tmp_path))
    assert open(staged.path, "rb").read() == EXPECTED  # noqa: SIM115
    assert (staged.sha256, staged.size) == (hashlib.sha256(EXPECTED).hexdigest(), len(DATA))


def test_staging_in_place_zeroes_the_preamble_where_the_file_lies_and_hashes_it(tmp_path):
    source = tmp_path / "request-1" / "part.dcm"
    source.parent.mkdir()
    source.write_bytes(DATA)
    staged = storage.stage_in_place(str(source))
    assert staged.path == str(source)
    assert source.read_bytes() == EXPECTED
    assert (staged.sha256, staged.size) == (hashlib.sha256(EXPECTED).hexdigest(), len(DATA))
    # Again (a check made anew after its checking process died): the same file, the same hash.
    again = storage.stage_in_place(str(source))
    assert (again.path, again.sha256, again.size) == (staged.path, staged.sha256, staged.size)
    assert source.read_bytes() == EXPECTED


def test_a_file_staged_in_place_is_stored_by_moving_it(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    with storage.request_dir() as directory:
        assert os.path.dirname(directory) == storage.staging_dir()
        source = os.path.join(directory, "part.dcm")
        with open(source, "wb") as out:
            out.write(DATA)
        stored = storage.store(storage.stage_in_place(source))
        assert not os.path.exists(source)
    assert open(tmp_path / "media" / stored.name, "rb").read() == EXPECTED  # noqa: SIM115
    assert os.listdir(storage.staging_dir()) == []


# -- the server's temporary files where /tmp is held in memory ----------------------------------


def _mount_table(tmp_path, *mounts: tuple[str, str]) -> str:
    table = tmp_path / "mounts"
    table.write_text("".join(f"dev{i} {point} {kind} rw 0 0\n" for i, (point, kind) in enumerate(mounts)))
    return str(table)


def test_the_file_system_of_a_path_is_that_of_the_deepest_mount_above_it(tmp_path):
    deep = tmp_path / "a b" / "c"
    deep.mkdir(parents=True)
    escaped = str(tmp_path / "a b").replace(" ", "\\040")  # as the kernel writes a space
    table = _mount_table(tmp_path, ("/", "ext4"), (str(tmp_path), "xfs"), (escaped, "tmpfs"))
    assert storage.file_system_type(str(deep), table) == "tmpfs"
    assert storage.file_system_type(str(tmp_path), table) == "xfs"
    assert storage.file_system_type(str(tmp_path) + "-sibling", table) == "ext4"  # not inside tmp_path
    assert storage.file_system_type(str(deep), str(tmp_path / "missing")) is None


def test_temporary_files_leave_a_tmpfs_for_a_directory_beside_the_staging_one(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    system_temp = tmp_path / "system-tmp"
    system_temp.mkdir()
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    table = _mount_table(tmp_path, ("/", "ext4"), (str(system_temp), "tmpfs"))

    directory = storage.keep_temporary_files_on_disk(table)

    assert directory == os.path.join(storage.staging_dir(), storage.TEMP_DIR_NAME)
    assert tempfile.gettempdir() == directory
    assert os.environ["TMPDIR"] == directory  # for the checking processes it starts
    with tempfile.NamedTemporaryFile() as spooled:  # as Django spools an upload
        assert os.path.dirname(spooled.name) == directory
    # Called again (a second import): already on disk, nothing changes.
    assert storage.keep_temporary_files_on_disk(table) is None
    assert tempfile.gettempdir() == directory


def test_temporary_files_stay_where_tmpdir_or_a_disk_puts_them(settings, tmp_path, monkeypatch, caplog):
    settings.MEDIA_ROOT = tmp_path / "media"
    system_temp = tmp_path / "system-tmp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    in_memory = _mount_table(tmp_path, ("/", "ext4"), (str(system_temp), "tmpfs"))

    # A directory named in the environment is the operator's choice, even a tmpfs.
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.setenv(name, str(system_temp))
        assert storage.keep_temporary_files_on_disk(in_memory) is None
        monkeypatch.delenv(name)
    # The system's temporary directory on disk already.
    assert storage.keep_temporary_files_on_disk(_mount_table(tmp_path, ("/", "ext4"))) is None
    # Everything in memory, the media root too: nowhere better is known, and the log says so.
    everything = _mount_table(tmp_path, ("/", "tmpfs"))
    assert storage.keep_temporary_files_on_disk(everything) is None
    assert "set TMPDIR to a directory on disk" in caplog.text
    # A media root that cannot be written: logged, and the server starts as it would have.
    settings.MEDIA_ROOT = tmp_path / "read-only"
    (tmp_path / "read-only").mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anyway
        assert storage.keep_temporary_files_on_disk(in_memory) is None
        assert "temporary files: left in" in caplog.text
    assert tempfile.gettempdir() == str(system_temp)
    assert "TMPDIR" not in os.environ


def test_stale_files_in_a_tmp_directory_of_the_system_are_not_the_servers_to_remove(settings, tmp_path, monkeypatch):
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert storage.staging_dir() is None
    theirs = tmp_path / storage.TEMP_DIR_NAME / "someone-elses"
    theirs.parent.mkdir()
    theirs.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    os.utime(theirs, (two_days_ago, two_days_ago))

    assert storage.remove_stale_staged_files(max_age=dt.timedelta(days=1)) == 0
    assert theirs.exists()


def test_stale_files_in_the_servers_own_temporary_directory_are_removed(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    own = os.path.join(storage.staging_dir(), storage.TEMP_DIR_NAME)
    os.makedirs(own)
    old, new = os.path.join(own, "tmpold.upload"), os.path.join(own, "tmpnew.upload")
    for path in (old, new):
        open(path, "wb").close()  # noqa: SIM115
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))

    assert storage.remove_stale_staged_files(max_age=dt.timedelta(days=1)) == 1
    assert os.listdir(own) == ["tmpnew.upload"]


def test_importing_storage_reads_no_mount_table():
    """The mount table is read when a process asks where its temporary files go, not on import."""
    script = (
        "import sys; opened = []; "
        "sys.addaudithook(lambda event, args: event == 'open' and opened.append(str(args[0]))); "
        "import studies.storage; print(sorted(path for path in opened if 'mounts' in path))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_the_server_moves_its_temporary_files_off_a_real_tmpfs(settings):
    """The server's start-up (``teleconsult.serve.start``, as ``python -m teleconsult.serve`` runs
    it before daphne) in a process whose temporary directory is a real tmpfs (mounted in a mount
    namespace of its own) and whose environment names none."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to mount a tmpfs in a namespace of its own")
    if storage.file_system_type(str(settings.DATA_DIR)) in storage.MEMORY_FILE_SYSTEMS:
        pytest.skip(f"the data directory {settings.DATA_DIR} is itself in memory")
    # A short path: the forkserver's socket goes in it, and a socket's path has at most 107 bytes.
    in_memory = tempfile.mkdtemp(prefix="mem-")
    data_dir = tempfile.mkdtemp(prefix="tmpfs-test-", dir=settings.DATA_DIR)
    script = (
        f"import tempfile; tempfile.tempdir = {str(in_memory)!r}; "  # the system's, as gettempdir() found it
        "import os, multiprocessing, teleconsult.serve; teleconsult.serve.start(); "
        "print('TEMP', tempfile.gettempdir(), os.environ['TMPDIR']); "
        "body = tempfile.TemporaryFile(); body.write(bytes(200000)); body.close(); "
        "child = multiprocessing.get_context('forkserver').Pool(1); "
        "print('CHILD', child.apply(tempfile.gettempdir)); child.close()"
    )
    env = {key: value for key, value in os.environ.items() if key not in ("TMPDIR", "TEMP", "TMP")}
    env.update(
        DEBUG="1",
        TELECONSULT_DATA_DIR=data_dir,
        TELECONSULT_INGEST_PROCESSES="0",
        DATABASE_URL=f"sqlite:///{data_dir}/db.sqlite3",
    )
    command = f'mount -t tmpfs tmpfs {in_memory} && exec {sys.executable} -c "{script}"'
    try:
        done = subprocess.run(
            [unshare, "--mount", "--propagation", "private", "sh", "-c", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0 and "TEMP" not in done.stdout and "mount" in done.stderr:
            pytest.skip(f"a tmpfs cannot be mounted here: {done.stderr.strip()[-200:]}")
        assert done.returncode == 0, done.stderr
        own = os.path.join(data_dir, "media", ".incoming", storage.TEMP_DIR_NAME)
        assert done.stdout.split() == ["TEMP", own, own, "CHILD", own]
        assert f"{in_memory} is a tmpfs" in done.stderr
        assert os.listdir(own) == []  # the body's file had no name and went with the process
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(in_memory, ignore_errors=True)

"""Request directories of processes that ended are removed at server start-up; a live one's never."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studies import storage
from teleconsult import serve

ROOT = Path(__file__).resolve().parent.parent.parent
# A process that takes a request directory as a server does for an upload, says where, and waits.
HOLDER = (
    "import django; django.setup(); from studies import storage; "
    "held = storage.request_dir(); open(held.name + '/part.dcm', 'wb').write(bytes(1000)); "
    "print(held.name, flush=True); import sys; sys.stdin.read()"
)


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path


@pytest.fixture
def holder(data_dir):
    """``holder()`` -> (process, its request directory), in a process of its own on the same data dir."""
    started = []

    def start():
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "TELECONSULT_DATA_DIR": str(data_dir)}
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        directory = process.stdout.readline().strip()
        assert directory, "the holder did not start"
        return process, directory

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_request_directories_carry_the_pid_and_a_lock_file(data_dir):
    with storage.request_dir() as directory:
        assert os.path.basename(directory).startswith(f"request-{os.getpid()}-")
        assert os.listdir(directory) == [storage.REQUEST_LOCK_NAME]
    assert os.listdir(storage.staging_dir()) == []


def test_a_killed_processs_request_directory_is_removed_at_start_up_and_a_live_ones_kept(holder):
    dead, dead_directory = holder()
    live, live_directory = holder()
    own = storage.request_dir()
    dead.send_signal(signal.SIGKILL)
    dead.wait(10)
    assert os.path.isdir(dead_directory)  # what a server killed in an upload leaves

    serve.remove_abandoned_request_dirs()

    assert not os.path.exists(dead_directory)
    assert os.path.isdir(live_directory) and sorted(os.listdir(live_directory)) == [".lock", "part.dcm"]
    assert os.path.isdir(own.name)
    live.stdin.close()  # it ends as a server does: its directory goes with the request
    assert live.wait(30) == 0
    assert not os.path.exists(live_directory)
    own.cleanup()
    assert os.listdir(storage.staging_dir()) == []


def test_a_directory_named_for_a_pid_that_lives_on_is_still_removed_once_its_lock_is_free(data_dir):
    """The pid in the name is for people: another process may have the pid now (a restarted
    container's daphne is often pid 1 again). The lock decides."""
    reused = os.path.join(storage.staging_dir(), f"request-{os.getpid()}-earlier")
    os.makedirs(reused)
    Path(reused, storage.REQUEST_LOCK_NAME).touch()
    Path(reused, "part.dcm").write_bytes(bytes(2048))

    assert storage.remove_abandoned_request_dirs() == (1, 2048)
    assert os.listdir(storage.staging_dir()) == []


def test_a_directory_without_a_lock_file_is_left_to_the_age_rule(data_dir):
    unlocked = os.path.join(storage.staging_dir(), "request-old-style")
    os.makedirs(unlocked)

    assert storage.remove_abandoned_request_dirs() == (0, 0)
    assert os.path.isdir(unlocked)
    two_days_ago = time.time() - 2 * 86400
    os.utime(unlocked, (two_days_ago, two_days_ago))
    assert storage.remove_stale_staged_files(max_age=dt.timedelta(days=1)) == 1


def test_the_age_rule_keeps_a_request_directory_a_live_process_holds(holder):
    live, live_directory = holder()
    two_days_ago = time.time() - 2 * 86400
    os.utime(live_directory, (two_days_ago, two_days_ago))  # a very long upload

    assert storage.remove_stale_staged_files(max_age=dt.timedelta(days=1)) == 0
    assert os.path.isdir(live_directory)
    live.kill()
    live.wait(10)
    assert storage.remove_stale_staged_files(max_age=dt.timedelta(days=1)) == 1


def test_trouble_removing_is_logged_and_the_server_starts_anyway(data_dir, monkeypatch, caplog):
    def broken():
        raise PermissionError("read-only data directory")

    monkeypatch.setattr(storage, "remove_abandoned_request_dirs", broken)

    serve.remove_abandoned_request_dirs()

    assert "request directories of ended processes could not be removed" in caplog.text

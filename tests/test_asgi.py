"""The ASGI application (``teleconsult.asgi``) and the way the portal is served (``teleconsult.serve``).

Importing the application must change nothing in the process that imports it; the server's
start-up is ``teleconsult.serve``. Both are checked in fresh interpreters: this test process may
have done some of that start-up already (tests/test_bodies.py installs the daphne patch)."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from teleconsult import serve

ROOT = Path(__file__).resolve().parent.parent

# Run in a fresh interpreter: what the process looks like after ``action``, as JSON.
PROBE = """
import gc, json, multiprocessing, multiprocessing.forkserver, os, sys, tempfile
mount_tables = []
sys.addaudithook(lambda event, args: event == "open" and "mounts" in str(args[0]) and mount_tables.append(str(args[0])))
environ = dict(os.environ)
{action}
from daphne.http_protocol import WebRequest
from daphne.server import Server
import teleconsult.serve
def parent(pid):
    try:
        with open(f"/proc/{{pid}}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None  # gone meanwhile
children = [name for name in os.listdir("/proc") if name.isdigit() and parent(name) == os.getpid()]
print(json.dumps({{
    "environment_changed": sorted(k for k in {{*environ, *os.environ}} if environ.get(k) != os.environ.get(k)),
    "tempdir": tempfile.tempdir,
    "frozen": gc.get_freeze_count(),
    "child_processes": len(children),
    "forkserver": multiprocessing.forkserver._forkserver._forkserver_pid is not None,
    "create_application": Server.create_application.__module__,
    "request_init": WebRequest.__init__.__module__,
    "mount_tables_read": mount_tables,
    "urls_loaded": "teleconsult.urls" in sys.modules,
    "started": teleconsult.serve.started(),
}}))
"""


def probe(action: str, tmp_path: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("TMPDIR", "TEMP", "TMP")}
    env.update(
        DJANGO_SETTINGS_MODULE="teleconsult.settings",
        DEBUG="1",
        TELECONSULT_DATA_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
        TELECONSULT_INGEST_PROCESSES="2",  # the checking processes would start with the server
        LOG_LEVEL="WARNING",
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(action=action)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads child processes from /proc")
def test_importing_the_application_changes_nothing(tmp_path):
    state = probe("import teleconsult.asgi; assert callable(teleconsult.asgi.application)", tmp_path)

    # TMPDIR neither set nor moved. (python-gdcm, which pydicom imports, names its own resources.)
    assert [name for name in state["environment_changed"] if name != "GDCM_RESOURCES_PATH"] == []
    assert state["tempdir"] is None  # tempfile has not even been asked
    assert state["mount_tables_read"] == []
    assert state["frozen"] == 0
    assert state["child_processes"] == 0
    assert state["forkserver"] is False
    assert state["create_application"] == "daphne.server"  # daphne and Twisted as they ship
    assert state["request_init"] == "daphne.http_protocol"
    assert state["started"] is False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads child processes from /proc")
def test_the_servers_start_up_does_its_work_in_the_process_that_serves(tmp_path):
    state = probe("import teleconsult.serve; teleconsult.serve.start(); teleconsult.serve.start()", tmp_path)

    # Where the temporary directory is, was decided from the mount table (moved only off a tmpfs:
    # tests/studies/test_storage.py checks that against a real one).
    assert "/proc/mounts" in state["mount_tables_read"]
    assert state["create_application"] == "teleconsult.bodies"
    assert state["request_init"] == "teleconsult.bodies"
    assert state["forkserver"] is True
    assert state["child_processes"] >= 1  # the forkserver, which starts the two checking processes
    assert state["urls_loaded"]
    assert state["frozen"] > 10_000  # all of Django, DRF and pydicom at least
    assert state["started"] is True


def test_serve_hands_daphne_its_options_and_the_application():
    assert serve.daphne_arguments(["-b", "0.0.0.0", "-p", "8001", "--proxy-headers"]) == [
        "-b",
        "0.0.0.0",
        "-p",
        "8001",
        "--proxy-headers",
        "teleconsult.asgi:application",
    ]
    # Named out of habit, it is not named twice.
    assert serve.daphne_arguments(["-u", "/run/t.sock", serve.APPLICATION]) == ["-u", "/run/t.sock", serve.APPLICATION]


def test_a_mistaken_option_stops_serve_before_anything_starts(capsys):
    with pytest.raises(SystemExit) as exit_:
        serve.main(["--no-such-option"])

    assert exit_.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
    assert not serve.started()


class _App:
    def __init__(self):
        self.calls = 0

    async def __call__(self, scope, receive, send):
        self.calls += 1


def _call(application, scope):
    asyncio.run(application(scope, None, None))


def test_served_without_the_start_up_the_application_serves_and_says_so_once(caplog):
    from teleconsult.asgi import StartUpCheck

    inner = _App()
    application = StartUpCheck(inner)
    with caplog.at_level(logging.WARNING, logger="teleconsult.asgi"):
        _call(application, {"type": "http"})  # Channels' test tools: no server, no warning
        assert caplog.records == []
        for _ in range(3):
            _call(application, {"type": "http", "server": ("127.0.0.1", 8000)})

    assert inner.calls == 4
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "python -m teleconsult.serve" in caplog.records[0].getMessage()


def test_served_after_the_start_up_the_application_says_nothing(caplog, monkeypatch):
    from teleconsult.asgi import StartUpCheck

    monkeypatch.setattr(serve, "_started", True)
    with caplog.at_level(logging.WARNING, logger="teleconsult.asgi"):
        _call(StartUpCheck(_App()), {"type": "websocket", "server": ("127.0.0.1", 8000)})
    assert caplog.records == []


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


@pytest.mark.integration
def test_the_serve_entry_point_serves_pages_with_daphnes_options(daphne_factory, tmp_path):
    """``python -m teleconsult.serve`` on a free loopback port, also on a UNIX socket (``-u``), with
    ``--access-log``: pages answer, and daphne took every option. (Not ``--proxy-headers``, which serve
    refuses: the portal resolves X-Forwarded-For itself, teleconsult/client_address.py.)"""
    access_log = tmp_path / "access.log"
    sock = f"/tmp/teleconsult-test-{os.getpid()}-{os.urandom(4).hex()}.sock"  # AF_UNIX: at most 107 bytes
    options = ["-u", sock, "--access-log", str(access_log)]
    server = daphne_factory(options=options)
    try:
        tcp = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        tcp.request("GET", "/accounts/login/", headers={"X-Forwarded-For": "203.0.113.9"})
        assert tcp.getresponse().status == 200
        unix = _UnixConnection(sock)
        unix.request("GET", "/accounts/login/")
        assert unix.getresponse().status == 200
        server.stop()
    finally:
        if os.path.exists(sock):
            os.unlink(sock)

    log = access_log.read_text()
    assert "203.0.113.9" not in log  # daphne logs its socket peer, not what a client wrote
    assert log.count('"GET /accounts/login/" 200') == 2
    assert "served without its start-up" not in server.log()
    assert "Traceback" not in server.log()

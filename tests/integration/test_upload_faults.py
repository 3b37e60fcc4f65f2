"""A real daphne killed (kill -9) in the middle of large STOW-RS uploads, restarted, then swept.

Two kills, at the two places an upload can be cut short with something on disk: while the body's
parts sit in the request's directory (split and checked, not stored yet), and after the parts were
moved into storage but before their rows were committed (held there by a lock the test takes on
the instance table, so the moment is certain rather than a race). Then the restarted server and
``manage.py sweep_files`` must leave no request directory and no stored file without its row, and
the study stored before the kills must be whole.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.servers import ROOT, Outbox, ProcessFactory, ServiceEnvironment, unique_prefix, wait_until

pytestmark = pytest.mark.integration

FILES = 20  # 2 MB each: a 40 MB body
PIECE = 256 * 1024
PAUSE = 0.01  # between pieces: the body takes a couple of seconds to arrive


class SlowUpload(threading.Thread):
    """A STOW-RS POST whose body is sent a piece at a time over a raw socket; it never gets an
    answer when the server is killed, and ends then."""

    def __init__(self, port: int, token: str, body: bytes, content_type: str) -> None:
        super().__init__(daemon=True)
        self.port, self.token, self.body, self.content_type = port, token, body, content_type
        self.sent = 0
        self.answer = b""

    def run(self) -> None:
        head = (
            f"POST /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Token {self.token}\r\nContent-Type: {self.content_type}\r\n"
            f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
        ).encode("latin-1")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=180) as sock:
                sock.sendall(head)
                for start in range(0, len(self.body), PIECE):
                    sock.sendall(self.body[start : start + PIECE])
                    self.sent = start + PIECE
                    time.sleep(PAUSE)
                while chunk := sock.recv(65536):
                    self.answer += chunk
        except OSError:
            pass  # the server was killed


def media_files(media: Path) -> dict[str, int]:
    """Stored files (the staging directory left out): name -> size."""
    found = {}
    for root, dirs, files in os.walk(media):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in files:
            path = Path(root, name)
            found[path.relative_to(media).as_posix()] = path.stat().st_size
    return found


def request_dirs(media: Path) -> list[Path]:
    incoming = media / ".incoming"
    return sorted(path for path in incoming.glob("request-*")) if incoming.exists() else []


def tree_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def referenced_names() -> set[str]:
    """Every stored file a row names (instances, thumbnails, attachments...)."""
    from studies.sweep import file_fields

    names: set[str] = set()
    for model, columns in file_fields().items():
        for values in model._base_manager.values_list(*columns):
            names.update(value for value in values if value)
    return names


@pytest.mark.django_db(transaction=True)
def test_uploads_cut_short_by_kill_9_leave_no_files_once_the_server_restarts_and_the_sweep_runs(
    postgres, test_database_url, live_user, password, tmp_path
):
    import psycopg
    from pydicom.uid import generate_uid

    from bench.ingest import multipart
    from studies.models import Instance, Study
    from tests.studies import dicom_factory

    figures: dict[str, object] = {}
    data_dir = tmp_path / "data"  # its own media root: grace 0 must not touch another test's files
    media = data_dir / "media"
    environment = ServiceEnvironment(
        database_url=test_database_url, data_dir=data_dir, outbox=Outbox(tmp_path / "mail")
    )
    factory = ProcessFactory(environment, label=unique_prefix("upload-faults"))
    try:
        server = factory.daphne()
        user = live_user(email="faults@example.com")
        token = requests.post(
            f"{server.url}/api/v1/auth/token/", json={"email": user.email, "password": password}, timeout=60
        ).json()["token"]
        headers = {"Authorization": f"Token {token}"}

        # A study stored before anything goes wrong.
        kept_study = generate_uid()
        files = [dicom_factory.make_ct(StudyInstanceUID=kept_study) for _ in range(2)]
        body, content_type = multipart([*files, dicom_factory.make_mr(StudyInstanceUID=kept_study)])
        answer = requests.post(
            f"{server.url}/dicomweb/studies", data=body, headers={**headers, "Content-Type": content_type}, timeout=120
        )
        assert answer.status_code == 200, answer.text[:500]
        kept = {row.file.name: row.sha256 for row in Instance.objects.all()}
        assert Study.objects.get().study_instance_uid == kept_study
        assert len(kept) == 3
        before = media_files(media)

        large = [dicom_factory.make_multiframe(frames=4, rows=512, columns=512) for _ in range(FILES)]
        body, content_type = multipart(large)
        figures["body MB"] = round(len(body) / 2**20, 1)

        # Kill 1: the parts are in the request's directory, being split or checked.
        upload = SlowUpload(server.port, token, body, content_type)
        upload.start()
        wait_until(
            lambda: any(len(os.listdir(path)) > 1 for path in request_dirs(media)),  # .lock and a part
            timeout=120,
            message="parts in a request directory",
        )
        server.kill()
        upload.join(30)
        left = request_dirs(media)
        assert len(left) == 1 and upload.answer == b""
        figures["request directory left by kill 1, MB"] = round(tree_size(left[0]) / 2**20, 1)

        started = time.monotonic()
        server.start()
        figures["restart s"] = round(time.monotonic() - started, 1)
        assert request_dirs(media) == []  # removed at start-up
        assert "removed 1 request directories" in server.log()

        # Kill 2: every part moved into storage, the rows not committed (held by a lock on the table).
        with psycopg.connect(test_database_url, autocommit=False) as blocker:
            blocker.execute("LOCK TABLE studies_instance IN SHARE MODE")
            upload = SlowUpload(server.port, token, body, content_type)
            upload.start()
            wait_until(
                lambda: blocker.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'studies_instance'::regclass"
                ).fetchone()[0],
                timeout=180,
                message="the server waiting to write the instance rows",
            )
            server.kill()
            blocker.rollback()
        upload.join(30)
        assert upload.answer == b""
        orphans = {name: size for name, size in media_files(media).items() if name not in before}
        assert len(orphans) == FILES, sorted(orphans)
        figures["stored files left by kill 2"] = len(orphans)
        figures["their MB"] = round(sum(orphans.values()) / 2**20, 1)
        assert len(request_dirs(media)) == 1

        started = time.monotonic()
        server.start()
        figures["restart s (2)"] = round(time.monotonic() - started, 1)
        assert request_dirs(media) == []

        # No half-written rows: the killed server's transaction never committed.
        assert set(Instance.objects.values_list("file", flat=True)) == set(kept)

        started = time.monotonic()
        swept = subprocess.run(
            [sys.executable, "manage.py", "sweep_files", "--grace-hours", "0"],
            cwd=ROOT,
            env=environment.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        figures["sweep s"] = round(time.monotonic() - started, 1)
        assert swept.returncode == 0, swept.stderr
        figures["sweep says"] = swept.stdout.strip()
        assert swept.stdout.startswith(f"{FILES} unreferenced files removed, {sum(orphans.values())} bytes")

        stored = media_files(media)
        assert set(stored) - referenced_names() == set()  # no unreferenced file left
        assert request_dirs(media) == []
        # The study stored before the kills is whole, on disk and over DICOMweb.
        for name, sha256 in kept.items():
            assert hashlib.sha256((media / name).read_bytes()).hexdigest() == sha256
        metadata = requests.get(f"{server.url}/dicomweb/studies/{kept_study}/metadata", headers=headers, timeout=60)
        assert metadata.status_code == 200 and len(metadata.json()) == 3
        # And the server takes the same upload now, whole.
        answer = requests.post(
            f"{server.url}/dicomweb/studies", data=body, headers={**headers, "Content-Type": content_type}, timeout=180
        )
        assert answer.status_code == 200, answer.text[:500]
        assert Instance.objects.count() == 3 + FILES
        print("\nupload faults:", figures)
    finally:
        factory.stop_all()

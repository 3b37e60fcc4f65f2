"""Checking processes: the files of one upload checked side by side, with the same results as here."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pytest
from django.db import transaction

from studies.ingest import IngestBatch, ingest_paths
from studies.ingest import pool as ingest_pool
from studies.models import Instance
from tests.studies import dicom_factory


@pytest.fixture
def processes(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.TELECONSULT_INGEST_PROCESSES = 2
    yield
    if ingest_pool._pool is not None:
        ingest_pool.discard_checking_pool(ingest_pool._pool)


def _files(tmp_path) -> list[tuple[str, str]]:
    makers = {
        "ct.dcm": dicom_factory.make_ct,
        "mr.dcm": dicom_factory.make_mr,
        "multiframe.dcm": dicom_factory.make_multiframe,
        "sr.dcm": dicom_factory.make_sr,
        "truncated.dcm": dicom_factory.make_truncated,
        "mismatch.dcm": dicom_factory.make_dimensions_mismatch,
        "random.dcm": dicom_factory.make_random_after_dicm,
        "nested.dcm": lambda path: dicom_factory.make_nested(400, path),
    }
    files = []
    for name, make in makers.items():
        make(tmp_path / name)
        files.append((name, str(tmp_path / name)))
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "text.dcm").write_bytes(b"not a DICOM file at all" * 20)
    return [*files, ("empty.dcm", str(tmp_path / "empty.dcm")), ("text.dcm", str(tmp_path / "text.dcm"))]


def _cts(tmp_path, count: int) -> list[tuple[str, str]]:
    files = []
    for number in range(count):
        dicom_factory.make_ct(tmp_path / f"{number}.dcm")
        files.append((f"{number}.dcm", str(tmp_path / f"{number}.dcm")))
    return files


def _stored(results) -> list[tuple]:
    rows = {row.sop_instance_uid: row for row in Instance.objects.all()}
    summary = []
    for result in results:
        row = rows.get(result.sop_instance_uid) if result.status == "stored" else None
        fields = (row.metadata, row.rows, row.columns, row.number_of_frames, row.sha256) if row else None
        summary.append((result.filename, result.status, result.code, result.sop_instance_uid, fields))
    return summary


def _checked_elsewhere(caplog) -> bool:
    """The checking processes started, stayed up and did the checks (none died, none fell back)."""
    pool = ingest_pool._pool
    processes = list(pool._processes.values()) if pool is not None else []
    died = [record for record in caplog.records if "checking process died" in record.getMessage()]
    return bool(processes) and all(process.is_alive() for process in processes) and not died


def test_files_checked_on_checking_processes_are_stored_as_when_checked_here(
    physician, processes, settings, tmp_path, caplog
):
    files = _files(tmp_path)
    settings.TELECONSULT_INGEST_PROCESSES = 0
    with transaction.atomic():
        with IngestBatch(physician) as batch:
            here = ingest_paths(files, batch=batch)
        expected = _stored(here)
        transaction.set_rollback(True)
    assert ingest_pool._pool is None

    settings.TELECONSULT_INGEST_PROCESSES = 2
    with IngestBatch(physician) as batch:
        there = ingest_paths(files, batch=batch)

    assert _checked_elsewhere(caplog)
    assert _stored(there) == expected
    statuses = {result.filename: (result.status, result.code) for result in there}
    assert statuses["ct.dcm"] == ("stored", "")
    assert statuses["sr.dcm"] == ("stored", "")
    assert statuses["truncated.dcm"][0] == statuses["random.dcm"][0] == "refused"
    assert statuses["nested.dcm"] == ("refused", "too_deep")
    assert statuses["empty.dcm"] == ("refused", "empty")
    assert statuses["text.dcm"] == ("refused", "not_dicom")
    # Nothing staged is left behind: stored files were moved, refused ones never staged or removed.
    assert os.listdir(tmp_path / "media" / "dicom")
    assert os.listdir(tmp_path / "media" / ".incoming") == []


def test_checking_processes_apply_this_server_s_limits(physician, processes, settings, tmp_path):
    settings.TELECONSULT_MAX_FILE_SIZE = 1000
    dicom_factory.make_ct(tmp_path / "a.dcm")
    dicom_factory.make_ct(tmp_path / "b.dcm")

    with IngestBatch(physician) as batch:
        results = ingest_paths([("a.dcm", str(tmp_path / "a.dcm")), ("b.dcm", str(tmp_path / "b.dcm"))], batch=batch)

    assert [(result.status, result.code) for result in results] == [("refused", "too_large")] * 2
    assert "over the limit of 1000 bytes" in results[0].reason


def test_when_a_checking_process_dies_the_files_are_checked_here_and_a_new_pool_starts(physician, processes, tmp_path):
    files = _cts(tmp_path, 6)
    ingest_pool.start_checking_processes()
    broken = ingest_pool._pool
    broken.submit(ingest_pool.ready).result(timeout=60)
    for process in list(broken._processes.values()):
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)

    with IngestBatch(physician) as batch:
        results = ingest_paths(files, batch=batch)

    assert [result.status for result in results] == ["stored"] * 6
    assert Instance.objects.count() == 6
    assert ingest_pool.checking_pool() is not broken


def test_when_a_checking_process_dies_during_an_upload_its_files_are_checked_here(
    physician, processes, tmp_path, monkeypatch
):
    files = _cts(tmp_path, 4)
    ingest_pool.start_checking_processes()
    pool = ingest_pool._pool
    for future in [pool.submit(ingest_pool.ready) for _ in range(2)]:
        future.result(timeout=60)
    busy = [pool.submit(time.sleep, 30) for _ in range(2)]  # both processes busy: the checks queue
    submitted = []
    real_submit = pool.submit

    def submit_then_kill(*args, **kwargs):
        submitted.append(real_submit(*args, **kwargs))
        if len(submitted) == len(files):
            for process in list(pool._processes.values()):
                os.kill(process.pid, signal.SIGKILL)
        return submitted[-1]

    monkeypatch.setattr(pool, "submit", submit_then_kill)

    with IngestBatch(physician) as batch:
        results = ingest_paths(files, batch=batch)

    assert [result.status for result in results] == ["stored"] * 4
    assert all(future.exception(timeout=30) is not None for future in [*busy, *submitted])  # none ran there
    assert ingest_pool.checking_pool() is not pool


def test_a_mixed_upload_keeps_its_order_with_checking_processes(physician, processes, settings, tmp_path):
    import io

    from studies.ingest import ingest_files

    paths = []
    for number in range(5):
        dicom_factory.make_ct(tmp_path / f"{number}.dcm")
        paths.append(str(tmp_path / f"{number}.dcm"))
    archive = dicom_factory.make_zip({"in-zip.dcm": dicom_factory.make_mr()})
    (tmp_path / "notes.txt").write_bytes(b"not DICOM")
    files = [
        ("0.dcm", paths[0]),
        ("1.dcm", paths[1]),
        ("memory.dcm", io.BytesIO(dicom_factory.make_ct())),  # an upload kept in memory
        ("2.dcm", paths[2]),
        ("archive.zip", io.BytesIO(archive)),
        ("3.dcm", paths[3]),
        ("notes.txt", str(tmp_path / "notes.txt")),
        ("4.dcm", paths[4]),
        ("again.dcm", paths[0]),
    ]

    results = ingest_files(files, user=physician)

    assert [(result.filename, result.status) for result in results] == [
        ("0.dcm", "stored"),
        ("1.dcm", "stored"),
        ("memory.dcm", "stored"),
        ("2.dcm", "stored"),
        ("archive.zip/in-zip.dcm", "stored"),
        ("3.dcm", "stored"),
        ("notes.txt", "refused"),
        ("4.dcm", "stored"),
        ("again.dcm", "already_stored"),
    ]
    assert Instance.objects.count() == 7


def test_import_dicom_checks_a_folder_on_checking_processes(physician, processes, tmp_path, caplog):
    from django.core.management import call_command

    folder = tmp_path / "folder"
    folder.mkdir()
    for number in range(25):
        dicom_factory.make_ct(folder / f"{number:02}.dcm")
    (folder / "notes.txt").write_bytes(b"not DICOM")

    call_command("import_dicom", str(folder), user=physician.email, verbosity=0)

    assert Instance.objects.count() == 25
    assert _checked_elsewhere(caplog)


def test_a_daemonic_process_checks_files_itself(physician, processes, monkeypatch):
    class Daemonic:
        daemon = True

    monkeypatch.setattr(ingest_pool.multiprocessing, "current_process", lambda: Daemonic())

    assert ingest_pool.checking_pool() is None


def test_one_request_keeps_only_a_few_files_per_process_in_flight(physician, processes, tmp_path, monkeypatch):
    files = _cts(tmp_path, 12)
    pool = ingest_pool.checking_pool()
    counts = {"submitted": 0, "added": 0, "most in flight": 0}
    real_submit = pool.submit

    def counting_submit(*args, **kwargs):
        counts["submitted"] += 1
        counts["most in flight"] = max(counts["most in flight"], counts["submitted"] - counts["added"])
        return real_submit(*args, **kwargs)

    monkeypatch.setattr(pool, "submit", counting_submit)
    with IngestBatch(physician) as batch:
        real_add = batch.add

        def counting_add(checked):
            counts["added"] += 1
            return real_add(checked)

        monkeypatch.setattr(batch, "add", counting_add)
        results = ingest_paths(files, batch=batch)

    assert [result.status for result in results] == ["stored"] * 12
    assert counts["submitted"] == 12
    assert counts["most in flight"] == 4  # two per checking process


def test_staged_files_left_behind_are_removed_once_a_day_old(settings, tmp_path):
    from studies import storage

    settings.MEDIA_ROOT = tmp_path / "media"
    incoming = storage.staging_dir()
    old, fresh, other = (os.path.join(incoming, name) for name in ("ingest-old.dcm", "ingest-new.dcm", "notes.txt"))
    for path in (old, fresh, other):
        open(path, "wb").close()  # noqa: SIM115
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    os.utime(other, (two_days_ago, two_days_ago))

    removed = storage.remove_stale_staged_files(max_age=dt.timedelta(days=1))

    assert removed == 1
    assert sorted(os.listdir(incoming)) == ["ingest-new.dcm", "notes.txt"]


def test_checks_cancelled_by_another_upload_shutting_the_pool_are_done_here(
    physician, processes, tmp_path, monkeypatch
):
    files = _cts(tmp_path, 4)
    pool = ingest_pool.checking_pool()
    busy = [pool.submit(time.sleep, 3) for _ in range(2)]  # the checks queue behind these
    real_submit = pool.submit
    submitted = []

    def submit_then_shut_down(*args, **kwargs):
        submitted.append(real_submit(*args, **kwargs))
        if len(submitted) == len(files):
            ingest_pool.discard_checking_pool(pool)  # as another upload that met a dead process does
        return submitted[-1]

    monkeypatch.setattr(pool, "submit", submit_then_shut_down)

    with IngestBatch(physician) as batch:
        results = ingest_paths(files, batch=batch)

    assert [result.status for result in results] == ["stored"] * 4
    # The pool's call queue holds one check more than it has processes; the others were waiting
    # and are cancelled by the shutdown (those in the queue still run, after the sleeps).
    assert any(future.cancelled() for future in submitted)
    del busy


def test_a_pool_shut_down_meanwhile_is_replaced_and_the_files_checked_here(physician, processes, tmp_path):
    files = _cts(tmp_path, 3)
    pool = ingest_pool.checking_pool()
    pool.shutdown(wait=True)  # still this process's pool: submitting to it raises RuntimeError

    with IngestBatch(physician) as batch:
        results = ingest_paths(files, batch=batch)

    assert [result.status for result in results] == ["stored"] * 3
    assert ingest_pool.checking_pool() is not pool


def test_an_api_upload_spooled_to_disk_is_checked_on_checking_processes(
    physician, processes, settings, auth_client, caplog
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # every uploaded file is spooled to a temporary file
    files = [
        SimpleUploadedFile("a.dcm", dicom_factory.make_ct(), content_type="application/dicom"),
        SimpleUploadedFile("b.dcm", dicom_factory.make_mr(), content_type="application/dicom"),
        SimpleUploadedFile("c.txt", b"not dicom at all" * 20, content_type="text/plain"),
    ]

    response = auth_client(physician).post("/api/v1/uploads/", {"files": files}, format="multipart")

    assert response.status_code == 201, response.content
    assert [result["status"] for result in response.json()["results"]] == ["stored", "stored", "refused"]
    assert _checked_elsewhere(caplog)


def _cts_with_a_preamble(directory, count: int) -> list[tuple[str, str]]:
    files = []
    for number in range(count):
        path = directory / f"{number}.dcm"
        path.write_bytes(dicom_factory.to_bytes(dicom_factory.dataset(), preamble=b"MZ" + b"\x90" * 126))
        files.append((path.name, str(path)))
    return files


def test_files_of_the_servers_own_are_stored_themselves_and_others_left_untouched(physician, processes, tmp_path):
    owned_dir = tmp_path / "media" / ".incoming" / "request-x"
    owned_dir.mkdir(parents=True)
    owned = _cts_with_a_preamble(owned_dir, 3)
    theirs = _cts_with_a_preamble(tmp_path, 3)
    before = [open(path, "rb").read() for _name, path in theirs]  # noqa: SIM115
    with IngestBatch(physician) as batch:
        results = ingest_paths(owned, batch=batch, owned=True) + ingest_paths(theirs, batch=batch)

    assert [result.status for result in results] == ["stored"] * 6
    assert os.listdir(owned_dir) == []  # moved into storage
    # A user's folder (import_dicom) is read, never written: its preambles are as they were.
    assert [open(path, "rb").read() for _name, path in theirs] == before  # noqa: SIM115
    for result in results:
        instance = Instance.objects.get(pk=result.instance_id)
        with instance.file.open("rb") as handle:
            assert handle.read(128) == bytes(128)


def test_a_file_of_the_servers_own_staged_by_a_process_that_then_died_is_checked_again_here(
    physician, processes, tmp_path, monkeypatch
):
    owned_dir = tmp_path / "media" / ".incoming" / "request-x"
    owned_dir.mkdir(parents=True)
    owned = _cts_with_a_preamble(owned_dir, 3)
    pool = ingest_pool.checking_pool()
    real_submit = pool.submit

    def staged_then_broken(*args, **kwargs):
        # The check runs to the end (the file is staged where it lies), then the answer is lost
        # as when its checking process dies before handing it back.
        real_submit(*args, **kwargs).result()
        lost = Future()
        lost.set_exception(BrokenProcessPool("a checking process died"))
        return lost

    monkeypatch.setattr(pool, "submit", staged_then_broken)
    with IngestBatch(physician) as batch:
        results = ingest_paths(owned, batch=batch, owned=True)

    assert [result.status for result in results] == ["stored"] * 3
    assert os.listdir(owned_dir) == []
    assert not [name for name in os.listdir(tmp_path / "media" / ".incoming") if name != "request-x"]


def test_the_server_start_removes_what_killed_uploads_left_without_checking_processes(settings, tmp_path):
    from studies import storage

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.TELECONSULT_INGEST_PROCESSES = 0
    left = os.path.join(storage.staging_dir(), "request-old")
    os.makedirs(left)
    two_days_ago = time.time() - 2 * 86400
    os.utime(left, (two_days_ago, two_days_ago))

    ingest_pool.start_checking_processes()

    assert os.listdir(storage.staging_dir()) == []


def test_request_directories_left_behind_are_removed_once_a_day_old(settings, tmp_path):
    from studies import storage

    settings.MEDIA_ROOT = tmp_path / "media"
    incoming = storage.staging_dir()
    old, fresh = (os.path.join(incoming, name) for name in ("request-old", "request-new"))
    for directory in (old, fresh):
        os.makedirs(directory)
        open(os.path.join(directory, "part.dcm"), "wb").close()  # noqa: SIM115
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))

    assert storage.remove_stale_staged_files(max_age=dt.timedelta(days=1)) == 1
    assert os.listdir(incoming) == ["request-new"]

"""STOW-RS ingest of the reference corpus, ours beside Orthanc's.

The corpus (pydicom's test files plus pydicom-data, every file with the three UIDs, repeats given
fresh SOP Instance UIDs) goes in through ``POST /dicomweb/studies`` in batches of 20, by one client
over one keep-alive connection, into a real daphne on a scratch database (PostgreSQL when
reachable, else SQLite), with its checking processes as in production
(``TELECONSULT_INGEST_PROCESSES`` when set, else the default: one per CPU, at most 4). Thumbnails
are queued to Redis during the run, as in production, and rendered by workers afterwards
(bench.thumbnails measures rendering). When Debian's orthanc,
orthanc-dicomweb and orthanc-gdcm are installed, the same batches go into an Orthanc started on
loopback with a temporary configuration, and the ratio is printed.

    .venv/bin/python -m bench.ingest [--batch 20] [--database-url URL]

Target (issue 3): at least 1.5x Orthanc's instances per second.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import sys
import tempfile
import time
import uuid

import requests

from bench import corpus, harness
from bench.orthanc import Orthanc

RATIO_TARGET = 1.5
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/teleconsult_bench_ingest"
REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"


def multipart(files: list[bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for data in files:
        parts.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def warm_up_instance() -> bytes:
    """A small CT outside the corpus, with fresh UIDs."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def stow(url: str, batches: list[list[bytes]], headers: dict[str, str], cpu=lambda: None) -> dict:
    """Store ``batches`` one request after another; ``cpu`` gives the server's CPU seconds so far."""
    stored = failed = 0
    statuses: dict[int, int] = {}
    session = requests.Session()
    # One search and one store of two instances first, on both servers, so start-up work
    # (connections, lazy imports, checking processes starting) is not timed: the figure is the
    # steady rate of a running server.
    session.get(url, headers={**headers, "Accept": "application/dicom+json"}, timeout=60)
    body, content_type = multipart([warm_up_instance(), warm_up_instance()])
    session.post(url, data=body, headers={**headers, "Content-Type": content_type}, timeout=60)
    cpu_before = cpu()
    began = time.perf_counter()
    for batch in batches:
        body, content_type = multipart(batch)
        answer = session.post(url, data=body, headers={**headers, "Content-Type": content_type}, timeout=300)
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        try:
            dataset = answer.json()
        except ValueError:
            dataset = {}
        if isinstance(dataset, list):
            dataset = dataset[0] if dataset else {}
        stored += len(dataset.get(REFERENCED_SOP_SEQUENCE, {}).get("Value", []))
        failed += len(dataset.get(FAILED_SOP_SEQUENCE, {}).get("Value", []))
    seconds = time.perf_counter() - began
    cpu_after = cpu()
    cpu_used = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {"seconds": seconds, "cpu": cpu_used, "stored": stored, "failed": failed, "statuses": statuses}


def start_ours(args, data_dir: str):
    """A migrated scratch database, a physician with a token, and a daphne serving them."""
    database_url = harness.setup_django(data_dir, args.database_url, redis_url=None)
    from rest_framework.authtoken.models import Token

    from accounts.models import Organization, User

    user = User.objects.create_user("bench-ingest@example.com", None, role="physician", name="Bench")
    Organization.objects.create(name="Bench Hospital").add_member(user)
    token = Token.objects.create(user=user).key

    factory = harness.process_factory(
        "bench-ingest",
        data_dir=data_dir,
        database_url=database_url,
        redis_url=args.redis_url,
        secret_key=secrets.token_urlsafe(50),
    )
    # Checking processes as configured, else the production default (one per core, up to 4).
    server = factory.daphne(TELECONSULT_INGEST_PROCESSES=os.environ.get("TELECONSULT_INGEST_PROCESSES"))
    return factory, server, token, database_url


def report(label: str, result: dict, count: int, megabytes: float) -> float:
    rate = count / result["seconds"]
    cpu = f", server CPU {result['cpu']:.2f} s" if result["cpu"] is not None else ""
    print(
        f"ingest: {label}: {result['stored']} stored, {result['failed']} refused of {count} files in "
        f"{result['seconds']:.2f} s: {rate:.0f} instances/s, {megabytes / result['seconds']:.1f} MB/s{cpu} "
        f"(HTTP statuses {dict(sorted(result['statuses'].items()))})"
    )
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/8")
    args = parser.parse_args(argv)

    files = corpus.load()
    data = [f.data for f in files]
    batches = [data[i : i + args.batch] for i in range(0, len(data), args.batch)]
    megabytes = sum(len(d) for d in data) / 1e6
    print(f"ingest: corpus of {len(files)} files with the three UIDs ({megabytes:.1f} MB), batches of {args.batch}")

    data_dir = tempfile.mkdtemp(prefix="bench-ingest-")
    factory, server, token, database_url = start_ours(args, data_dir)
    try:
        # The daphne, its checking processes and the PostgreSQL backends serving it.
        database = database_url.rsplit("/", 1)[1] if database_url.startswith("postgres") else None
        ours = stow(
            f"{server.url}/dicomweb/studies",
            batches,
            {"Authorization": f"Token {token}"},
            cpu=lambda: harness.cpu_seconds([server.pid], database=database),
        )
    finally:
        factory.stop_all()
    our_rate = report(f"teleconsult ({database_url.split(':')[0]})", ours, len(files), megabytes)

    orthanc = Orthanc()
    if not orthanc.available:
        print("ingest: Orthanc comparison skipped: install Debian's orthanc, orthanc-dicomweb, orthanc-gdcm")
        return 0
    try:
        orthanc.start()
        theirs = stow(
            f"{orthanc.url}/dicom-web/studies", batches, {}, cpu=lambda: harness.cpu_seconds([orthanc.process.pid])
        )
        their_rate = report(f"Orthanc {orthanc.version()}", theirs, len(files), megabytes)
    finally:
        orthanc.stop()
    ratio = our_rate / their_rate
    if ours["cpu"] and theirs["cpu"]:
        print(f"ingest: server CPU ours/Orthanc {ours['cpu'] / theirs['cpu']:.2f}x (CPU seconds for the same files)")
    print(
        f"ingest: ratio ours/Orthanc {ratio:.2f}x (target {RATIO_TARGET}x: {'met' if ratio >= RATIO_TARGET else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""DIMSE C-STORE of the reference corpus with dcmtk's ``storescu``, into the portal's receiver and
into Orthanc's.

The corpus (bench.corpus: pydicom's test files plus pydicom-data, every file with the three UIDs,
repeats given fresh SOP Instance UIDs) is written to a folder and sent by one ``storescu +sd``
(one association, one instance at a time, as a modality sends) to ``manage.py dicom_scp`` on a
scratch database (PostgreSQL when reachable, else SQLite), with production settings and thumbnails
queued to Redis as in production (rendered afterwards: bench.thumbnails measures rendering). When
Debian's orthanc is installed, the same folder goes to an Orthanc started on loopback with a
temporary configuration (its DICOM server on a free port), and the ratio is printed.

    .venv/bin/python -m bench.dimse [--database-url URL] [--redis-url URL]

Needs dcmtk (``storescu``). Prints figures; no target is enforced.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import corpus, harness
from bench.orthanc import Orthanc, _free_port

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/teleconsult_bench_dimse"
CALLING = "BENCHSCU"


def storescu(port: int, called: str, folder: Path, cpu=lambda: None) -> dict:
    """Send every file of ``folder`` in one association; seconds, server CPU seconds, exit status."""
    argv = ["storescu", "-aet", CALLING, "-aec", called, "-nh", "+sd", "127.0.0.1", str(port), str(folder)]
    cpu_before = cpu()
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - began
    cpu_after = cpu()
    cpu_used = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {"seconds": seconds, "cpu": cpu_used, "code": done.returncode, "stderr": done.stderr}


def warm_up(port: int, called: str) -> None:
    """One instance outside the corpus first: start-up work (connections, imports) is not timed."""
    from bench.ingest import warm_up_instance

    folder = Path(tempfile.mkdtemp(prefix="bench-dimse-warm-"))
    (folder / "warm.dcm").write_bytes(warm_up_instance())
    storescu(port, called, folder)
    shutil.rmtree(folder, ignore_errors=True)


def start_ours(args, data_dir: str):
    """A scratch database, a node for storescu, and the receiver serving them."""
    database_url = harness.setup_django(data_dir, args.database_url, redis_url=None)
    from accounts.models import Organization, User
    from studies.nodes import add_node

    user = User.objects.create_user("bench-dimse@example.com", None, role="physician", name="Bench")
    practice = Organization.objects.create(name="Bench Hospital")
    practice.add_member(user)
    add_node(ae_title=CALLING, host="127.0.0.1", port=104, owner=user, practice=practice)

    factory = harness.process_factory(
        "bench-dimse",
        data_dir=data_dir,
        database_url=database_url,
        redis_url=args.redis_url,
        secret_key=secrets.token_urlsafe(50),
    )
    from tests.servers import ServiceProcess, port_answers

    class DicomScp(ServiceProcess):
        def is_ready(self) -> bool:
            return port_answers(port)

    port = _free_port()
    argv = [sys.executable, "manage.py", "dicom_scp", "--bind", "127.0.0.1", "--port", str(port)]
    server = DicomScp(argv, factory.environment.env(), f"bench-dimse-{port}")
    factory.started.append(server)
    server.start()
    return factory, server, port, database_url


def our_count() -> int:
    from studies.models import Instance

    return Instance.objects.count()


class DimseOrthanc(Orthanc):
    """Orthanc with its DICOM server on, accepting any calling AE title (bench.orthanc's has it off)."""

    def start(self) -> DimseOrthanc:
        self.dicom_port = _free_port()
        config = {
            "Name": "bench",
            "StorageDirectory": str(self.dir / "storage"),
            "IndexDirectory": str(self.dir / "index"),
            "HttpPort": self.port,
            "DicomPort": self.dicom_port,
            "DicomAet": "ORTHANC",
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpServerEnabled": True,
            "DicomServerEnabled": True,
            "ConcurrentJobs": 2,
        }
        config_path = self.dir / "orthanc.json"
        config_path.write_text(json.dumps(config))
        self.log = open(self.dir / "orthanc.log", "wb")  # noqa: SIM115 - kept open while Orthanc runs
        self.process = subprocess.Popen([self.exe, str(config_path)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.version()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Orthanc did not start; see {self.dir / 'orthanc.log'}") from None
                time.sleep(0.2)

    def count(self) -> int:
        with urllib.request.urlopen(f"{self.url}/statistics", timeout=30) as answer:
            return int(json.loads(answer.read())["CountInstances"])


def report(label: str, result: dict, stored: int, count: int, megabytes: float) -> float:
    rate = stored / result["seconds"]
    cpu = f", server CPU {result['cpu']:.2f} s" if result["cpu"] is not None else ""
    print(
        f"dimse: {label}: {stored} of {count} files stored in {result['seconds']:.2f} s: {rate:.0f} instances/s, "
        f"{megabytes / result['seconds']:.1f} MB/s{cpu} (storescu exit {result['code']})"
    )
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/8")
    args = parser.parse_args(argv)
    if shutil.which("storescu") is None:
        print("dimse: skipped: install Debian's dcmtk (storescu)")
        return 0

    files = corpus.load()
    folder = corpus.write(files)
    megabytes = sum(len(f.data) for f in files) / 1e6
    print(f"dimse: corpus of {len(files)} files with the three UIDs ({megabytes:.1f} MB), one storescu association")

    data_dir = tempfile.mkdtemp(prefix="bench-dimse-")
    factory, server, port, database_url = start_ours(args, data_dir)
    try:
        database = database_url.rsplit("/", 1)[1] if database_url.startswith("postgres") else None
        warm_up(port, "TELECONSULT")
        before = our_count()
        ours = storescu(port, "TELECONSULT", folder, cpu=lambda: harness.cpu_seconds([server.pid], database=database))
        stored = our_count() - before
    finally:
        factory.stop_all()
    our_rate = report(f"teleconsult ({database_url.split(':')[0]})", ours, stored, len(files), megabytes)

    orthanc = DimseOrthanc()
    if not orthanc.available:
        print("dimse: Orthanc comparison skipped: install Debian's orthanc")
        shutil.rmtree(folder, ignore_errors=True)
        return 0
    try:
        orthanc.start()
        warm_up(orthanc.dicom_port, "ORTHANC")
        before = orthanc.count()
        theirs = storescu(orthanc.dicom_port, "ORTHANC", folder, cpu=lambda: harness.cpu_seconds([orthanc.process.pid]))
        their_stored = orthanc.count() - before
        their_rate = report(f"Orthanc {orthanc.version()}", theirs, their_stored, len(files), megabytes)
    finally:
        orthanc.stop()
        shutil.rmtree(folder, ignore_errors=True)
    if ours["cpu"] and theirs["cpu"]:
        print(f"dimse: server CPU ours/Orthanc {ours['cpu'] / theirs['cpu']:.2f}x (CPU seconds for the same files)")
    print(f"dimse: ratio ours/Orthanc {our_rate / their_rate:.2f}x instances/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Thumbnail coverage and speed on the reference corpus, beside Orthanc's /preview when one is given.

    .venv/bin/python -m bench.thumbnails [--dir PATH ...] [--orthanc-url URL]

The corpus is pydicom's test files plus the pydicom-data package (the files that carry the Study,
Series and SOP Instance UIDs and pixel data). Each file is rendered the way the worker does it:
header, middle frame, longest side 256 px, JPEG. With ORTHANC_URL (or --orthanc-url) set, every
file is also stored in that Orthanc under a fresh SOP Instance UID and its
/instances/{id}/preview is timed; credentials may be given in the URL (http://user:pw@host:8042).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import os
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from bench import corpus


@dataclass
class Outcome:
    label: str
    rendered: int = 0
    total: int = 0
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000 if self.seconds else float("nan")

    def p95_ms(self) -> float:
        if not self.seconds:
            return float("nan")
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000

    def report(self) -> str:
        lines = [
            f"{self.label}: {self.rendered} of {self.total} pixel-bearing files rendered; "
            f"median {self.median_ms():.1f} ms, p95 {self.p95_ms():.1f} ms per thumbnail (wall clock)"
        ]
        if self.cpu_seconds:
            cpu = sorted(self.cpu_seconds)
            lines.append(
                f"  CPU time per thumbnail: median {statistics.median(cpu) * 1000:.1f} ms, "
                f"p95 {cpu[round(0.95 * (len(cpu) - 1))] * 1000:.1f} ms, total {sum(cpu):.2f} s "
                f"(steadier than wall clock on a busy machine)"
            )
        for name, reason in sorted(self.failures.items()):
            lines.append(f"  failed  {name}: {reason}")
        return "\n".join(lines)


def corpus_files(directories: list[str] | None = None) -> list[Path]:
    """Pixel-bearing DICOM files with the three UIDs, from the given directories or the corpus."""
    if directories:
        return corpus.pixel_bearing_files(
            sorted(path for directory in directories for path in Path(directory).rglob("*") if path.is_file())
        )
    return corpus.pixel_bearing_files()


def display_name(path: Path) -> str:
    parts = path.parts
    return "/".join(parts[-2:]) if parts[-1].isdigit() else parts[-1]


def bench_ours(files: list[Path]) -> Outcome:
    from studies.rendering import NotAnImage, RenderError, render_thumbnail

    outcome = Outcome("teleconsult", total=len(files))
    for path in files:
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            render_thumbnail(path)
        except (NotAnImage, RenderError) as exc:
            outcome.failures[display_name(path)] = f"{type(exc).__name__}: {exc}"
            continue
        outcome.seconds.append(time.perf_counter() - started)
        outcome.cpu_seconds.append(time.process_time() - cpu_started)
        outcome.rendered += 1
    return outcome


class Orthanc:
    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.headers = {}
        if parts.username:
            credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))

    def request(self, method: str, path: str, body: bytes | None = None, timeout: float = 60) -> bytes:
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=dict(self.headers))
        if body is not None:
            request.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.read()

    def store(self, data: bytes) -> str:
        return json.loads(self.request("POST", "/instances", data))["ID"]


def with_fresh_uid(path: Path) -> bytes:
    """The file with a new SOP Instance UID (pixel data and transfer syntax untouched), so that
    repeats of one image in several transfer syntaxes stay separate instances; the original bytes
    when the file does not survive a rewrite."""
    raw = path.read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(raw))
            ds.SOPInstanceUID = generate_uid()
            if "MediaStorageSOPInstanceUID" in ds.file_meta:
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            buffer = io.BytesIO()
            ds.save_as(buffer)
        return buffer.getvalue()
    except Exception:
        return raw


def bench_orthanc(files: list[Path], url: str) -> Outcome:
    orthanc = Orthanc(url)
    outcome = Outcome(f"Orthanc at {orthanc.base}", total=len(files))
    for path in files:
        name = display_name(path)
        try:
            instance_id = orthanc.store(with_fresh_uid(path))
        except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
            outcome.failures[name] = f"not stored: {exc}"
            continue
        started = time.perf_counter()
        try:
            orthanc.request("GET", f"/instances/{instance_id}/preview")
        except urllib.error.HTTPError as exc:
            outcome.failures[name] = f"preview answered HTTP {exc.code}"
            continue
        except (urllib.error.URLError, OSError) as exc:
            outcome.failures[name] = f"preview failed: {exc} (did Orthanc crash?)"
            continue
        outcome.seconds.append(time.perf_counter() - started)
        outcome.rendered += 1
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", action="append", help="directory of DICOM files (default: pydicom corpus)")
    parser.add_argument("--orthanc-url", default=os.environ.get("ORTHANC_URL"), help="compare with this Orthanc")
    args = parser.parse_args(argv)

    # Decoder plugins log each refusal with a traceback; the figures below name every failure.
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    warnings.simplefilter("ignore")
    logging.getLogger("studies.rendering").setLevel(logging.WARNING)

    files = corpus_files(args.dir)
    if not files:
        sys.stdout.write("thumbnails: no pixel-bearing DICOM files found\n")
        return 1
    ours = bench_ours(files)
    sys.stdout.write(ours.report() + "\n")
    if args.orthanc_url:
        theirs = bench_orthanc(files, args.orthanc_url)
        sys.stdout.write(theirs.report() + "\n")
        if theirs.seconds:
            sys.stdout.write(
                f"coverage {ours.rendered} vs {theirs.rendered}; median time ratio Orthanc/ours "
                f"{theirs.median_ms() / ours.median_ms():.2f}x\n"
            )
    else:
        sys.stdout.write("Orthanc comparison skipped: set ORTHANC_URL (e.g. http://127.0.0.1:8042)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Viewer benchmark: time to first image and scrolling speed on a 512 x 512 CT series.

Makes 50 synthetic CT slices with pydicom, ingests them into a scratch data directory and
database, serves the portal with daphne, and drives the viewer page in headless Chromium.

    .venv/bin/python -m bench.viewer [--slices 50] [--loads 5] [--scroll-frames 200]

Targets (issue 6): first image within 1 s, scrolling at least 20 frames per second once the
series is prefetched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.browser import CHROMIUM_ARGS
from tests.browser import chromium_path as find_chromium

FIRST_IMAGE_TARGET_S = 1.0
SCROLL_TARGET_FPS = 20.0
ROOT = Path(__file__).resolve().parents[1]


def chromium_path() -> str | None:
    return find_chromium(env_vars=("CHROMIUM",), fallbacks=("/usr/bin/chromium", "/usr/bin/chromium-browser"))


def make_ct_series(directory: Path, slices: int, size: int = 512) -> list[Path]:
    """A synthetic CT of a chest-like phantom: body, two lungs, a spine and a contrast disc."""
    import numpy as np
    from pydicom.uid import CTImageStorage, generate_uid

    from tests.studies.dicom_factory import base_dataset, set_ct_pixels

    directory.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    spacing = 0.7
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    c = size / 2
    rng = np.random.default_rng(7)
    paths = []
    for i in range(slices):
        t = i / max(1, slices - 1)
        hu = np.full((size, size), -1000.0, dtype=np.float32)
        body = ((x - c) / (0.42 * size)) ** 2 + ((y - c) / (0.32 * size)) ** 2 <= 1
        hu[body] = 40
        for side in (-1, 1):
            lung = ((x - c - side * 0.2 * size) / (0.14 * size)) ** 2 + ((y - c + 0.02 * size) / (0.2 * size)) ** 2 <= 1
            hu[lung] = -850
        spine = (x - c) ** 2 + (y - c - 0.22 * size) ** 2 <= (0.05 * size) ** 2
        hu[spine] = 700
        disc = (x - c) ** 2 + (y - c + (t - 0.5) * 0.2 * size) ** 2 <= (0.04 * size) ** 2
        hu[disc] = 150
        hu += rng.normal(0, 8, size=(size, size)).astype(np.float32)

        ds = base_dataset(
            CTImageStorage,
            media_storage=True,
            StudyInstanceUID=study_uid,
            SeriesInstanceUID=series_uid,
            FrameOfReferenceUID=frame_uid,
            PatientID="BENCH-001",
            PatientName="Bench^Viewer",
            PatientBirthDate="19700101",
            PatientSex="O",
            StudyDate="20250101",
            StudyTime="120000",
            StudyDescription="Viewer benchmark CT",
            AccessionNumber="BENCH1",
            Modality="CT",
            SeriesNumber=1,
            SeriesDescription="Chest 1.0 mm",
            InstanceNumber=i + 1,
        )
        ds.ImagePositionPatient = [-c * spacing, -c * spacing, -float(i)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceThickness = 1.0
        ds.PixelSpacing = [spacing, spacing]
        set_ct_pixels(ds, hu)
        path = directory / f"slice{i + 1:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"daphne did not start on port {port}")


def prepare(scratch: Path, slices: int) -> tuple[str, str, dict]:
    """Migrate a scratch database, ingest the series; returns (study UID, session cookie, env)."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "teleconsult.settings",
            "TELECONSULT_DATA_DIR": str(scratch / "data"),
            # Production mode: collected, compressed static files as a deployment serves them.
            "DEBUG": "0",
            "SECRET_KEY": "viewer-benchmark-only-not-a-secret",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "TELECONSULT_MFA_REQUIRED": "0",
            "REDIS_URL": "",
            "DATABASE_URL": "",
        }
    )
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from accounts.models import Organization, User
    from studies.ingest import ingest_file

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    user = User.objects.create_user("bench@example.com", password="bench-viewer-password", role="physician")
    Organization.objects.create(name="Bench Hospital").add_member(user)
    files = make_ct_series(scratch / "dicom", slices)
    study_uid = ""
    for path in files:
        result = ingest_file(path, filename=path.name, user=user)
        if result.status == "refused":
            raise RuntimeError(f"ingest refused {path.name}: {result.reason}")
        study_uid = result.study_instance_uid
    client = Client()
    client.force_login(user)
    return study_uid, client.cookies["sessionid"].value, env


SCROLL_JS = """
async (n) => {
  const root = document.querySelector('[data-viewer]');
  const viewer = root.viewer;
  const canvas = viewer.canvas;
  const total = viewer.series.stack.length;
  let direction = 1;
  const painted = () => new Promise((resolve) => {
    const off = viewer.on('render', (e) => { if (e.loaded) { off(); resolve(); } });
  });
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    if (viewer.index + direction < 0 || viewer.index + direction >= total) direction = -direction;
    const done = painted();
    canvas.dispatchEvent(new WheelEvent('wheel', {deltaY: 100 * direction, bubbles: true, cancelable: true}));
    await done;
  }
  return performance.now() - t0;
}
"""


# Browser-side cost of one frame (window through the LUT, put, scale to the canvas, overlay),
# without waiting for the display's refresh: what the viewer could do with the page to itself.
PAINT_JS = """
(n) => {
  const viewer = document.querySelector('[data-viewer]').viewer;
  const total = viewer.series.stack.length;
  const start = viewer.index;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    viewer.index = (start + i + 1) % total;
    viewer.render(performance.now());
  }
  const ms = (performance.now() - t0) / n;
  viewer.setIndex(start);
  return ms;
}
"""

# Where the time to first image goes, in ms from navigation start (Resource Timing).
BREAKDOWN_JS = """
() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const end = (part) => Math.min(...res.filter((r) => r.name.includes(part)).map((r) => r.responseEnd));
  return {
    page: nav.responseEnd,
    scripts_ready: nav.domContentLoadedEventEnd,
    series_metadata: end('/metadata'),
    first_frame: end('/frames/'),
  };
}
"""


def run_browser(base_url: str, study_uid: str, session: str, loads: int, scroll_frames: int, slices: int) -> dict:
    from playwright.sync_api import sync_playwright

    url = f"{base_url}/studies/{study_uid}/view/"
    firsts: list[float] = []
    steps: list[dict] = []
    fps = None
    paint_ms = None
    prefetch_s = None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            for attempt in range(loads):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.add_cookies([{"name": "sessionid", "value": session, "url": base_url}])
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                page.goto(url)
                page.wait_for_selector("[data-viewer][data-state=ready]", timeout=60000)
                first_ms = page.evaluate("performance.getEntriesByName('viewer:first-image')[0].startTime")
                firsts.append(first_ms / 1000)
                steps.append(page.evaluate(BREAKDOWN_JS))
                if errors:
                    raise RuntimeError(f"page errors: {errors}")
                if attempt == loads - 1:
                    started = time.monotonic()
                    page.wait_for_function(
                        "(n) => { const v = document.querySelector('[data-viewer]').viewer;"
                        " return v.cache.map.size >= n && v.inFlight.size === 0; }",
                        arg=slices,
                        timeout=60000,
                    )
                    prefetch_s = time.monotonic() - started + first_ms / 1000
                    page.evaluate(SCROLL_JS, 10)  # warm up the code paths
                    elapsed_ms = page.evaluate(SCROLL_JS, scroll_frames)
                    fps = scroll_frames / (elapsed_ms / 1000)
                    paint_ms = page.evaluate(PAINT_JS, 100)
                context.close()
        finally:
            browser.close()
    breakdown = {k: statistics.median(step[k] for step in steps[1:] or steps) / 1000 for k in steps[0]}
    return {
        "first_image_s": firsts,
        "prefetch_all_s": prefetch_s,
        "scroll_fps": fps,
        "paint_ms": paint_ms,
        "breakdown_s": breakdown,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=50)
    parser.add_argument("--loads", type=int, default=5, help="page loads to time, each in a fresh browser context")
    parser.add_argument("--scroll-frames", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    if chromium_path() is None:
        print("bench.viewer: Chromium not found (apt-get install chromium, or set CHROMIUM)")
        return 2

    scratch = Path(tempfile.mkdtemp(prefix="teleconsult-viewer-bench-"))
    server = None
    try:
        started = time.monotonic()
        study_uid, session, env = prepare(scratch, args.slices)
        print(f"ingested {args.slices} slices of 512x512 CT in {time.monotonic() - started:.1f} s")
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "teleconsult.serve", "-b", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for_port(port)
        figures = run_browser(
            f"http://127.0.0.1:{port}", study_uid, session, args.loads, args.scroll_frames, args.slices
        )
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(scratch, ignore_errors=True)

    firsts = figures["first_image_s"]
    cold, warm = firsts[0], statistics.median(firsts[1:]) if len(firsts) > 1 else firsts[0]
    fps = figures["scroll_fps"]
    first_ok = warm <= FIRST_IMAGE_TARGET_S
    fps_ok = fps is not None and fps >= SCROLL_TARGET_FPS
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"viewer benchmark (headless Chromium, daphne, SQLite, 512x512 16-bit CT; {os.cpu_count()} cores, load {load})"
    )
    print(f"  first image, first load (cold server):  {cold:.3f} s")
    print(
        f"  first image, median of next {len(firsts) - 1} loads:  {warm:.3f} s   target <= {FIRST_IMAGE_TARGET_S} s  {'OK' if first_ok else 'MISSED'}"
    )
    parts = "  ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in figures["breakdown_s"].items())
    print(f"  of which, median seconds from navigation: {parts}")
    print(f"  whole series prefetched after:          {figures['prefetch_all_s']:.2f} s")
    print(
        f"  scrolling after prefetch:               {fps:.1f} frames/s   target >= {SCROLL_TARGET_FPS:.0f}  {'OK' if fps_ok else 'MISSED'}"
    )
    print(f"  browser cost of one frame (no vsync wait): {figures['paint_ms']:.1f} ms")
    print("  peer: OHIF publishes no figure for this setup; the targets are the issue's.")
    if args.json:
        print(json.dumps({"first_image_cold_s": cold, "first_image_median_s": warm, **figures}))
    # A missed target is a figure to report, like the other benchmarks', not a failed run.
    return 0


if __name__ == "__main__":
    sys.exit(main())

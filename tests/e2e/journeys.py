"""What the browser journeys share: screen sizes, watching a page for console errors, checking it
does not scroll sideways, screenshots, running consult actions outside Playwright's thread,
drawing on the viewer's canvas in image coordinates, and a CT study with an accepted consult.

Screenshots go to $TELECONSULT_SHOTS (default /tmp/shots15/) for a person to look at."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from consultations import actions
from studies.ingest import ingest_file
from studies.models import Study
from tests.factories import ConsultFactory
from tests.viewer import dicom

DESK = {"viewport": {"width": 1366, "height": 850}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
SCREENS = {"desk": DESK, "phone": PHONE}
SHOTS = Path(os.environ.get("TELECONSULT_SHOTS", "/tmp/shots15"))
VIEWER = "document.querySelector('[data-viewer]').viewer"
SIDEWAYS = "() => [document.documentElement.scrollWidth, window.innerWidth]"


def watch_console(page) -> list[str]:
    """The page's console errors and uncaught exceptions, collected as they happen (also as
    ``page.problems``)."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.problems = errors
    return errors


def sideways_overflow(page) -> int:
    """How many pixels wider than the screen the document is (0 or less: no sideways scrolling).
    On a phone (``is_mobile``) Chromium widens the layout viewport to a page that overflows, so
    ``window.innerWidth`` grows with it: the screen's width is the viewport's."""
    scroll_width, window_width = page.evaluate(SIDEWAYS)
    return scroll_width - min(window_width, page.viewport_size["width"])


def assert_fits(page) -> None:
    overflow = sideways_overflow(page)
    assert overflow <= 0, f"{page.url} scrolls sideways: {overflow} px wider than the screen"


def shoot(page, name: str, *, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def in_own_thread(function, *args):
    """Consult actions notify through the channel layer (async_to_sync), which cannot run in the
    thread where Playwright keeps its event loop."""
    from django.db import connection

    def run():
        try:
            return function(*args)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def on_canvas(page, x: float, y: float) -> tuple[float, float]:
    """The page coordinates of image pixel (x, y) in the viewer as it is zoomed and panned now."""
    box = page.locator("[data-canvas]").bounding_box()
    sx, sy = page.evaluate(f"{VIEWER}.toScreen([{x}, {y}])")
    return box["x"] + sx, box["y"] + sy


def settled_on_canvas(page, *points: tuple[float, float]) -> list[tuple[float, float]]:
    """The page coordinates of ``points`` once the viewer's layout has stopped moving: a menu
    closing or a strip of thumbnails arriving resizes the canvas, which refits the image, so
    coordinates read a frame earlier can miss by a few percent."""
    previous = None
    for _ in range(50):
        current = [on_canvas(page, *point) for point in points]
        if current == previous:
            return current
        previous = current
        page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
        page.wait_for_timeout(50)
    raise AssertionError(f"the viewer's layout never settled: {points} kept moving")


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A mouse drag between two image pixels, with both ends read from a settled layout."""
    first, last = settled_on_canvas(page, start, end)
    page.mouse.move(*first)
    page.mouse.down()
    page.mouse.move(*last, steps=6)
    page.mouse.up()


def store_ct_slices(uploader, folder: Path, study_uid: str, *, count: int, **tags) -> Study:
    """A CT study of ``count`` slices (from tests.viewer.dicom, with ``tags`` set on each slice)
    uploaded by ``uploader``."""
    slices = dicom.ct_slices(study_uid, count=count)
    for ds in slices:
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
    for path in dicom.write(slices, folder):
        result = ingest_file(path, filename=path.name, user=uploader)
        assert result.status == "stored", result.reason
    return Study.objects.get(study_instance_uid=study_uid)


def submit_and_accept(consult, physician, specialist) -> None:
    actions.submit_consult(consult, by=physician)
    actions.accept_consult(consult, by=specialist)


def accepted_consult_on_new_study(live_user, tmp_path, *, prefix: str, study_uid: str, slices: int, **tags):
    """Dr Referrer (``{prefix}-doc@example.com``) uploads a CT study of ``slices`` slices and asks
    for a consult on it, which Dr Reader (``{prefix}-reader@example.com``) accepts. Returns
    ``(consult, physician, specialist)``."""
    physician = live_user("physician", email=f"{prefix}-doc@example.com", name="Dr Referrer")
    specialist = live_user("specialist", email=f"{prefix}-reader@example.com", name="Dr Reader")
    study = store_ct_slices(physician, tmp_path / "in", study_uid, count=slices, **tags)
    consult = ConsultFactory(requester=physician, study=study)
    in_own_thread(submit_and_accept, consult, physician, specialist)
    return consult, physician, specialist

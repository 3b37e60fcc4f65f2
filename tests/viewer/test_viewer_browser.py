"""The viewer in headless Chromium against the live server: measurements on images of known
geometry, window/level, scrolling, view state, annotations API, read-only mode, colour and
MONOCHROME1 images."""

from __future__ import annotations

import pytest
from django.test import Client
from playwright.sync_api import expect

from studies.ingest import ingest_file
from tests.browser import (  # noqa: F401  (fixtures)
    allow_orm_beside_playwright_fixture,
    browser_fixture,
    playwright_driver_fixture,
)
from tests.viewer import dicom

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("allow_orm_beside_playwright"),
]

VIEWER = "document.querySelector('[data-viewer]').viewer"


@pytest.fixture
def study_uid(browser, physician, patient_user, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    uid = "1.2.826.0.1.3680043.10.543.4242"
    datasets = [*dicom.ct_slices(uid), dicom.dx_monochrome1(uid), dicom.us_rgb_clip(uid), dicom.xa_multiframe(uid)]
    for path in dicom.write(datasets, tmp_path / "in"):
        result = ingest_file(path, filename=path.name, user=physician)
        assert result.status == "stored", result.reason
    from studies.models import Patient

    Patient.objects.update(account=patient_user)
    return uid


@pytest.fixture
def open_viewer(browser, live_server):
    contexts = []

    def open_as(user, study_uid: str, *, drawing: bool = False):
        """The study's own viewer page. It has no drawing tools (nothing drawn there would be
        kept); ``drawing`` turns the viewer's tool layer on, as the consult page has it, to test
        the tools themselves by their shortcuts."""
        client = Client()
        client.force_login(user)
        context = browser.new_context(viewport={"width": 1100, "height": 800})
        context.set_default_timeout(20_000)
        contexts.append(context)
        context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{live_server.url}/studies/{study_uid}/view/")
        page.wait_for_selector("[data-viewer][data-state=ready]")
        if drawing:
            page.evaluate(f"{VIEWER}.setReadOnly(false)")
        page.evaluate(
            f"""() => {{ window.changes = []; window.views = [];
                {VIEWER}.on('annotation:change', (e) => window.changes.push(e));
                {VIEWER}.on('view:change', (s) => window.views.push(s)); }}"""
        )
        page.errors = errors
        return page

    yield open_as
    for context in contexts:
        context.close()


def screen(page, x: float, y: float) -> tuple[float, float]:
    box = page.locator("[data-canvas]").bounding_box()
    sx, sy = page.evaluate(f"{VIEWER}.toScreen([{x}, {y}])")
    return box["x"] + sx, box["y"] + sy


def drag(page, start, end) -> None:
    page.mouse.move(*screen(page, *start))
    page.mouse.down()
    page.mouse.move(*screen(page, *end), steps=6)
    page.mouse.up()


def expect_overlay(page, corner: str, text: str) -> None:
    """The overlay is drawn on the next frame after a change: wait for it to show ``text``."""
    expect(page.locator(f"[data-overlay={corner}]")).to_contain_text(text, timeout=5000)


def within(actual: float, expected: float, fraction: float = 0.01) -> bool:
    return abs(actual - expected) <= abs(expected) * fraction


def test_length_and_ellipse_measure_known_geometry_within_one_percent(open_viewer, physician, study_uid):
    page = open_viewer(physician, study_uid, drawing=True)
    expect_overlay(page, "bl", "Im 1 / 3")
    expect_overlay(page, "tl", "Viewer Test")

    page.keyboard.press("l")
    drag(page, (dicom.BAR["x0"], dicom.BAR["y"]), (dicom.BAR["x1"], dicom.BAR["y"]))
    page.keyboard.press("e")
    r = 20
    drag(page, (dicom.DISC["cx"] - r, dicom.DISC["cy"] - r), (dicom.DISC["cx"] + r, dicom.DISC["cy"] + r))

    changes = page.evaluate("window.changes")
    assert [c["action"] for c in changes] == ["created", "created"]
    length, ellipse = (c["annotation"] for c in changes)
    assert length["tool"] == "length"
    assert length["values"]["unit"] == "mm"
    assert within(length["values"]["length"], 100.0)
    assert length["frame"] == 1
    assert length["sop_instance_uid"] == page.evaluate(f"{VIEWER}.getViewState().instance_uid")
    assert set(length) == {"id", "sop_instance_uid", "frame", "tool", "geometry", "values", "label"}
    assert ellipse["values"]["unit"] == "HU"
    assert within(ellipse["values"]["mean"], dicom.DISC["hu"])
    assert ellipse["values"]["sd"] < 0.01
    assert ellipse["values"]["area_unit"] == "mm²"
    assert within(ellipse["values"]["area"], 3.14159 * (r * dicom.CT_SPACING) ** 2)

    # Select the length, move it, delete it.
    page.keyboard.press("v")
    mid = ((dicom.BAR["x0"] + dicom.BAR["x1"]) / 2, dicom.BAR["y"])
    drag(page, mid, (mid[0], mid[1] + 20))
    page.keyboard.press("Delete")
    actions = [(c["action"], c["annotation"]["tool"]) for c in page.evaluate("window.changes")[2:]]
    assert actions == [("updated", "length"), ("deleted", "length")]
    moved = page.evaluate("window.changes")[2]["annotation"]
    assert within(moved["geometry"]["points"][0][1], dicom.BAR["y"] + 20, 0.05)
    assert within(moved["values"]["length"], 100.0)
    assert page.errors == []


def test_scroll_window_zoom_and_view_state(open_viewer, physician, study_uid):
    page = open_viewer(physician, study_uid)
    page.locator("[data-viewport]").focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.wait_for_function(f"() => {VIEWER}.index === 2")
    page.mouse.move(*screen(page, 128, 128))
    page.mouse.wheel(0, -120)
    page.wait_for_function(f"() => {VIEWER}.index === 1")
    expect_overlay(page, "bl", "Im 2 / 3")

    page.keyboard.press("1")  # CT brain preset
    page.wait_for_function(f"() => {VIEWER}.window.width === 80")
    expect_overlay(page, "bl", "W 80  L 40")
    page.keyboard.press("w")
    drag(page, (60, 200), (100, 180))
    state = page.evaluate(f"{VIEWER}.getViewState()")
    assert state["window_width"] > 80
    assert set(state) == {
        "study_uid",
        "series_uid",
        "instance_uid",
        "frame",
        "window_center",
        "window_width",
        "zoom",
        "pan",
    }
    page.keyboard.down("Control")
    page.mouse.wheel(0, -400)
    page.keyboard.up("Control")
    page.wait_for_function(f"() => {VIEWER}.zoom > 1.5")
    page.wait_for_function("() => window.views.length > 0")
    last = page.evaluate("window.views[window.views.length - 1]")
    assert last["zoom"] > 1.5

    # A state from another participant lands exactly, and is not echoed back.
    sent = page.evaluate("window.views.length")
    target = dict(state, frame=1, window_center=-600, window_width=1500, zoom=2, pan=[10, -5])
    target["instance_uid"] = page.evaluate(f"{VIEWER}.series.stack[0].info.sopInstanceUid")
    page.evaluate(f"(s) => {VIEWER}.applyViewState(s)", target)
    page.wait_for_function(f"() => {VIEWER}.index === 0")
    got = page.evaluate(f"{VIEWER}.getViewState()")
    assert (got["window_center"], got["window_width"], got["zoom"], got["pan"]) == (-600, 1500, 2, [10, -5])
    page.wait_for_timeout(100)
    assert page.evaluate("window.views.length") == sent
    assert page.errors == []


def test_annotations_from_elsewhere_are_shown_and_not_echoed(open_viewer, physician, study_uid):
    page = open_viewer(physician, study_uid, drawing=True)
    sop = page.evaluate(f"{VIEWER}.getViewState().instance_uid")
    saved = {
        "id": "a1",
        "sop_instance_uid": sop,
        "frame": 1,
        "tool": "length",
        "geometry": {"points": [[10, 10], [110, 10]]},
        "values": {"length": 50, "unit": "mm"},
        "label": "saved",
    }
    page.evaluate(f"(a) => {VIEWER}.setAnnotations([a])", saved)
    assert page.evaluate(f"{VIEWER}.getAnnotations()") == [saved]
    page.evaluate(f"(a) => {VIEWER}.upsertAnnotation(Object.assign({{}}, a, {{label: 'live'}}))", saved)
    assert page.evaluate(f"{VIEWER}.getAnnotations()[0].label") == "live"
    page.evaluate(f"{VIEWER}.removeAnnotation('a1')")
    assert page.evaluate(f"{VIEWER}.getAnnotations()") == []
    assert page.evaluate("window.changes") == []

    page.keyboard.press("m")  # key image flag
    change = page.evaluate("window.changes[0]")
    assert change["action"] == "created"
    assert change["annotation"]["tool"] == "key_image"
    expect_overlay(page, "tr", "Key image")


def test_physician_on_the_study_viewer_gets_no_drawing_tools(open_viewer, physician, study_uid):
    page = open_viewer(physician, study_uid)
    assert page.locator("[data-tool=length]").count() == 0
    expect(page.locator("[data-drawing-note]")).to_contain_text("Measurements are saved on a consult")
    page.keyboard.press("l")
    page.keyboard.press("m")
    drag(page, (20, 20), (200, 200))
    assert page.evaluate("window.changes") == []
    assert page.errors == []


def test_patient_gets_read_only_viewer(open_viewer, patient_user, study_uid):
    page = open_viewer(patient_user, study_uid)
    assert page.locator("[data-tool=length]").count() == 0
    expect_overlay(page, "tr", "Read only")
    page.keyboard.press("l")
    page.keyboard.press("m")
    drag(page, (20, 20), (200, 200))
    assert page.evaluate("window.changes") == []
    assert page.evaluate(f"{VIEWER}.tool") != "length"


def test_xray_uses_imager_spacing_and_colour_clip_uses_rendered_frames(open_viewer, physician, study_uid):
    page = open_viewer(physician, study_uid, drawing=True)
    series = page.evaluate(f"{VIEWER}.seriesList.map((s) => [s.modality, s.uid])")
    assert [m for m, _ in series] == ["CT", "DX", "US", "XA"]

    page.click(f"[data-series='{series[1][1]}']")
    page.wait_for_function(
        f"() => {VIEWER}.series.modality === 'DX' && {VIEWER}.shown && {VIEWER}.shown.info.modality === 'DX'"
    )
    # MONOCHROME1: the low (left) half is bright, the high (right) half dark.
    left, right = page.evaluate(
        f"""() => {{ const v = {VIEWER}; const c = v.imageCanvas.getContext('2d');
            return [c.getImageData(10, 64, 1, 1).data[0], c.getImageData(110, 64, 1, 1).data[0]]; }}"""
    )
    assert left > 200 and right < 50
    page.wait_for_function("() => window.views.length > 0")
    assert page.evaluate("window.views[window.views.length - 1].series_uid") == series[1][1]
    page.keyboard.press("l")
    drag(page, (10, 100), (110, 100))
    length = page.evaluate("window.changes[0].annotation.values")
    assert length["unit"] == "mm"
    assert within(length["length"], 100 * dicom.DX_IMAGER_SPACING)

    page.click(f"[data-series='{series[2][1]}']")
    page.wait_for_function(f"() => {VIEWER}.series.modality === 'US' && {VIEWER}.shown && {VIEWER}.shown.bitmap")
    assert page.evaluate(f"{VIEWER}.series.stack.length") == 4
    expect_overlay(page, "bl", "Fr 1 / 4")
    page.keyboard.press("End")
    page.wait_for_function(f"() => {VIEWER}.shown.frame === 4")
    red = page.evaluate(f"{VIEWER}.imageCanvas.getContext('2d').getImageData(45, 30, 1, 1).data[0]")
    assert red > 200
    page.keyboard.press(" ")
    page.wait_for_function(f"() => {VIEWER}.index !== 3")
    page.keyboard.press(" ")
    assert page.errors == []


def test_phone_swipe_scrolls_and_pinch_zooms(browser, live_server, physician, study_uid):
    client = Client()
    client.force_login(physician)
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    try:
        context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
        page = context.new_page()
        page.goto(f"{live_server.url}/studies/{study_uid}/view/")
        page.wait_for_selector("[data-viewer][data-state=ready]")
        box = page.locator("[data-canvas]").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        cdp = context.new_cdp_session(page)

        def touch(kind, points):
            cdp.send(
                "Input.dispatchTouchEvent",
                {"type": kind, "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]},
            )

        touch("touchStart", [(cx, cy)])
        for k in range(1, 6):
            touch("touchMove", [(cx, cy + k * 4)])
        touch("touchEnd", [])
        page.wait_for_function(f"() => {VIEWER}.index === 2")

        touch("touchStart", [(cx - 30, cy), (cx + 30, cy)])
        for k in range(1, 11):
            touch("touchMove", [(cx - 30 - k * 6, cy), (cx + 30 + k * 6, cy)])
        touch("touchEnd", [])
        page.wait_for_function(f"() => {VIEWER}.zoom > 2.5")
        assert page.evaluate(f"{VIEWER}.index") == 2
    finally:
        context.close()


def test_grayscale_multiframe_is_windowed_in_the_browser_and_plays_as_cine(open_viewer, physician, study_uid):
    page = open_viewer(physician, study_uid)
    xa = page.evaluate(f"{VIEWER}.seriesList.find((s) => s.modality === 'XA').uid")
    page.click(f"[data-series='{xa}']")
    page.wait_for_function(f"() => {VIEWER}.series.modality === 'XA' && {VIEWER}.shown && {VIEWER}.shown.pixels")
    assert page.evaluate(f"{VIEWER}.series.stack.length") == 3
    assert page.evaluate(f"{VIEWER}.cine.fps") == 10  # from FrameTime 100 ms
    page.keyboard.press("End")
    page.wait_for_function(f"() => {VIEWER}.shown.frame === 3")
    assert page.evaluate(f"{VIEWER}.shown.pixels[0]") == 150
    expect_overlay(page, "bl", "Fr 3 / 3")
    page.keyboard.press(" ")
    page.wait_for_function(f"() => {VIEWER}.index === 0")
    page.wait_for_function(f"() => {VIEWER}.index === 1")
    page.keyboard.press(" ")
    assert page.evaluate(f"{VIEWER}.cine.playing") is False
    assert page.errors == []


def test_pointer_events_remote_pointers_and_save_state(open_viewer, physician, study_uid):
    page = open_viewer(physician, study_uid)
    page.evaluate(f"() => {{ window.pointers = []; {VIEWER}.on('pointer', (p) => window.pointers.push(p)); }}")
    page.mouse.move(*screen(page, 100, 50))
    page.wait_for_function("() => window.pointers.length > 0")
    last = page.evaluate("window.pointers[window.pointers.length - 1]")
    assert abs(last["x"] - 100) < 1 and abs(last["y"] - 50) < 1
    assert last["frame"] == 1
    page.evaluate(f"{VIEWER}.showPointer(7, {{x: 20, y: 20}}, 'Dr Remote')")
    assert page.evaluate(f"{VIEWER}.remotePointers.size") == 1
    page.evaluate(f"{VIEWER}.hidePointer(7)")
    page.evaluate(f"{VIEWER}.setSaveState('Not saved: retrying', 'bad')")
    assert page.locator("[data-save-state]").inner_text() == "Not saved: retrying"
    assert page.errors == []


def test_toolbar_invert_fit_reset_and_help(open_viewer, physician, study_uid):
    page = open_viewer(physician, study_uid)
    pixel = f"() => {VIEWER}.imageCanvas.getContext('2d').getImageData(128, 128, 1, 1).data[0]"
    before = page.evaluate(pixel)
    page.click("[data-action=invert]")
    page.wait_for_function(f"() => ({pixel})() === 255 - {before}")
    assert page.get_attribute("[data-action=invert]", "aria-pressed") == "true"
    expect_overlay(page, "bl", "Inverted")

    page.evaluate(f"{VIEWER}.setZoom(3)")
    page.click("[data-action=fit]")
    assert page.evaluate(f"{VIEWER}.zoom") == 1
    page.keyboard.press("3")  # CT bone preset
    page.wait_for_function(f"() => {VIEWER}.window.width === 1500")
    page.click("[data-action=reset]")
    page.wait_for_function(f"() => {VIEWER}.window.width === 400 && !{VIEWER}.invert")

    page.keyboard.press("?")
    assert page.locator("[data-help]").is_visible()
    assert page.locator("[data-shortcuts] dt").count() > 20
    # The screen's calibration cannot be checked: the help says where primary reads belong.
    expect(page.locator("[data-display-notice]")).to_contain_text("calibrated diagnostic display")
    page.keyboard.press("Escape")
    assert not page.locator("[data-help]").is_visible()
    assert page.errors == []


def test_without_embedded_series_the_viewer_asks_qido(browser, live_server, physician, study_uid):
    """What share-link and other pages that include the viewer with only a study get."""
    import re

    client = Client()
    client.force_login(physician)
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    try:
        context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
        page = context.new_page()

        def strip_embedded(route):
            response = route.fetch()
            html = re.sub(r'<script type="application/json"[^>]*>.*?</script>', "", response.text(), flags=re.S)
            html = re.sub(r'<link rel="preload" as="fetch"[^>]*>', "", html)
            route.fulfill(response=response, body=html)

        page.route("**/view/", strip_embedded)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"{live_server.url}/studies/{study_uid}/view/")
        page.wait_for_selector("[data-viewer][data-state=ready]")
        assert any(
            url.endswith("/series?includefield=00080060,0008103E,00200011,00201209,0020000E") for url in requests
        )
        assert page.evaluate(f"{VIEWER}.seriesList.length") == 4
        assert page.evaluate(f"{VIEWER}.series.modality") == "CT"
    finally:
        context.close()


@pytest.fixture
def lossy_study_uid(browser, physician, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    uid = "1.2.826.0.1.3680043.10.543.4343"
    datasets = [*dicom.ct_slices(uid, count=1), dicom.ct_j2k_lossy(uid), dicom.sc_jpeg_baseline(uid)]
    for path in dicom.write(datasets, tmp_path / "lossy"):
        result = ingest_file(path, filename=path.name, user=physician)
        assert result.status == "stored", result.reason
    return uid


def test_lossy_pixels_are_marked_with_method_and_ratio_and_lossless_ones_are_not(
    open_viewer, physician, lossy_study_uid
):
    page = open_viewer(physician, lossy_study_uid)
    badge = page.locator("[data-lossy-badge]")
    series = page.evaluate(f"{VIEWER}.seriesList.map((s) => [s.description || s.label, s.uid])")
    assert len(series) == 3
    expect_overlay(page, "tl", "Viewer Test")
    expect_overlay(page, "tl", "ID VIEWER-1")
    expect_overlay(page, "tl", "Acc V1")
    expect(badge).to_be_hidden()  # the uncompressed CT comes first
    page.click(f"[data-series='{series[1][1]}']")
    expect(badge).to_have_text("LOSSY · JPEG 2000 · 12:1")
    expect(badge).to_be_visible()
    page.click(f"[data-series='{series[2][1]}']")
    expect(badge).to_have_text("LOSSY · JPEG")
    page.click(f"[data-series='{series[0][1]}']")
    expect(badge).to_be_hidden()
    assert page.errors == []


def test_a_colour_clip_drawn_from_png_rendered_frames_is_not_marked_lossy(open_viewer, physician, study_uid):
    page = open_viewer(physician, study_uid)
    series = page.evaluate(f"{VIEWER}.seriesList.map((s) => [s.modality, s.uid])")
    page.click(f"[data-series='{series[2][1]}']")
    page.wait_for_function(f"() => {VIEWER}.series.modality === 'US' && {VIEWER}.shown && {VIEWER}.shown.bitmap")
    expect(page.locator("[data-lossy-badge]")).to_be_hidden()
    assert page.locator("[data-viewer]").get_attribute("data-lossy-pixels") == "false"

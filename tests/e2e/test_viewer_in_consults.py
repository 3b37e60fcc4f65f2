"""The viewer where measurements are kept (the consult page) and where they are not (the study's
own viewer), on a desk (1366x850) and on a phone (390x844). Screenshots go to
$TELECONSULT_SHOTS (default /tmp/shots15/)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from consultations.models import Annotation
from studies.ingest import ingest_file
from tests.e2e.conftest import login
from tests.e2e.journeys import (
    DESK,
    PHONE,
    VIEWER,
    accepted_consult_on_new_study,
    assert_fits,
    drag,
    shoot,
    watch_console,
)
from tests.viewer import dicom

pytestmark = pytest.mark.e2e

STUDY_UID = "1.2.826.0.1.3680043.10.543.1515"


@pytest.fixture
def accepted_consult(live_user, tmp_path):
    return accepted_consult_on_new_study(live_user, tmp_path, prefix="v15", study_uid=STUDY_UID, slices=4)


def open_page(browser_context, user, path: str, *, screen=DESK, wait_ready: bool = True):
    page = browser_context(**screen).new_page()
    page.errors = watch_console(page)
    login(page, user)
    page.goto(path)
    if wait_ready:
        page.wait_for_selector("[data-viewer][data-state=ready]")
    return page


def saved(page) -> None:
    expect(page.locator("[data-annotations-status]")).to_have_text("All changes saved")


def test_a_length_drawn_in_a_consult_is_kept_listed_and_found_again(browser_context, accepted_consult):
    consult, _, specialist = accepted_consult
    page = open_page(browser_context, specialist, f"/consults/{consult.pk}/")
    viewer = page.locator("[data-viewer]")
    expect(viewer.locator("[data-drawing-note]")).to_have_count(0)

    # On the second image, with a window of its own: draw a length across the bar.
    page.evaluate(f"{VIEWER}.setIndex(1); {VIEWER}.setWindow(40, 80)")
    expect(page.locator("[data-overlay=bl]")).to_contain_text("Im 2 / 4")
    viewer.get_by_role("button", name="Length", exact=True).click()
    drag(page, (dicom.BAR["x0"], dicom.BAR["y"]), (dicom.BAR["x1"], dicom.BAR["y"]))
    saved(page)
    [row] = Annotation.objects.filter(consult=consult)
    assert row.tool == "length" and abs(row.values["length"] - 100.0) < 1.0

    # Reload: the viewer reopens on the same image and window, the length is there and listed.
    page.reload()
    page.wait_for_selector("[data-viewer][data-state=ready]")
    page.wait_for_function(f"() => {VIEWER}.index === 1 && {VIEWER}.getAnnotations().length === 1")
    state = page.evaluate(f"{VIEWER}.getViewState()")
    assert (state["window_center"], state["window_width"]) == (40, 80)
    expect(page.locator("[data-overlay=bl]")).to_contain_text("Im 2 / 4")
    list_button = viewer.locator('.viewer-toolbar [data-action="list"]')
    expect(list_button).to_contain_text("(1)")
    list_button.click()
    rows = viewer.locator("[data-list-items] li")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Length 100")
    expect(rows.first).to_contain_text("Im 2 / 4")
    expect(rows.first).to_contain_text("Dr Reader")

    # Jump-to: from the first image back to the measured one, with the length selected.
    page.evaluate(f"{VIEWER}.setIndex(0)")
    expect(page.locator("[data-overlay=bl]")).to_contain_text("Im 1 / 4")
    rows.first.get_by_role("button").click()
    page.wait_for_function(f"() => {VIEWER}.index === 1 && {VIEWER}.tools.selectedId === {str(row.id)!r}")

    # Mark the image as a key image from the toolbar: saved, and listed first.
    viewer.get_by_role("button", name="★ Key", exact=True).click()
    saved(page)
    assert Annotation.objects.filter(consult=consult, tool="key_image").count() == 1
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Key image")
    expect(viewer.get_by_role("button", name="★ Key", exact=True)).to_have_attribute("aria-pressed", "true")
    shoot(page, "consult-desk-list", full_page=False)

    # Expand fills the window with the viewer (annotations and list included); Escape comes back.
    viewer.get_by_role("button", name="Expand", exact=True).click()
    box = viewer.bounding_box()
    assert box["width"] == DESK["viewport"]["width"] and box["height"] == DESK["viewport"]["height"]
    shoot(page, "consult-desk-expanded", full_page=False)
    page.locator("[data-viewport]").focus()
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    expect(viewer).not_to_have_class("viewer viewer-expanded")
    assert page.evaluate("() => !document.querySelector('[data-viewer]').classList.contains('viewer-expanded')")
    shoot(page, "consult-desk")
    assert page.errors == []


def test_the_studys_own_viewer_offers_no_drawing_tools_and_says_why(browser_context, accepted_consult):
    consult, physician, _ = accepted_consult
    page = open_page(browser_context, physician, f"/studies/{STUDY_UID}/view/")
    viewer = page.locator("[data-viewer]")
    expect(viewer.locator("[data-drawing-note]")).to_have_text(
        "Measurements are saved on a consult: open the viewer from a consult to measure and annotate."
    )
    for name in ("Length", "Angle", "Ellipse", "Arrow", "Text", "★ Key", "Delete"):
        expect(viewer.get_by_role("button", name=name, exact=True)).to_have_count(0)
    # The shortcuts do not draw either: a drag after "l" is window/level, nothing is made.
    page.evaluate(f"() => {{ window.changes = []; {VIEWER}.on('annotation:change', (c) => window.changes.push(c)); }}")
    page.locator("[data-viewport]").focus()
    page.keyboard.press("l")
    drag(page, (dicom.BAR["x0"], dicom.BAR["y"]), (dicom.BAR["x1"], dicom.BAR["y"]))
    assert page.evaluate("window.changes") == []
    assert page.evaluate(f"{VIEWER}.tool") != "length"
    shoot(page, "standalone-desk", full_page=False)
    assert page.errors == []


def test_the_consult_page_fits_a_phone_and_its_tools_are_reachable_by_touch(browser_context, accepted_consult):
    consult, _, specialist = accepted_consult
    page = open_page(browser_context, specialist, f"/consults/{consult.pk}/", screen=PHONE)
    assert_fits(page)
    viewer = page.locator("[data-viewer]")
    box = viewer.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["viewport"]["width"]
    shoot(page, "consult-phone", full_page=False)

    # The drawing tools are behind "Tools"; a tap opens the menu, a tap picks a tool and closes it.
    length = viewer.get_by_role("button", name="Length", exact=True)
    expect(length).to_be_hidden()
    viewer.get_by_role("button", name="Tools").tap()
    expect(length).to_be_visible()
    assert_fits(page)
    shoot(page, "consult-phone-tools", full_page=False)
    length.tap()
    expect(length).to_be_hidden()
    expect(viewer.locator('[data-action="menu"]')).to_have_text("Tools: Length")
    assert page.evaluate(f"{VIEWER}.tool") == "length"

    # Key image and the list, by touch too.
    viewer.get_by_role("button", name="Tools: Length").tap()
    viewer.get_by_role("button", name="★ Key", exact=True).tap()
    saved(page)
    assert Annotation.objects.filter(consult=consult, tool="key_image").count() == 1
    viewer.get_by_role("button", name="Tools: Length").tap()
    viewer.locator('.viewer-toolbar [data-action="list"]').tap()
    expect(viewer.locator("[data-list-items] li")).to_have_count(1)
    assert_fits(page)
    shoot(page, "consult-phone-list", full_page=False)
    shoot(page, "consult-phone-full")
    assert page.errors == []


def test_a_study_of_one_rt_plan_shows_a_sentence_not_a_broken_viewer(browser_context, live_user, tmp_path):
    physician = live_user("physician", email="v15-plan@example.com")
    uid = "1.2.826.0.1.3680043.10.543.1516"
    [path] = dicom.write([dicom.rt_plan(uid)], tmp_path / "plan")
    result = ingest_file(path, filename=path.name, user=physician)
    assert result.status == "stored", result.reason
    for screen, name in ((DESK, "rtplan-desk"), (PHONE, "rtplan-phone")):
        page = open_page(browser_context, physician, f"/studies/{uid}/view/", screen=screen, wait_ready=False)
        expect(page.locator("[data-no-images]")).to_have_text(
            "This study has no images to show: it holds 1 RT plan, which the viewer does not display."
        )
        expect(page.locator("[data-canvas]")).to_have_count(0)
        page.wait_for_load_state("networkidle")
        assert_fits(page)
        shoot(page, name, full_page=False)
        assert page.errors == []

"""A physician, only clicking from the home page, uploads two files of one study and a damaged one,
sees them as one study (new, 2 images stored) with the refused file and its reason under it, and
goes on to the consult request form for that study; on a desk and on a phone, with no horizontal
scrolling and no console errors. Also: the drop zone opens the file picker from the keyboard."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from pydicom.uid import generate_uid

from tests.e2e.conftest import login
from tests.e2e.journeys import DESK, PHONE, assert_fits, in_own_thread, shoot, watch_console
from tests.studies import dicom_factory as f

pytestmark = pytest.mark.e2e


def one_study_and_a_damaged_file(folder: Path) -> tuple[str, list[str]]:
    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid()
    common = {"StudyInstanceUID": uid, "StudyDescription": "CT Chest", "PatientID": f"J-{uid[-6:]}"}
    series = generate_uid()
    first, second, damaged = folder / "ct-1.dcm", folder / "ct-2.dcm", folder / "ct-3-damaged.dcm"
    f.make_ct(first, SeriesInstanceUID=series, InstanceNumber=1, **common)
    f.make_ct(second, SeriesInstanceUID=series, InstanceNumber=2, **common)
    # Its header names the study, its pixel data is short: refused, and shown under the study.
    f.make_dimensions_mismatch(damaged, SeriesInstanceUID=series, InstanceNumber=3, **common)
    return uid, [str(first), str(second), str(damaged)]


@pytest.mark.parametrize("size", ["desk", "phone"])
def test_physician_uploads_a_study_sees_it_grouped_and_asks_for_a_second_opinion(
    size, browser_context, live_user, tmp_path
):
    physician = live_user("physician", email=f"journey-{size}@example.com", name="Dr Journey")
    study_uid, files = one_study_and_a_damaged_file(tmp_path / "study")
    page = browser_context(**(DESK if size == "desk" else PHONE)).new_page()
    errors = watch_console(page)
    login(page, physician)
    expect(page.get_by_role("heading", name="Welcome, Dr Journey")).to_be_visible()
    assert_fits(page)
    shoot(page, f"home-{size}")

    # Home -> the upload page in upload-and-ask mode.
    page.get_by_role("link", name="Upload and ask for a second opinion").click()
    page.wait_for_url("**/studies/upload/?then=second-opinion")
    assert_fits(page)
    with page.expect_file_chooser() as chooser:
        page.get_by_text("Choose files", exact=True).click()
    chooser.value.set_files(files)

    # One study, new, two images stored; the damaged file and its reason under it.
    study = page.locator(f'.upload-study[data-study-uid="{study_uid}"]')
    expect(study).to_have_attribute("data-state", "new")
    expect(study.locator(".upload-study-title")).to_have_text("CT Chest")
    expect(study.locator(".badge")).to_have_text("CT")
    expect(study.locator(".upload-study-state")).to_contain_text("New study")
    expect(study.locator(".upload-study-state")).to_contain_text("2 images stored")
    expect(study.locator(".upload-study-state")).to_contain_text("1 file refused")
    refused = study.locator(".upload-refused li")
    expect(refused).to_have_count(1)
    expect(refused.locator(".upload-name")).to_have_text("ct-3-damaged.dcm")
    expect(refused.locator(".upload-reason")).not_to_be_empty()
    assert page.locator(".upload-study").count() == 1
    # Something was refused, so the next step is offered first rather than taken at once.
    expect(page.locator("#upload-next")).to_be_visible()
    expect(page.locator("#upload-next")).to_contain_text("CT Chest")
    expect(study.get_by_role("link", name="Open")).to_be_visible()
    assert_fits(page)
    shoot(page, f"upload-result-{size}")

    study.get_by_role("link", name="Ask for a second opinion").click()
    page.wait_for_url(f"**/studies/{study_uid}/consult/new/")
    expect(page.get_by_role("heading", name="Request a consult")).to_be_visible()
    expect(page.locator("main")).to_contain_text("CT Chest")
    assert_fits(page)

    # The study page, from the form's link to the study it is about.
    page.get_by_role("link", name="CT Chest").click()
    page.wait_for_url(re.compile(rf".*/studies/{re.escape(study_uid)}/$"))
    expect(page.locator("[data-panel=consultations]")).to_contain_text("No consults on this study yet.")
    expect(page.locator('.page-head [data-study-action="second-opinion"]')).to_be_visible()
    assert_fits(page)
    shoot(page, f"study-page-{size}")

    # Once asked, the consult is listed on the study page: state, who has it, when it is due.
    consult = in_own_thread(ask, physician, study_uid)
    page.reload()
    row = page.locator(f'[data-panel=consultations] [data-consult="{consult}"]')
    expect(row).to_contain_text("Waiting for a specialist")
    expect(row).to_contain_text("Not taken yet")
    expect(row.locator("time")).to_be_visible()
    assert_fits(page)
    shoot(page, f"study-page-with-consult-{size}")
    assert errors == []


def ask(physician, study_uid: str) -> int:
    from consultations import actions
    from studies.models import Study

    consult = actions.create_consult(
        by=physician,
        study=Study.objects.get(study_instance_uid=study_uid),
        question="Is there a pulmonary embolism? A long question to see the line wrap on a phone.",
        specialty="chest",
        jurisdiction="DE",
    )
    return consult.pk


def test_a_clean_single_study_upload_goes_straight_to_the_consult_form(browser_context, live_user, tmp_path):
    physician = live_user("physician", email="straight@example.com", name="Dr Straight")
    study_uid, files = one_study_and_a_damaged_file(tmp_path / "study")
    page = browser_context(**DESK).new_page()
    errors = watch_console(page)
    login(page, physician)
    page.get_by_role("link", name="Upload and ask for a second opinion").click()
    with page.expect_file_chooser() as chooser:
        page.get_by_text("Choose files", exact=True).click()
    chooser.value.set_files(files[:2])
    page.wait_for_url(f"**/studies/{study_uid}/consult/new/")
    expect(page.get_by_role("heading", name="Request a consult")).to_be_visible()
    assert errors == []


@pytest.mark.parametrize("key", ["Enter", " "])
def test_the_drop_zone_opens_the_file_picker_from_the_keyboard(key, browser_context, live_user):
    physician = live_user("physician", email=f"keys-{len(key)}@example.com")
    page = browser_context(**PHONE).new_page()
    login(page, physician)
    page.get_by_role("link", name="Upload images").first.click()
    # Loaded, so upload.js listens for the key: a key pressed earlier would reach nothing.
    page.wait_for_url("**/studies/upload/", wait_until="load")
    drop = page.get_by_role("button", name="Choose files to upload, or drop them here")
    # The key must reach the file input as a click (what opens the picker); the picker itself is
    # the browser's, and headless Chromium does not always report it.
    page.evaluate(
        """() => document.getElementById("upload-files").addEventListener("click", (event) => {
            event.preventDefault();
            window.pickerAsked = (window.pickerAsked || 0) + 1;
        })"""
    )
    drop.focus()
    expect(drop).to_be_focused()
    page.keyboard.press(key)
    page.wait_for_function("window.pickerAsked === 1")
    assert page.locator("#upload-files").get_attribute("multiple") is not None

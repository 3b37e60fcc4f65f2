"""The upload page in headless Chromium against the live server: files, a zip, bad files, and the
whole reference corpus, each row ending with its result without a page reload."""

from __future__ import annotations

import random

import pytest
from django.test import Client

from bench import corpus
from studies.models import Instance, Study
from tests.browser import (  # noqa: F401  (fixtures)
    allow_orm_beside_playwright_fixture,
    browser_fixture,
    playwright_driver_fixture,
)
from tests.studies import dicom_factory as f

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("allow_orm_beside_playwright"),
]


@pytest.fixture
def upload_page(browser, live_server, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    contexts = []

    def open_as(user):
        client = Client()
        client.force_login(user)
        context = browser.new_context()
        context.set_default_timeout(30_000)
        contexts.append(context)
        context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.goto(f"{live_server.url}/studies/upload/")
        return page

    yield open_as
    for context in contexts:
        context.close()


def wait_until_done(page, expected_rows: int, timeout: int = 30_000) -> None:
    page.wait_for_function(
        """(n) => {
            const rows = document.querySelectorAll('#upload-list > li');
            return rows.length === n && document.querySelector('[data-count=pending]').textContent === '0';
        }""",
        arg=expected_rows,
        timeout=timeout,
    )


def row_results(page) -> dict[str, str]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#upload-list > li')].map(
            (li) => [li.querySelector('.upload-name').textContent, li.querySelector('.upload-result').textContent]))"""
    )


def test_files_and_a_zip_show_progress_then_their_results_without_reload(upload_page, physician, tmp_path):
    good, bad, empty, archive = (
        tmp_path / "good.dcm",
        tmp_path / "notes.txt",
        tmp_path / "empty.dcm",
        tmp_path / "s.zip",
    )
    f.make_ct(good)
    bad.write_text("not an image " * 20)
    empty.write_bytes(b"")
    archive.write_bytes(f.make_zip({"a.dcm": f.make_mr(), "../x.dcm": f.make_mr()}))
    page = upload_page(physician)
    page.evaluate("window.marker = 'same page'")

    page.set_input_files("#upload-files", [str(good), str(bad), str(empty)])
    wait_until_done(page, 3)
    page.set_input_files("#upload-files", [str(good), str(archive)])
    wait_until_done(page, 5)

    rows = page.locator("#upload-list > li")
    results = [rows.nth(i).locator(".upload-result").first.text_content() for i in range(5)]
    assert results[0] == "stored"
    assert results[1].startswith("refused: Not a DICOM file")
    assert results[2] == "refused: The file is empty (0 bytes)."
    assert results[3] == "already stored"
    assert results[4].startswith("refused: The archive entry '../x.dcm'")
    assert page.locator("[data-count=stored]").text_content() == "1"
    assert page.locator("[data-count=already_stored]").text_content() == "1"
    assert page.locator("[data-count=refused]").text_content() == "3"
    assert all(rows.nth(i).locator("progress").first.get_attribute("value") == "100" for i in range(5))
    assert page.evaluate("window.marker") == "same page"
    assert page.errors == []
    assert Instance.objects.count() == 1


def test_zip_rows_list_each_entry(upload_page, physician, tmp_path):
    archive = tmp_path / "study.zip"
    archive.write_bytes(f.make_zip({"s/1.dcm": f.make_ct(), "s/2.dcm": f.make_ct(), "s/readme.txt": b"hello"}))
    page = upload_page(physician)

    page.set_input_files("#upload-files", [str(archive)])
    wait_until_done(page, 1)

    summary = page.locator("#upload-list > li > .upload-result").text_content()
    assert summary == "3 file(s): 2 stored, 0 already stored, 1 refused"
    entries = page.locator("#upload-list > li ul li")
    assert entries.count() == 3
    assert page.locator("[data-count=stored]").text_content() == "2"


def test_patient_sees_the_refusal_and_no_upload_form(upload_page, patient_user):
    page = upload_page(patient_user)

    assert "Patients cannot upload" in page.locator("main").text_content()
    assert page.locator("#upload-files").count() == 0


@pytest.mark.timeout(600)
def test_reference_corpus_goes_in_through_the_page(upload_page, physician, tmp_path):
    rng = random.Random(5)
    folder = tmp_path / "corpus"
    folder.mkdir()
    paths = []
    for index, (path, data, _uid) in enumerate(corpus.with_unique_uids(corpus.source_files(), rng)):
        target = folder / f"{index:03d}-{path.name}"
        target.write_bytes(data)
        paths.append(str(target))
    page = upload_page(physician)

    page.set_input_files("#upload-files", paths)
    wait_until_done(page, len(paths), timeout=540_000)

    stored = int(page.locator("[data-count=stored]").text_content())
    refused = {name: text for name, text in row_results(page).items() if text != "stored"}
    print(f"corpus through the upload page: {stored} stored of {len(paths)} files sent")
    assert stored >= 209, refused
    assert Instance.objects.count() == stored
    assert Study.objects.exists()
    assert page.errors == []

"""In a browser against the live server: a new share link goes to the clipboard with its Copy
button and shows its QR code; a link that includes the signed report shows it, and its PDF, to
someone without an account, while the page asks for nothing outside the link's own URLs and logs no
error; sharing with a named clinician lets them in and revoking shuts them out; the access page and
the share page fit a 390 px phone, and the share page's header keeps off the window's edge."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from studies import sharing
from studies.models import NamedShare
from tests.e2e.conftest import login
from tests.e2e.journeys import DESK, PHONE, assert_fits, in_own_thread, shoot, watch_console
from tests.e2e.test_portal_and_sharing import signed_consult, store_ct

pytestmark = pytest.mark.e2e

CLIPBOARD = {"permissions": ["clipboard-read", "clipboard-write"]}


def test_copy_button_puts_the_new_link_and_its_passcode_on_the_clipboard(browser_context, live_user, tmp_path):
    physician = live_user("physician", email="e2e.copy.physician@example.com", name="Dr Copier")
    study = store_ct(physician, tmp_path)
    page = browser_context(**DESK, **CLIPBOARD).new_page()
    problems = watch_console(page)
    login(page, physician)
    page.goto(f"/studies/{study.study_instance_uid}/access/")
    page.fill("input[name=passcode]", "copy-pass-77")
    page.get_by_label("Include the signed report").check()
    page.get_by_role("button", name="Make link").click()

    url = page.locator("[data-share-url]").input_value()
    assert "/s/" in url
    page.get_by_role("button", name="Copy link").click()
    expect(page.locator("[data-copy-status]").first).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == url
    page.get_by_role("button", name="Copy passcode").click()
    expect(page.locator("[data-copy-status]").nth(1)).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "copy-pass-77"
    qr = page.locator("[data-share-qr]")
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.naturalWidth") > 0
    expect(page.locator("[data-share-links]")).to_contain_text("with the signed report")
    shoot(page, "sharing-new-link-desk")
    assert problems == []


def test_share_with_the_report_for_someone_without_an_account_uses_only_the_links_urls(
    browser_context, live_user, tmp_path
):
    physician = live_user("physician", email="e2e.report.physician@example.com", name="Dr Sharer")
    specialist = live_user("specialist", email="e2e.report.specialist@example.com", name="Dr Reader")
    study = store_ct(physician, tmp_path)
    token = sharing.create_share(study=study, by=physician, include_report=True).token
    in_own_thread(signed_consult, physician, specialist, study)  # signed after the link was made
    prefix = f"/s/{token}/"

    for name, screen in (("desk", DESK), ("phone", PHONE)):
        page = browser_context(**screen).new_page()
        problems = watch_console(page)
        requested: list[str] = []
        page.on("request", lambda request, seen=requested: seen.append(request.url))
        with page.expect_response(lambda r: f"{prefix}dicomweb/" in r.url and "/frames/" in r.url) as frame:
            page.goto(prefix)
        assert frame.value.status == 200
        report = page.locator("[data-shared-report]")
        expect(report.locator(".portal-summary")).to_contain_text("Nothing urgent was found on your scan.")
        expect(report).to_contain_text("No acute findings.")
        page.wait_for_load_state("networkidle")
        outside = [url for url in requested if not urlparse(url).path.startswith((prefix, "/static/"))]
        assert outside == [], outside
        assert problems == [], problems
        assert_fits(page)
        title = page.locator(".share-title").bounding_box()
        assert title["x"] >= 8, f"the share page's header touches the window's edge ({title['x']} px) on {name}"
        shoot(page, f"sharing-report-{name}")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download the report (PDF)").click()
    assert download.value.suggested_filename.endswith(".pdf")


def test_named_clinician_share_lets_them_in_and_revoking_shuts_them_out(browser_context, live_user, tmp_path):
    physician = live_user("physician", email="e2e.named.physician@example.com", name="Dr Sharer")
    guest = live_user("specialist", email="e2e.named.guest@example.com", name="Dr Guest")
    study = store_ct(physician, tmp_path)
    study_url = f"/studies/{study.study_instance_uid}/"

    guest_page = browser_context(**DESK).new_page()
    login(guest_page, guest)
    assert guest_page.goto(study_url).status == 404

    page = browser_context(**DESK).new_page()
    problems = watch_console(page)
    login(page, physician)
    page.goto(f"{study_url}access/")
    page.get_by_label("Email address of a doctor or specialist").fill("yourself@nowhere")
    page.get_by_role("button", name="Share", exact=True).click()
    expect(page.locator("[data-share-with-form] .errorlist")).to_contain_text("is not an email address")
    assert problems == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    problems.clear()  # the refusal is a 400 page, as a form error should be
    page.get_by_label("Email address of a doctor or specialist").fill(guest.email)
    page.get_by_role("button", name="Share", exact=True).click()
    entry = page.locator("[data-named-shares] li").first
    expect(entry).to_contain_text("Dr Guest (e2e.named.guest@example.com)")
    expect(entry).to_contain_text("can see the images")
    assert problems == []

    assert guest_page.goto(study_url).status == 200
    entry.get_by_role("button", name="Revoke").click()
    expect(page.locator("[data-named-shares] li").first).to_contain_text("revoked")
    assert guest_page.goto(study_url).status == 404
    assert NamedShare.objects.get().grant.revoked_by == physician


def test_access_page_fits_a_phone_with_a_new_link_and_named_shares(browser_context, live_user, tmp_path):
    patient = live_user("patient", email="e2e.fit.patient@example.com", name="Polly Patient")
    physician = live_user("physician", email="e2e.fit.physician@example.com", name="Dr Owner")
    study = store_ct(physician, tmp_path, patient_account=patient)
    page = browser_context(**PHONE).new_page()
    problems = watch_console(page)
    login(page, patient)
    page.goto(f"/studies/{study.study_instance_uid}/access/")
    page.get_by_label("Email address of a doctor or specialist").fill(
        "a.very.long.address.for.a.doctor@example-hospital.org"
    )
    page.get_by_role("button", name="Share", exact=True).click()
    expect(page.locator("[data-named-shares]")).to_contain_text("invited")
    page.fill("input[name=passcode]", "phone-pass-1")
    page.get_by_role("button", name="Make link").click()
    url = page.locator("[data-share-url]")
    expect(url).to_be_visible()
    box = url.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert url.evaluate("el => el.scrollWidth <= el.clientWidth"), "the link is cut off in its box"
    assert_fits(page)
    shoot(page, "sharing-access-phone")
    assert problems == []

"""Browser journey through the specialists' console, by clicking: an administrator invites a
specialist from the home page's menu; the specialist signs up through the emailed link and enters a
licence with its scan; the administrator verifies it and approves them. The console, the
specialist's page and the licences page fit a 390 px phone without sideways scrolling."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect

from accounts.models import Licence, User
from tests.e2e.conftest import login
from tests.e2e.journeys import DESK, PHONE, assert_fits, shoot, watch_console

pytestmark = pytest.mark.e2e

INVITED = "new.reader@example.com"
NEW_PASSWORD = "a-long-unusual-passphrase-42"
SCAN = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def test_administrator_invites_specialist_who_signs_up_enters_a_licence_and_is_verified_and_approved(
    browser_context, live_user, server_outbox
):
    admin = live_user("admin", email="console.admin@example.com", name="Ada Console", is_staff=True)
    desk = browser_context(**DESK).new_page()
    problems = watch_console(desk)

    # The administrator goes from the home page to the console and sends the invitation.
    login(desk, admin)
    desk.goto("/")
    desk.get_by_role("navigation", name="Main").get_by_role("link", name="Specialists").click()
    desk.wait_for_url("**/specialists/")
    desk.get_by_label("Specialist's email address").fill(INVITED)
    desk.get_by_label("Chest").check()
    desk.get_by_label("Cardiac").check()
    desk.get_by_role("button", name="Send invitation").click()
    expect(desk.locator(".message.success")).to_contain_text(f"Invitation sent to {INVITED}")
    expect(desk.locator("[data-invitation-status=pending]")).to_contain_text(INVITED)

    # The specialist follows the emailed link to sign-up: the address is filled in, no role asked.
    message = server_outbox.wait_for(INVITED, subject="invited")
    link = next(link for link in server_outbox.links(message) if "/specialists/join/" in link)
    specialist_page = browser_context(**DESK).new_page()
    watch_console(specialist_page)
    specialist_page.goto(link)
    specialist_page.wait_for_url("**/accounts/signup/")
    expect(specialist_page.locator("input[name=email]")).to_have_value(INVITED)
    expect(specialist_page.locator("select[name=role]")).to_have_count(0)
    specialist_page.fill("input[name=name]", "Dr New Reader")
    specialist_page.fill("input[name=password1]", NEW_PASSWORD)
    specialist_page.fill("input[name=password2]", NEW_PASSWORD)
    specialist_page.get_by_role("button", name="Create account").click()
    expect(specialist_page.locator(".whoami")).to_contain_text("Specialist")

    # They enter their licence with a scan, from the menu.
    specialist_page.get_by_role("navigation", name="Main").get_by_role("link", name="Licences").click()
    specialist_page.wait_for_url("**/specialists/licences/")
    specialist_page.get_by_label("Jurisdiction").fill("Germany")
    specialist_page.get_by_label("Licence number").fill("ÄK-2231")
    expiry = (dt.date.today() + dt.timedelta(days=400)).isoformat()
    specialist_page.get_by_label("Expiry date").fill(expiry)
    specialist_page.get_by_label("Scan of the licence").set_input_files(
        {"name": "approbation.pdf", "mimeType": "application/pdf", "buffer": SCAN}
    )
    specialist_page.get_by_role("button", name="Save licence").click()
    expect(specialist_page.locator(".message.success")).to_contain_text("Licence ÄK-2231 saved")
    expect(specialist_page.locator("[data-licence='ÄK-2231']")).to_contain_text("Awaiting verification")
    shoot(specialist_page, "console-licences-desk")

    # The administrator finds them among those awaiting verification, verifies and approves.
    desk.goto("/specialists/")
    desk.locator("[data-filters]").get_by_role("link", name="Licence unverified").click()
    desk.get_by_role("link", name="Dr New Reader").click()
    with desk.expect_download() as download:
        desk.get_by_role("link", name="Document (PDF)").click()
    assert download.value.suggested_filename == "approbation.pdf"
    desk.locator("[data-licence='ÄK-2231']").get_by_role("button", name="Verify").click()
    expect(desk.locator("[data-licence='ÄK-2231']")).to_have_attribute("data-status", "verified")
    desk.get_by_role("button", name="Approve").click()
    expect(desk.locator(".message.success")).to_contain_text("Dr New Reader is approved.")
    expect(desk.locator("[data-history]")).to_contain_text("Licence verified by Ada Console")
    shoot(desk, "console-specialist-desk")

    specialist = User.objects.get(email=INVITED)
    assert specialist.role == "specialist" and specialist.specialist_profile.specialties == ["chest", "cardiac"]
    assert specialist.specialist_profile.approved_by == admin
    licence = Licence.objects.get(specialist=specialist)
    assert (licence.jurisdiction, licence.status, licence.reviewed_by) == ("DE", "verified", admin)
    assert problems == []

    # On a phone, none of the new pages scrolls sideways.
    phone = browser_context(**PHONE).new_page()
    phone_problems = watch_console(phone)
    login(phone, admin)
    for url, name in (("/specialists/", "console-list"), (f"/specialists/{specialist.pk}/", "console-specialist")):
        phone.goto(url)
        assert_fits(phone)
        shoot(phone, f"{name}-phone")
    own_phone = browser_context(**PHONE).new_page()
    login(own_phone, INVITED, NEW_PASSWORD)
    own_phone.goto("/specialists/licences/")
    own_phone.locator("details summary").first.click()  # the renew form, opened
    assert_fits(own_phone)
    shoot(own_phone, "console-licences-phone")
    assert phone_problems == []

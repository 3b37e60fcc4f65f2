"""The webhooks pages in a browser: a practice admin reaches them from the menu, adds a webhook and
reads its page and delivery log, on a desk (1366 px) and a phone (390 px), with no sideways
scrolling and no console error."""

from __future__ import annotations

import pytest

from consultations.models import WebhookDelivery, WebhookSubscription
from consultations.models.webhooks import WebhookAttempt
from tests.e2e.conftest import login
from tests.e2e.journeys import DESK, PHONE, assert_fits, watch_console

pytestmark = pytest.mark.e2e

LONG_URL = "https://8.8.8.8/hooks/" + "teleconsult-events-for-the-practice-" * 4 + "?token=" + "a" * 80


def test_practice_admin_adds_a_webhook_and_its_pages_fit_desk_and_phone(browser_context, live_user):
    physician = live_user(email="hooks-admin@example.com")
    desk = browser_context(**DESK).new_page()
    problems = watch_console(desk)
    login(desk, physician)
    desk.locator("header nav a", has_text="Webhooks").first.click()
    desk.wait_for_url("**/webhooks/")
    desk.fill("input[name=url]", LONG_URL)
    desk.check("input[name=events][value='report.signed']")
    desk.check("input[name=events][value='study.received']")
    desk.get_by_role("button", name="Add webhook").click()
    desk.wait_for_url("**/webhooks/*/")
    assert desk.locator("[data-secret] code").inner_text().startswith("whsec_")

    sub = WebhookSubscription.objects.get()
    delivery = WebhookDelivery.objects.create(subscription=sub, event="report.signed", body="{}", status="failed")
    for number in (1, 2):
        WebhookAttempt.objects.create(
            delivery=delivery, number=number, error="connection refused or unreachable " + "x" * 120, duration_ms=12
        )
    desk.reload()
    assert desk.locator("[data-delivery] [data-attempt]").count() == 2
    assert_fits(desk)
    desk.goto("/webhooks/")
    assert_fits(desk)

    phone = browser_context(**PHONE).new_page()
    problems += watch_console(phone)
    login(phone, physician)
    for path in ("/webhooks/", f"/webhooks/{sub.pk}/"):
        phone.goto(path)
        assert_fits(phone)
    assert problems == []

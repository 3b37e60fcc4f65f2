"""The study page in a real browser against a real daphne: statuses update without a reload."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from playwright.sync_api import expect

from studies.models import Instance
from tests.browser import browser_fixture, playwright_driver_fixture
from tests.e2e.conftest import _e2e_database, browser_context, login, page
from tests.studies.test_pages import make_study, png_bytes

__all__ = ["_e2e_database", "browser_context", "browser_fixture", "page", "playwright_driver_fixture"]

pytestmark = pytest.mark.e2e


def test_study_page_shows_new_thumbnails_and_failures_without_reload(page, live_user):
    physician = live_user("physician", email="live.owner@example.com")
    study = make_study(physician, statuses=(Instance.Status.READY, Instance.Status.PENDING, Instance.Status.PENDING))
    ready, becomes_ready, becomes_failed = Instance.objects.filter(series__study=study).order_by("instance_number")
    login(page, physician)
    page.goto(reverse("studies:detail", args=[study.study_instance_uid]))
    expect(page.locator('[data-count="pending"]')).to_have_text("2")
    page.evaluate("window.__sameDocument = true")

    becomes_ready.mark_rendered(default_storage.save("thumbnails/live-ready.png", ContentFile(png_bytes(200))))
    becomes_failed.mark_failed(reason="Truncated pixel data")

    expect(page.locator('[data-count="pending"]')).to_have_text("0", timeout=15_000)
    expect(page.locator('[data-count="ready"]')).to_have_text("2")
    expect(page.locator('[data-count="failed"]')).to_have_text("1")
    expect(page.locator("[data-status-message]")).to_contain_text("1 could not be rendered")
    failed_item = page.locator(f'[data-instance="{becomes_failed.sop_instance_uid}"]')
    expect(failed_item).to_have_attribute("data-status", "failed")
    expect(failed_item.locator(".failure-reason")).to_have_text("Truncated pixel data")
    new_image = page.locator(f'[data-instance="{becomes_ready.sop_instance_uid}"] img')
    expect(new_image).to_have_attribute(
        "src", reverse("studies:thumbnail", args=[study.study_instance_uid, becomes_ready.sop_instance_uid])
    )
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=new_image.element_handle())
    # The page was updated in place, not reloaded.
    assert page.evaluate("window.__sameDocument") is True
    assert ready.sop_instance_uid in page.content()


def test_outsider_sees_no_study_page_or_thumbnail_in_the_browser(page, live_user):
    owner = live_user("physician", email="live.owner2@example.com")
    outsider = live_user("physician", email="live.outsider@example.com")
    study = make_study(owner)
    instance = Instance.objects.get(series__study=study)
    login(page, outsider)
    response = page.goto(reverse("studies:detail", args=[study.study_instance_uid]))
    assert response.status == 404
    response = page.goto(reverse("studies:thumbnail", args=[study.study_instance_uid, instance.sop_instance_uid]))
    assert response.status == 404

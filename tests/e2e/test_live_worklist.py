"""A specialist with the worklist open sees a new STAT consult arrive without reloading, accepts it
from the row and lands on the consult page at the viewer, on a desk and on a phone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from consultations.models import ConsultRequest, State
from tests.e2e.conftest import login
from tests.e2e.journeys import SCREENS, assert_fits, shoot, store_ct_slices, watch_console

pytestmark = pytest.mark.e2e


def watched(context):
    page = context.new_page()
    watch_console(page)
    return page


@pytest.mark.parametrize("screen", list(SCREENS))
def test_a_stat_consult_arrives_live_and_is_accepted_from_the_row(browser_context, live_user, tmp_path, screen):
    uid = f"1.2.826.0.1.3680043.10.543.15{len(screen)}"
    physician = live_user("physician", email=f"live-doc-{screen}@example.com", name="Dr Referrer")
    specialist = live_user("specialist", email=f"live-reader-{screen}@example.com", name="Dr Reader")
    store_ct_slices(physician, tmp_path / "in", uid, count=3)

    reader = watched(browser_context(**SCREENS[screen]))
    login(reader, specialist)
    reader.goto("/worklist/")
    expect(reader.locator("[data-live-state]")).to_have_text("Live")
    expect(reader.locator(".empty")).to_contain_text("Nothing here")
    reader.get_by_label("Sound for new STAT consults").check()  # the tone plays on a real page; here it must not break

    doctor = watched(browser_context(viewport=SCREENS[screen]["viewport"]))
    login(doctor, physician)
    doctor.goto(f"/studies/{uid}/consult/new/")
    doctor.fill("textarea[name=question]", "Acute subdural haematoma after a fall?")
    doctor.select_option("select[name=priority]", "stat")
    doctor.select_option("select[name=specialty]", "neuroradiology")
    doctor.fill("input[name=jurisdiction]", "US-CA")
    doctor.get_by_role("button", name="Request the consult").click()
    doctor.wait_for_url(re.compile(r"/consults/\d+/$"))
    consult = ConsultRequest.objects.get(requester=physician)

    # Without a reload: the row, with its Accept button, and a toast saying what arrived.
    row = reader.locator(f'tr[data-consult-id="{consult.pk}"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("Acute subdural haematoma")
    expect(row.locator(".badge").first).to_contain_text("left")
    toast = reader.locator("[data-toasts] .toast.stat")
    expect(toast).to_contain_text(f"New STAT consult #{consult.pk} offered to you.")
    expect(reader.locator('[data-nav-count="worklist"]')).to_have_text("1")
    expect(reader.locator("[data-toasts]")).to_have_attribute("role", "status")
    assert_fits(reader)
    shoot(reader, f"worklist-live-{screen}")

    reader.get_by_role("button", name=f"Accept consult #{consult.pk}").click()
    reader.wait_for_url(re.compile(rf"/consults/{consult.pk}/#viewer$"))
    flash = reader.locator(".messages .message")
    expect(flash).to_contain_text(f"Consult #{consult.pk} accepted: due in")
    expect(flash).to_be_in_viewport()
    viewer = reader.locator("#viewer [data-viewer]")
    expect(viewer).to_be_visible()
    reader.wait_for_selector("[data-viewer][data-state=ready]")
    assert reader.evaluate(
        "() => { const r = document.getElementById('viewer').getBoundingClientRect();"
        " const menu = document.querySelector('header.topbar').getBoundingClientRect();"
        " return r.top >= menu.bottom - 1 && r.top < menu.bottom + 40; }"
    ), "the consult page did not open at the viewer"
    shoot(reader, f"accepted-at-viewer-{screen}", full_page=False)
    consult.refresh_from_db()
    assert consult.state == State.ACCEPTED and consult.assignee_id == specialist.pk

    # The physician's "My consults" shows it as accepted.
    doctor.goto("/consults/")
    expect(doctor.locator(f'tr[data-consult-id="{consult.pk}"]')).to_contain_text("Dr Reader")
    assert_fits(doctor)
    shoot(doctor, f"my-consults-{screen}")

    assert reader.problems == [] and doctor.problems == []

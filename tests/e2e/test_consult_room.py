"""Two people in two browsers on the consult page: they chat, and one follows the other's view."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from consultations.models import ChatMessage
from tests.e2e.conftest import login
from tests.e2e.journeys import VIEWER, accepted_consult_on_new_study, drag, watch_console
from tests.viewer import dicom

pytestmark = pytest.mark.e2e

STUDY_UID = "1.2.826.0.1.3680043.10.543.7777"


@pytest.fixture
def accepted_consult(live_user, tmp_path):
    return accepted_consult_on_new_study(live_user, tmp_path, prefix="room", study_uid=STUDY_UID, slices=5)


def open_consult(browser_context, user, consult):
    page = browser_context().new_page()
    page.errors = watch_console(page)
    login(page, user)
    page.goto(f"/consults/{consult.pk}/")
    expect(page.locator("[data-room-state]")).to_have_text("Live")
    page.wait_for_selector("[data-viewer][data-state=ready]")
    return page


def view_state(page) -> dict:
    return page.evaluate(f"{VIEWER}.getViewState()")


def test_two_people_chat_and_one_follows_the_others_view(browser_context, accepted_consult):
    consult, physician, specialist = accepted_consult
    doctor = open_consult(browser_context, physician, consult)
    reader = open_consult(browser_context, specialist, consult)

    expect(doctor.locator("[data-room-presence] li")).to_have_count(2)
    expect(doctor.locator("[data-room-presence]")).to_contain_text("Dr Reader")

    # Chat: typed text is escaped, links are clickable, the sender sees its acknowledgement.
    doctor.fill("[data-room-input]", "Is this <b>bleed</b> acute? See https://example.org/guideline.")
    doctor.press("[data-room-input]", "Enter")
    reader_message = reader.locator("[data-room-messages] li").last
    expect(reader_message).to_contain_text("Is this <b>bleed</b> acute?")
    expect(reader_message.locator("a")).to_have_attribute("href", "https://example.org/guideline")
    expect(reader_message.locator("b")).to_have_count(0)
    expect(doctor.locator("[data-room-messages] li.mine")).to_have_count(1)
    expect(doctor.locator("[data-room-pending]")).to_be_hidden()
    reader.fill("[data-room-input]", "Looks subacute to me.")
    reader.press("[data-room-input]", "Enter")
    expect(doctor.locator("[data-room-messages] li.theirs")).to_contain_text("Looks subacute to me.")
    assert list(ChatMessage.objects.filter(consult=consult).order_by("pk").values_list("author_id", flat=True)) == [
        physician.pk,
        specialist.pk,
    ]

    # Shared viewing: the reader leads, the doctor follows slice, window and zoom.
    reader.get_by_role("button", name="Lead").click()
    expect(doctor.locator("[data-room-leader]")).to_contain_text("Following Dr Reader")
    reader.evaluate(f"{VIEWER}.step(2); {VIEWER}.setWindow(60, 350); {VIEWER}.setZoom(2)")
    led = view_state(reader)
    doctor.wait_for_function(
        f"() => {{ const s = {VIEWER}.getViewState(); return s.instance_uid === {led['instance_uid']!r}"
        f" && s.window_width === 350 && s.zoom === 2; }}"
    )

    # The doctor detaches by moving on their own; the leader's next move no longer carries them.
    doctor.evaluate(f"{VIEWER}.step(-1)")
    expect(doctor.locator("[data-room-leader]")).to_contain_text("Detached")
    own = view_state(doctor)["instance_uid"]
    reader.evaluate(f"{VIEWER}.step(1)")
    reader.wait_for_timeout(1000)
    assert view_state(doctor)["instance_uid"] == own

    # Following again catches up with the leader.
    doctor.get_by_role("button", name="Follow").click()
    led = view_state(reader)
    doctor.wait_for_function(f"() => {VIEWER}.getViewState().instance_uid === {led['instance_uid']!r}")
    assert doctor.errors == [] and reader.errors == []


def test_an_outsider_sees_no_room_and_the_socket_refuses_them(browser_context, accepted_consult, live_user):
    consult, _, _ = accepted_consult
    outsider = live_user("physician", email="room-outsider@example.com")
    page = browser_context().new_page()
    login(page, outsider)
    response = page.goto(f"/consults/{consult.pk}/")
    assert response.status == 404
    closed = page.evaluate(
        f"""() => new Promise((resolve) => {{
            const ws = new WebSocket(`ws://${{location.host}}/ws/consults/{consult.pk}/`);
            ws.onclose = (event) => resolve(event.code);
        }})"""
    )
    assert closed == 4403


def test_a_measurement_is_saved_survives_a_reload_and_appears_live_for_the_follower(browser_context, accepted_consult):
    from consultations.models import Annotation

    consult, physician, specialist = accepted_consult
    reader = open_consult(browser_context, specialist, consult)
    doctor = open_consult(browser_context, physician, consult)
    reader.get_by_role("button", name="Lead").click()
    doctor.wait_for_function(f"() => {VIEWER}.getViewState().instance_uid !== null")

    reader.locator("[data-viewport]").focus()
    reader.keyboard.press("l")
    drag(reader, (dicom.BAR["x0"], dicom.BAR["y"]), (dicom.BAR["x1"], dicom.BAR["y"]))
    expect(reader.locator("[data-annotations-status]")).to_have_text("All changes saved")

    saved = Annotation.objects.get(consult=consult)
    assert saved.tool == "length" and saved.author_id == specialist.pk
    assert abs(saved.values["length"] - 100.0) < 1.0 and saved.values["unit"] == "mm"
    # The follower sees it appear without reloading.
    doctor.wait_for_function(f"() => {VIEWER}.getAnnotations().length === 1")
    assert doctor.evaluate(f"{VIEWER}.getAnnotations()[0].id") == str(saved.id)

    reader.reload()
    reader.wait_for_selector("[data-viewer][data-state=ready]")
    reader.wait_for_function(f"() => {VIEWER}.getAnnotations().length === 1")
    points = reader.evaluate(f"{VIEWER}.getAnnotations()[0].geometry.points")
    assert points == saved.geometry["points"]
    assert reader.errors == [] and doctor.errors == []


def test_signing_out_in_another_tab_says_signed_out_in_the_room(browser_context, accepted_consult):
    """The room's socket closes with 4401 when its session ends; the reconnect is refused, and the
    room says the person was signed out, not that they are no longer part of the consult."""
    consult, physician, _ = accepted_consult
    doctor = open_consult(browser_context, physician, consult)
    other_tab = doctor.context.new_page()
    other_tab.goto("/")
    other_tab.get_by_role("button", name="Sign out").click()
    other_tab.wait_for_url("**/accounts/login/**")

    expect(doctor.locator("[data-room-state]")).to_have_text("Signed out: sign in again to go on")
    expect(doctor.locator("[data-room-input]")).to_be_disabled()
    assert doctor.errors == []

"""The report editor in a browser, on a desk (1366x850) and on a phone (390x844): a chest CT starts
from the chest template, a measurement goes into the findings with one click, the page never
scrolls sideways (the signature hash wraps), and the signed PDF holds the key image.

Screenshots go to $TELECONSULT_SHOTS (default /tmp/shots15/) for a person to look at."""

from __future__ import annotations

import io
import re
import uuid

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from consultations.demo import ensure_report_templates
from consultations.models import Annotation
from studies.models import Instance
from tests.e2e.conftest import PASSWORD, login
from tests.e2e.journeys import DESK, PHONE, SHOTS, accepted_consult_on_new_study, assert_fits, shoot, watch_console

pytestmark = pytest.mark.e2e

STUDY_UID = "1.2.826.0.1.3680043.10.543.1515"


THUMBNAILS_LOADED = (
    "() => [...document.querySelectorAll('.evidence-list img')].every((img) => img.complete && img.naturalWidth > 0)"
)


@pytest.fixture
def chest_consult(live_user, tmp_path):
    ensure_report_templates()  # transactional tests flush what the migration seeded
    consult, _, specialist = accepted_consult_on_new_study(
        live_user,
        tmp_path,
        prefix="report",
        study_uid=STUDY_UID,
        slices=3,
        BodyPartExamined="CHEST",
        StudyDescription="CT chest",
    )
    images = list(Instance.objects.filter(series__study=consult.study).order_by("instance_number"))
    for instance, tool, values, label in [
        (images[1], "length", {"length": 13.24, "unit": "mm"}, ""),
        (images[1], "key_image", {}, "Nodule"),
    ]:
        Annotation.objects.create(
            id=uuid.uuid4(),
            consult=consult,
            sop_instance_uid=instance.sop_instance_uid,
            tool=tool,
            values=values,
            label=label,
            author=specialist,
        )
    return consult, specialist


def open_editor(browser_context, user, consult, screen):
    page = browser_context(**screen).new_page()
    page.errors = watch_console(page)
    page.on("response", lambda r: page.errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    login(page, user)
    page.goto(f"/consults/{consult.pk}/")
    page.get_by_role("link", name="Write the report").click()
    page.wait_for_url(re.compile(rf"/consults/{consult.pk}/report/$"))
    # Polled from here: the page's CSP forbids the eval that wait_for_function polls with.
    for _ in range(100):
        if page.evaluate(THUMBNAILS_LOADED):
            break
        page.wait_for_timeout(100)
    assert page.evaluate(THUMBNAILS_LOADED), "the key image and measurement thumbnails did not load"
    return page


def test_report_editor_on_a_desk_inserts_a_measurement(browser_context, chest_consult):
    consult, specialist = chest_consult
    page = open_editor(browser_context, specialist, consult, DESK)
    expect(page.locator("#template-choice option:checked")).to_have_text("CT chest (CT)")
    expect(page.locator("textarea[name=findings]")).to_contain_text("Pleura: no effusion")
    expect(page.locator(".evidence-list li")).to_have_count(2)

    page.get_by_role("button", name="Insert").first.click()
    expect(page.locator("textarea[name=findings]")).to_have_value(re.compile(r"Length 13\.2 mm \(series 1, image 2\)$"))
    expect(page.locator("[data-autosave-status]")).to_contain_text("Saved at", timeout=10_000)
    assert consult.reports.get().findings.endswith("Length 13.2 mm (series 1, image 2)")
    # Typed text makes a template switch ask first.
    expect(page.locator("[data-replace-choice]")).to_be_visible()
    shoot(page, "report-editor-1366x850")
    assert page.errors == []


def test_report_page_fits_a_phone_before_and_after_signing(browser_context, chest_consult, tmp_path):
    consult, specialist = chest_consult
    page = open_editor(browser_context, specialist, consult, PHONE)
    assert_fits(page)
    page.get_by_role("button", name="Insert").nth(1).click()
    expect(page.locator("textarea[name=findings]")).to_have_value(re.compile(r"Key image: Nodule"))
    page.fill("textarea[name=impression]", "Indeterminate 13 mm nodule in the right upper lobe.")
    shoot(page, "report-editor-390x844")

    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign the report").click()
    page.wait_for_url(re.compile(rf"/consults/{consult.pk}/$"))
    page.goto(f"/consults/{consult.pk}/report/")
    hash_text = page.locator("code.hash").first
    expect(hash_text).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    assert_fits(page)
    shoot(page, "report-signed-390x844")

    response = page.request.get(f"/consults/{consult.pk}/report.pdf")
    assert response.ok
    (SHOTS / "report.pdf").write_bytes(response.body())
    pdf = PdfReader(io.BytesIO(response.body()))
    text = " ".join(" ".join(p.extract_text().split()) for p in pdf.pages)
    assert "Dr Reader, Neuroradiology, General radiology; licensed in US, DE" in text
    assert sum(len(p.images) for p in pdf.pages) == 1
    assert page.errors == []


def test_signing_after_the_study_was_corrected_asks_to_confirm_whose_images(browser_context, chest_consult):
    """The patient's record changed after the consult was made: the signing form restates whose
    images, lists what changed, and signs only once the signer ticks the confirmation."""
    from consultations.models import Report

    consult, specialist = chest_consult
    patient = consult.study.patient
    patient.name = "Corrected^Name"
    patient.save()
    page = open_editor(browser_context, specialist, consult, DESK)
    page.fill("textarea[name=impression]", "No acute finding.")
    changes = page.locator("[data-identity-changes]")
    expect(changes).to_be_visible()
    expect(changes).to_contain_text("Corrected Name")
    expect(page.locator("[data-sign-form] [data-identity]")).to_contain_text("Corrected Name")
    shoot(page, "report-sign-identity-changed-1366x850")

    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign the report").click()
    expect(page.get_by_text("Check whose images these are before signing")).to_be_visible()
    assert not Report.objects.filter(consult=consult, signed_at__isnull=False).exists()

    page.fill("input[name=password]", PASSWORD)
    page.get_by_label("I have checked that this report belongs to this patient and study").check()
    page.get_by_role("button", name="Sign the report").click()
    page.wait_for_url(re.compile(rf"/consults/{consult.pk}/$"))
    assert Report.objects.filter(consult=consult, signed_at__isnull=False).exists()
    assert [e for e in page.errors if "409" not in e] == []

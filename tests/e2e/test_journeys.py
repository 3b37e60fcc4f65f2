"""The core journey across roles, only by clicking, on a desk (1366x850) and on a phone (390x844):
a physician uploads a chest CT through the upload page, opens it from the grouped result and asks
for a STAT second opinion; a specialist with the worklist open sees it arrive live, accepts it,
lands at the viewer, measures a length and marks a key image, writes the report from the CT chest
template with both inserted and signs it; the physician sees the consult reported, reads the
signed report and its PDF holds the key image. Every page visited fits the screen and logs no
console error. Screenshots of each step: $TELECONSULT_SHOTS/journey-<screen>-<step>.png."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from pydicom.uid import generate_uid

from consultations.demo import ensure_report_templates
from consultations.models import Annotation, ConsultRequest, State
from tests.conftest import PASSWORD
from tests.e2e.conftest import login
from tests.e2e.journeys import SCREENS, VIEWER, assert_fits, drag, shoot, watch_console
from tests.viewer import dicom

pytestmark = pytest.mark.e2e

QUESTION = "Pulmonary embolism? Sudden dyspnoea after a long flight, D-dimer raised."


def chest_ct(folder) -> tuple[str, list[str]]:
    uid = generate_uid()
    slices = dicom.ct_slices(uid, count=3)
    for ds in slices:
        ds.BodyPartExamined = "CHEST"
        ds.StudyDescription = "CT Chest"
        ds.PatientID = f"J15-{uid[-6:]}"
    return uid, [str(path) for path in dicom.write(slices, folder)]


class Steps:
    """Each page the journey reaches: it fits the screen, and a screenshot records it."""

    def __init__(self, screen: str):
        self.screen = screen
        self.count = 0

    def __call__(self, page, name: str, *, full_page: bool = True) -> None:
        self.count += 1
        shoot(page, f"journey-{self.screen}-{self.count:02d}-{name}", full_page=full_page)
        assert_fits(page)


def tool(page, name: str, touch: bool) -> None:
    """A viewer tool by clicking: on a phone the drawing tools are behind the "Tools" menu."""
    viewer = page.locator("[data-viewer]")
    if touch:
        viewer.locator('.viewer-toolbar [data-action="menu"]').click()
    viewer.get_by_role("button", name=name, exact=True).click()


@pytest.mark.parametrize("screen", list(SCREENS))
def test_physician_asks_specialist_reports_physician_reads_the_signed_report(
    screen, browser_context, live_user, tmp_path
):
    ensure_report_templates()  # transactional tests flush what the migration seeded
    physician = live_user("physician", email=f"j15-doc-{screen}@example.com", name="Dr Referrer")
    specialist = live_user(
        "specialist",
        email=f"j15-reader-{screen}@example.com",
        name="Dr Chest",
        profile__specialties=["chest", "general_radiology"],
    )
    study_uid, files = chest_ct(tmp_path / "ct")
    step = Steps(screen)
    touch = screen == "phone"

    # The specialist opens the worklist from the home page and leaves it open.
    reader = browser_context(**SCREENS[screen]).new_page()
    reader_errors = watch_console(reader)
    login(reader, specialist)
    step(reader, "specialist-home")
    reader.get_by_role("link", name="Open the worklist").click()
    expect(reader.locator("[data-live-state]")).to_have_text("Live")
    step(reader, "worklist-empty")

    # The physician uploads through the upload page and opens the study from the grouped result.
    doctor = browser_context(**SCREENS[screen]).new_page()
    doctor_errors = watch_console(doctor)
    login(doctor, physician)
    step(doctor, "physician-home")
    doctor.get_by_role("link", name="Upload images").click()
    doctor.wait_for_url("**/studies/upload/")
    with doctor.expect_file_chooser() as chooser:
        doctor.get_by_text("Choose files", exact=True).click()
    chooser.value.set_files(files)
    group = doctor.locator(f'.upload-study[data-study-uid="{study_uid}"]')
    expect(group).to_have_attribute("data-state", "new")
    expect(group.locator(".upload-study-state")).to_contain_text("3 images stored")
    expect(group.get_by_role("link", name="Open")).to_be_visible()
    step(doctor, "upload-result")
    group.get_by_role("link", name="Open").click()
    doctor.wait_for_url(re.compile(rf"/studies/{re.escape(study_uid)}/$"))
    expect(doctor.locator("[data-panel=consultations]")).to_contain_text("No consults on this study yet.")
    step(doctor, "study-page")

    # The study page's "Ask for a second opinion": a STAT chest consult.
    doctor.locator('.page-head [data-study-action="second-opinion"]').click()
    doctor.wait_for_url(f"**/studies/{study_uid}/consult/new/")
    doctor.fill("textarea[name=question]", QUESTION)
    doctor.select_option("select[name=priority]", "stat")
    doctor.select_option("select[name=specialty]", "chest")
    doctor.fill("input[name=jurisdiction]", "US-CA")
    step(doctor, "consult-form")
    doctor.get_by_role("button", name="Request the consult").click()
    doctor.wait_for_url(re.compile(r"/consults/\d+/$"))
    consult = ConsultRequest.objects.get(requester=physician)
    step(doctor, "consult-requested")

    # It arrives on the open worklist without a reload; Accept lands at the viewer.
    row = reader.locator(f'tr[data-consult-id="{consult.pk}"]')
    expect(row).to_contain_text("Pulmonary embolism?")
    expect(reader.locator("[data-toasts] .toast.stat")).to_contain_text(f"New STAT consult #{consult.pk}")
    step(reader, "worklist-arrived")
    reader.get_by_role("button", name=f"Accept consult #{consult.pk}").click()
    reader.wait_for_url(re.compile(rf"/consults/{consult.pk}/#viewer$"))
    reader.wait_for_selector("[data-viewer][data-state=ready]")
    expect(reader.locator(".messages .message")).to_contain_text(f"Consult #{consult.pk} accepted")
    step(reader, "accepted-at-viewer", full_page=False)

    # A length across the bar (100 mm) and the image marked as a key image, both saved.
    tool(reader, "Length", touch)
    drag(reader, (dicom.BAR["x0"], dicom.BAR["y"]), (dicom.BAR["x1"], dicom.BAR["y"]))
    expect(reader.locator("[data-annotations-status]")).to_have_text("All changes saved")
    tool(reader, "★ Key", touch)
    expect(reader.locator("[data-annotations-status]")).to_have_text("All changes saved")
    reader.wait_for_function(f"() => {VIEWER}.getAnnotations().length === 2")
    assert sorted(Annotation.objects.filter(consult=consult).values_list("tool", flat=True)) == [
        "key_image",
        "length",
    ]
    step(reader, "measured", full_page=False)

    # The report editor offers the CT chest template; the key image and the length go in; signed.
    reader.get_by_role("link", name="Write the report").click()
    reader.wait_for_url(re.compile(rf"/consults/{consult.pk}/report/$"))
    expect(reader.locator("#template-choice option:checked")).to_have_text("CT chest (CT)")
    evidence = reader.locator(".evidence-list li")
    expect(evidence).to_have_count(2)
    step(reader, "report-editor")
    findings = reader.locator("textarea[name=findings]")
    evidence.filter(has_text="Key image").get_by_role("button", name="Insert").click()
    expect(findings).to_have_value(re.compile(r"Key image"))
    evidence.filter(has_text="Length").get_by_role("button", name="Insert").click()
    expect(findings).to_have_value(re.compile(r"Length 100(\.0)? mm"))
    reader.fill("textarea[name=impression]", "No pulmonary embolism.")
    reader.fill("input[name=password]", PASSWORD)
    step(reader, "report-ready-to-sign")
    reader.get_by_role("button", name="Sign the report").click()
    reader.wait_for_url(re.compile(rf"/consults/{consult.pk}/$"))
    step(reader, "signed")
    consult.refresh_from_db()
    assert consult.state == State.REPORTED

    # The physician, from the home page: My consults shows it reported; the signed report and its PDF.
    doctor.get_by_role("link", name="teleconsult").click()
    doctor.get_by_role("link", name="My consults").last.click()
    doctor.wait_for_url("**/consults/")
    mine = doctor.locator(f'tr[data-consult-id="{consult.pk}"]')
    expect(mine).to_contain_text("Reported")
    expect(mine).to_contain_text("Dr Chest")
    step(doctor, "my-consults-reported")
    mine.get_by_role("link", name=re.compile(rf"#{consult.pk} ")).click()
    doctor.wait_for_url(re.compile(rf"/consults/{consult.pk}/$"))
    report = doctor.locator("article.report")
    expect(report.locator(".badge")).to_have_text("Signed")
    expect(report).to_contain_text("No pulmonary embolism.")
    expect(report).to_contain_text("Key image")
    step(doctor, "signed-report")
    pdf_link = doctor.get_by_role("link", name="Download the PDF")
    response = doctor.request.get(pdf_link.get_attribute("href"))
    assert response.ok and response.headers["content-type"] == "application/pdf"
    assert b"/Subtype /Image" in response.body(), "the PDF holds no image"

    assert reader_errors == [], reader_errors
    assert doctor_errors == [], doctor_errors

"""Every page each role reaches from the home page by clicking fits a phone (390x844) and logs no
console error: physician, practice admin, specialist, patient and site administrator, with a study,
consults in several states, a signed report, a share link and linked patient records seeded.

Breadth-first over the a[href] of each page: each same-origin link is opened by clicking it (with
Ctrl, in a tab of its own, so the page it is on stays put), once, up to CAP pages a role. Not
followed: signing out, downloads, DICOMweb and the API, mail links, and the Django admin beyond
its index page."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import deque
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError

from consultations import actions, reports
from consultations.demo import ensure_report_templates
from studies import invitations, sharing
from studies.ingest import ingest_file
from studies.models import Patient, Study
from tests.e2e.conftest import login
from tests.e2e.journeys import PHONE, in_own_thread, shoot, sideways_overflow, watch_console
from tests.factories import ConsultFactory
from tests.viewer import dicom

pytestmark = pytest.mark.e2e

CAP = 40
QUERY_VARIANTS = 2  # pages that differ only in their query (sorting, filters): this many a path
NOT_FOLLOWED = re.compile(
    r"logout|sign-?out|\.(pdf|zip|dcm)(\?|$)|/file|/download|deidentified|/dicomweb/|/api/|/attachments/\d+|format=csv|[?&]csv=",
    re.IGNORECASE,
)
LINKS = "() => [...document.querySelectorAll('a[href]')].map((a) => [a.getAttribute('href'), a.href])"
# Opens what hides a link from a click: the closed <details> around it (outermost first).
REVEAL = """(a) => {
  const summaries = [];
  for (let node = a.parentElement; node; node = node.parentElement) {
    if (node.tagName === 'DETAILS' && !node.open) summaries.unshift(node.querySelector(':scope > summary'));
  }
  summaries.forEach((summary, i) => summary && summary.setAttribute('data-reveal', String(i)));
  return [summaries.length, !!a.closest('header nav')];
}"""


def store_ct(uploader, folder, *, description: str, patient_account=None) -> Study:
    uid = f"2.25.{uuid.uuid4().int}"
    slices = dicom.ct_slices(uid, count=2, size=64)
    for ds in slices:
        ds.StudyDescription = description
        ds.BodyPartExamined = "CHEST"
        ds.PatientID = f"PH-{uid[-6:]}"
    for path in dicom.write(slices, folder / uid[-8:]):
        assert ingest_file(path, filename=path.name, user=uploader).status == "stored"
    study = Study.objects.get(study_instance_uid=uid)
    if patient_account is not None:
        Patient.objects.filter(pk=study.patient_id).update(account=patient_account)
    return study


def consults_in_several_states(physician, specialist, signed_study, other_study, patient) -> None:
    """Reported (signed, with a patient summary), info requested, offered (STAT) and a draft; a
    share link; a request to the patient to link a second record."""
    reported = ConsultFactory(
        requester=physician, study=signed_study, target_specialist=specialist, specialty="chest", jurisdiction="US"
    )
    actions.submit_consult(reported, by=physician)
    actions.accept_consult(reported, by=specialist)
    report = reports.save_draft(
        reported,
        by=specialist,
        findings="Lungs clear. Key image: " + "a" * 64,
        impression="No pulmonary embolism.",
        patient_summary="Nothing urgent was found on your scan.",
    )
    report.sign(by=specialist)
    asked = ConsultFactory(requester=physician, study=other_study, target_specialist=specialist)
    actions.submit_consult(asked, by=physician)
    actions.accept_consult(asked, by=specialist)
    actions.request_info(asked, by=specialist, question="Any prior imaging to compare with?")
    offered = ConsultFactory(requester=physician, study=other_study, priority="stat", specialty="chest")
    actions.submit_consult(offered, by=physician)
    ConsultFactory(requester=physician, study=signed_study, question="Still drafting this question")
    sharing.create_share(study=signed_study, by=physician, label="For the patient's GP")
    invitations.invite(other_study.patient, email=patient.email, by=physician)


@pytest.fixture
def people(live_user, tmp_path):
    ensure_report_templates()
    practice_admin = live_user("physician", email="phone-admin@example.com", name="Dr Practice Admin")
    practice = practice_admin.default_practice
    physician = live_user("physician", email="phone-doc@example.com", name="Dr Referrer", practice=practice)
    specialist = live_user(
        "specialist",
        email="phone-reader@example.com",
        name="Dr Reader",
        profile__specialties=["chest", "neuroradiology"],
    )
    patient = live_user("patient", email="phone-patient@example.com", name="Polly Patient")
    site_admin = live_user(
        "admin", email="phone-site-admin@example.com", name="Site Admin", is_staff=True, is_superuser=True
    )
    signed_study = store_ct(physician, tmp_path, description="CT Chest", patient_account=patient)
    other_study = store_ct(physician, tmp_path, description="CT Chest follow-up")
    in_own_thread(consults_in_several_states, physician, specialist, signed_study, other_study, patient)
    return {
        "physician": physician,
        "practice admin": practice_admin,
        "specialist": specialist,
        "patient": patient,
        "site administrator": site_admin,
    }


def followed(raw: str, absolute: str, origin: str) -> bool:
    if not raw or raw.startswith(("#", "mailto:", "tel:", "javascript:")):
        return False
    parts = urlsplit(absolute)
    if f"{parts.scheme}://{parts.netloc}" != origin or NOT_FOLLOWED.search(f"{parts.path}?{parts.query}"):
        return False
    return not (parts.path.startswith("/admin/") and parts.path != "/admin/")


class Crawl:
    """One role's walk: the pages reached, and what was wrong on which."""

    def __init__(self, context, origin: str):
        self.context = context
        self.origin = origin
        self.seen: set[str] = set()
        self.per_path: dict[str, int] = {}
        self.reached: list[str] = []
        self.problems: list[str] = []
        self.unclickable: list[str] = []

    def key(self, url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.path}?{parts.query}" if parts.query else parts.path

    def claim(self, url: str) -> bool:
        """Whether ``url`` is new (and now taken); pages that differ only in their query count
        against their path's variants."""
        key, path = self.key(url), urlsplit(url).path
        if key in self.seen or (key != path and self.per_path.get(path, 0) >= QUERY_VARIANTS):
            return False
        self.seen.add(key)
        if key != path:
            self.per_path[path] = self.per_path.get(path, 0) + 1
        return True

    def check(self, page) -> None:
        if page.locator("[data-viewer]").count():
            page.wait_for_selector("[data-viewer]:not([data-state=loading])", timeout=10_000)
        page.wait_for_load_state("load")
        self.reached.append(self.key(page.url))
        overflow = sideways_overflow(page)
        if overflow > 0:
            self.problems.append(f"{self.key(page.url)} scrolls sideways by {overflow} px")
        for error in page.problems:
            self.problems.append(f"{self.key(page.url)} console: {error}")

    def open_by_click(self, page, raw: str, absolute: str):
        links = page.locator(f"a[href={json.dumps(raw)}]")
        target = links.locator("visible=true")
        if not target.count():
            details, in_menu = links.first.evaluate(REVEAL)
            for i in range(details):
                page.locator(f'summary[data-reveal="{i}"]').click()
            toggle = page.locator(".nav-toggle-label")
            if in_menu and toggle.is_visible():
                toggle.click()
        if not target.count():
            self.unclickable.append(f"{self.key(page.url)} -> {raw}: hidden")
            child = self.context.new_page()
            child.goto(absolute)
            return child
        try:
            with self.context.expect_page(timeout=5_000) as opened:
                target.first.click(modifiers=["ControlOrMeta"], timeout=3_000)
        except PlaywrightError as exc:
            self.unclickable.append(f"{self.key(page.url)} -> {raw}: {str(exc).splitlines()[-1].strip()}")
            shoot(page, f"phone-unclickable-{len(self.unclickable)}")
            child = self.context.new_page()
            child.goto(absolute)
            return child
        return opened.value

    def walk(self, page) -> None:
        """From ``page`` (the home page), breadth-first: each page reached is checked in its own
        tab, then loaded again in ``page`` when its turn comes to have its links clicked."""
        self.claim(page.url)
        self.check(page)
        expand = deque([page.url])
        while expand and len(self.reached) < CAP:
            parent = expand.popleft()
            if page.url != parent:
                page.goto(parent)  # back to a page reached by clicking, to click its links
            for raw, absolute in page.evaluate(LINKS):
                if len(self.reached) >= CAP:
                    break
                if not followed(raw, absolute, self.origin) or not self.claim(absolute):
                    continue
                child = self.open_by_click(page, raw, absolute)
                try:
                    child.wait_for_load_state("domcontentloaded")
                    # A redirect: where it lands counts as visited, and is checked once.
                    if self.key(child.url) == self.key(absolute) or self.claim(child.url):
                        self.check(child)
                        expand.append(child.url)
                except PlaywrightError as exc:
                    self.problems.append(f"{self.key(absolute)} from {self.key(page.url)}: {str(exc).splitlines()[0]}")
                finally:
                    child.close()


def test_every_page_each_role_reaches_fits_a_phone(browser, live_server_url, people):
    offending: list[str] = []
    summary: list[str] = []
    for role, user in people.items():
        context = browser.new_context(base_url=live_server_url, **PHONE)
        context.set_default_timeout(20_000)
        context.on("page", watch_console)
        started = time.monotonic()
        try:
            home = context.new_page()
            login(home, user)
            assert urlsplit(home.url).path == "/", f"{role} signed in to {home.url}, not the home page"
            crawl = Crawl(context, live_server_url)
            crawl.walk(home)
        finally:
            context.close()
        summary.append(f"{role}: {len(crawl.reached)} pages in {time.monotonic() - started:.0f} s")
        offending += [f"{role}: {problem}" for problem in crawl.problems]
        offending += [f"{role}: a link no click reaches: {link}" for link in crawl.unclickable]
        assert len(crawl.reached) >= 3, f"{role} reached only {crawl.reached}"
    print("\n".join(summary))
    assert not offending, "\n".join(offending)

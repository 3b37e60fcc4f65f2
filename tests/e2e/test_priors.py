"""Priors in a browser: on the consult page a clinician searches the practice's DICOM node (a
pynetdicom archive on loopback, pulled from with C-GET), ticks the prior, retrieves it, watches the
retrieval finish and opens the study; the panel fits a phone, with no console error."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid

from consultations import actions
from studies.models import DicomNode, Study
from studies.nodes import add_node
from tests.dimse_peer import Archive
from tests.e2e.conftest import login
from tests.e2e.journeys import PHONE, assert_fits, in_own_thread, watch_console
from tests.factories import ConsultFactory, make_study
from tests.studies import dicom_factory as f

pytestmark = pytest.mark.e2e


@pytest.fixture
def archive():
    peer = Archive("WARDPACS").start()
    yield peer
    peer.stop()


def accepted_consult_with_node(live_user, name: str, ae_title: str, port: int):
    """A physician's consult accepted by a specialist, and a node of the physician's practice at
    ``ae_title``/``port`` that priors are pulled from by C-GET: (physician, specialist, study, consult)."""
    physician = live_user(email=f"{name}@example.com")
    practice = physician.memberships.get().practice
    specialist = live_user("specialist", email=f"{name}-reader@example.com")
    owner = live_user(email=f"{name}-pacs@example.com", practice=practice)
    study = make_study(uploader=physician)
    consult = ConsultFactory(requester=physician, study=study)
    in_own_thread(lambda: actions.submit_consult(consult, by=physician))
    in_own_thread(lambda: actions.accept_consult(consult, by=specialist))
    node = add_node(ae_title=ae_title, host="127.0.0.1", port=port, owner=owner)
    DicomNode.objects.filter(pk=node.pk).update(retrieve_with=DicomNode.Retrieve.GET)
    return physician, specialist, study, consult


def prior_datasets(patient_id: str, **attrs) -> tuple[str, list]:
    """Two images of one prior study of the patient: (its StudyInstanceUID, the datasets)."""
    prior_uid, series_uid = generate_uid(), generate_uid()
    datasets = [
        f.dataset(
            PatientID=patient_id,
            StudyInstanceUID=prior_uid,
            SeriesInstanceUID=series_uid,
            InstanceNumber=number,
            **attrs,
        )
        for number in (1, 2)
    ]
    return prior_uid, datasets


def test_clinician_finds_and_pulls_a_prior_from_the_consult_page(browser_context, live_user, archive):
    physician, _, study, consult = accepted_consult_with_node(live_user, "priors-e2e", archive.ae_title, archive.port)
    prior_uid, datasets = prior_datasets(
        study.patient.patient_id, StudyDate="20200115", StudyDescription="MR knee 2020", Modality="MR"
    )
    archive.datasets.extend(datasets)

    page = browser_context().new_page()
    problems = watch_console(page)
    login(page, physician)
    page.goto(f"/consults/{consult.pk}/")
    panel = page.locator("[data-priors]")
    assert panel.locator("input[name=patient_id]").input_value() == study.patient.patient_id
    panel.get_by_role("button", name="Search").click()
    panel.locator("[data-priors-results] tbody tr", has_text="MR knee 2020").wait_for()
    assert "1 study on WARDPACS" in panel.locator("[data-priors-message]").inner_text()
    panel.get_by_label("Retrieve MR knee 2020 2020-01-15").check()
    panel.get_by_role("button", name="Retrieve selected").click()
    done = panel.locator("[data-retrieval][data-status=done]", has_text="MR knee 2020")
    done.wait_for()
    assert done.locator("progress").get_attribute("value") == "100"
    done.get_by_role("link", name="Open").click()
    page.wait_for_url(f"**/studies/{prior_uid}/")
    prior = Study.objects.get(study_instance_uid=prior_uid)
    assert prior.practice == study.practice and prior.num_instances == 2

    phone = browser_context(**PHONE).new_page()
    problems += watch_console(phone)
    login(phone, physician)
    phone.goto(f"/consults/{consult.pk}/")
    phone.locator("[data-priors]").wait_for()
    assert_fits(phone)
    assert problems == []


@pytest.fixture
def orthanc(request, tmp_path):
    """Debian's Orthanc as the hospital PACS, the portal (its AE title) allowed to C-GET from it."""
    from django.conf import settings

    from tests.orthanc import OrthancPacs, require_orthanc

    require_orthanc()
    modalities = {"portal": (settings.TELECONSULT_AE_TITLE, "127.0.0.1", 11112)}
    pacs = OrthancPacs(tmp_path / "orthanc", f"priors-e2e-{request.node.name[:30]}", modalities=modalities)
    pacs.start()
    yield pacs
    pacs.stop()


def test_clinician_finds_and_pulls_a_prior_from_orthanc_in_the_browser(browser_context, live_user, orthanc):
    """The same journey against a real PACS: Orthanc holds the prior, the portal C-FINDs and C-GETs it."""
    physician, specialist, study, consult = accepted_consult_with_node(
        live_user, "priors-orthanc", orthanc.ae_title, orthanc.dicom_port
    )
    prior_uid, datasets = prior_datasets(
        study.patient.patient_id, StudyDate="20190310", StudyDescription="CT chest 2019", Modality="CT"
    )
    for dataset in datasets:
        orthanc.store(f.to_bytes(dataset))

    page = browser_context().new_page()
    problems = watch_console(page)
    login(page, physician)
    page.goto(f"/consults/{consult.pk}/")
    panel = page.locator("[data-priors]")
    panel.get_by_role("button", name="Search").click()
    panel.locator("[data-priors-results] tbody tr", has_text="CT chest 2019").wait_for()
    panel.get_by_label("Retrieve CT chest 2019 2019-03-10").check()
    panel.get_by_role("button", name="Retrieve selected").click()
    done = panel.locator("[data-retrieval][data-status=done]", has_text="CT chest 2019")
    done.wait_for(timeout=60_000)
    done.get_by_role("link", name="Open").click()
    page.wait_for_url(f"**/studies/{prior_uid}/")
    prior = Study.objects.get(study_instance_uid=prior_uid)
    assert prior.practice == study.practice and prior.num_instances == 2
    assert Study.objects.visible_to(specialist).filter(pk=prior.pk).exists()  # the care team sees it
    assert problems == []

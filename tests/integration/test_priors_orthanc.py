"""Priors and results back with a real Orthanc as the hospital PACS (tests/orthanc.py), the portal's
real pieces on PostgreSQL and Redis: a daphne serving the pages, a Celery worker doing the
retrievals and sends, and the DICOM receiver (``manage.py dicom_scp``) Orthanc moves studies to.

- A clinician on a consult searches Orthanc (C-FIND) from the consult's routes and pulls a prior
  (C-MOVE to the receiver): it lands in the consult's practice, in their name, visible to the
  specialist on the consult, and the progress they poll reaches 100%.
- A study Orthanc sent to the portal gets its signed report's PDF back in Orthanc on its own
  (found by its SOP Instance UID through Orthanc's REST API).
- With Orthanc down the send is retried and the consult page says it is failing, with the reason;
  once Orthanc is back a retry delivers it.
"""

from __future__ import annotations

import time

import pytest
import requests
from django.urls import reverse
from pydicom.uid import generate_uid

from consultations import actions, dicom_export
from consultations.models import Report
from studies.models import DicomNode, NodeStudy, ResultSend, Study
from studies.nodes import add_node
from tests.factories import ConsultFactory
from tests.integration.test_database_faults import sign_in
from tests.integration.test_dimse import DicomScpProcess
from tests.orthanc import OrthancPacs, require_orthanc
from tests.servers import free_port
from tests.studies import dicom_factory as f

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PORTAL_AE = "TELECONSULT"
WAIT = 120


@pytest.fixture
def pacs(request, tmp_path):
    """Orthanc with the portal's receiver among its modalities; the receiver's port comes with it."""
    require_orthanc()
    scp_port = free_port()
    orthanc = OrthancPacs(
        tmp_path / "orthanc",
        f"orthanc-{request.node.name[:30]}",
        modalities={"portal": (PORTAL_AE, "127.0.0.1", scp_port)},
    )
    orthanc.scp_port = scp_port
    request.addfinalizer(orthanc.stop)
    return orthanc.start()


@pytest.fixture
def portal(request, pacs, postgres, redis_url, service_environment, celery_worker_factory, daphne_factory):
    """daphne, a worker (results retried after a second or two) and the receiver, sharing Redis."""
    scp = DicomScpProcess(pacs.scp_port, service_environment.env(LOG_LEVEL="INFO"), f"priors-scp-{pacs.scp_port}")
    request.addfinalizer(scp.stop)
    scp.start()
    worker = celery_worker_factory(TELECONSULT_RESULTS_RETRY_SECONDS="1", LOG_LEVEL="INFO")
    server = daphne_factory()
    return server, worker, scp


@pytest.fixture
def team(live_user):
    physician = live_user("physician", email="priors-requester@example.com")
    practice = physician.memberships.get().practice
    pacs_owner = live_user("physician", email="pacs-owner@example.com", practice=practice)
    specialist = live_user("specialist", email="priors-reader@example.com")
    return physician, practice, pacs_owner, specialist


def ct_files(patient_id: str, study_uid: str, count: int = 3, **attrs) -> list[bytes]:
    series = generate_uid()
    return [
        f.make_ct(
            PatientID=patient_id,
            PatientName="Prior^Pat",
            StudyInstanceUID=study_uid,
            SeriesInstanceUID=series,
            InstanceNumber=number,
            **attrs,
        )
        for number in range(1, count + 1)
    ]


def page_session(server, user):
    session = sign_in(server.url, user.email)
    session.headers.update({"X-CSRFToken": session.cookies["csrftoken"], "Referer": server.url + "/"})
    return session


def wait_for(condition, message: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.3)


def sent_in(pacs, server, study_uid):
    """Orthanc sends ``study_uid`` (held by it) to the portal's receiver."""
    found = pacs.call("POST", "/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}})
    pacs.call("POST", "/modalities/portal/store", {"Resources": found, "Synchronous": True})


def sign(server, consult, specialist, password):
    token = requests.post(
        f"{server.url}/api/v1/auth/token/", json={"email": specialist.email, "password": password}, timeout=30
    ).json()["token"]
    headers = {"Authorization": f"Token {token}"}
    draft = {"findings": "Unchanged since the prior.", "impression": "Stable appearances."}
    saved = requests.put(f"{server.url}/api/v1/consults/{consult.pk}/report/", json=draft, headers=headers, timeout=30)
    assert saved.status_code == 200, saved.text
    signed = requests.post(
        f"{server.url}/api/v1/consults/{consult.pk}/report/sign/",
        json={"password": password},
        headers=headers,
        timeout=60,
    )
    assert signed.status_code == 200, signed.text
    return Report.objects.get(consult=consult, version=1)


def consult_on_pacs_study(pacs, server, team, node, *, patient_id: str):
    """A consult on a study Orthanc sent to the portal (so the study came from the node)."""
    physician, _practice, _owner, specialist = team
    study_uid = generate_uid()
    for data in ct_files(patient_id, study_uid, count=2):
        pacs.store(data)
    sent_in(pacs, server, study_uid)
    study = wait_for(lambda: Study.objects.filter(study_instance_uid=study_uid).first(), "the study arrived")
    assert NodeStudy.objects.filter(node=node, study_instance_uid=study_uid).exists()
    consult = ConsultFactory(requester=physician, study=study)
    actions.submit_consult(consult, by=physician)
    actions.accept_consult(consult, by=specialist)
    return consult


def test_prior_found_and_moved_in_from_orthanc_lands_in_the_consults_practice(pacs, portal, team):
    server, worker, scp = portal
    physician, practice, pacs_owner, specialist = team
    node = add_node(ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.dicom_port, owner=pacs_owner)
    consult = consult_on_pacs_study(pacs, server, team, node, patient_id="MRN-7")
    prior_uid = generate_uid()
    for data in ct_files("MRN-7", prior_uid, count=3, StudyDate="20180611", StudyDescription="CT abdomen 2018"):
        pacs.store(data)
    session = page_session(server, physician)

    search = session.post(
        server.url + reverse("studies:priors-search", args=["consult", consult.pk]),
        json={"node": node.pk, "patient_id": "MRN-7", "date_to": "2019-12-31"},
        timeout=60,
    )
    assert search.status_code == 200, search.text
    assert [s["study_instance_uid"] for s in search.json()["studies"]] == [prior_uid]
    nothing = session.post(
        server.url + reverse("studies:priors-search", args=["consult", consult.pk]),
        json={"node": node.pk, "patient_id": "NO-SUCH-MRN"},
        timeout=60,
    )
    assert nothing.status_code == 404 and nothing.json()["code"] == "nothing_found"

    started = session.post(
        server.url + reverse("studies:priors-retrieve", args=["consult", consult.pk]),
        json={"node": node.pk, "study_uids": [prior_uid]},
        timeout=60,
    )
    assert started.status_code == 202, started.text
    progress_url = server.url + reverse("studies:priors-retrievals", args=["consult", consult.pk])

    def finished():
        [row] = session.get(progress_url, timeout=30).json()["retrievals"]
        return row if not row["active"] else None

    row = wait_for(finished, f"the retrieval finished\n{worker.log_tail()}\n{scp.log_tail()}")
    assert (row["status"], row["percent"], row["completed"], row["failed"]) == ("done", 100, 3, 0), row
    prior = Study.objects.get(study_instance_uid=prior_uid)
    assert (prior.practice, prior.uploaded_by, prior.num_instances) == (practice, physician, 3)
    assert prior.uploaded_by != node.owner
    assert Study.objects.visible_to(specialist).filter(pk=prior.pk).exists()
    assert session.get(server.url + row["url"], timeout=30).status_code == 200


def test_signed_report_pdf_arrives_in_orthanc_and_a_send_while_it_is_down_is_retried(pacs, portal, team, password):
    server, worker, _scp = portal
    physician, _practice, pacs_owner, specialist = team
    node = add_node(ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.dicom_port, owner=pacs_owner)
    DicomNode.objects.filter(pk=node.pk).update(send_results=True)
    first = consult_on_pacs_study(pacs, server, team, node, patient_id="MRN-8")
    second = consult_on_pacs_study(pacs, server, team, node, patient_id="MRN-9")

    report = sign(server, first, specialist, password)
    pdf_uid = dicom_export.report_pdf_uids(report)[1]
    wait_for(lambda: pacs.has_instance(pdf_uid), f"the report PDF in Orthanc\n{worker.log_tail()}")
    # Orthanc has it once the C-STORE is answered; the row is marked a moment later.
    wait_for(lambda: ResultSend.objects.filter(sop_instance_uid=pdf_uid, status="sent").exists(), "marked sent")
    session = page_session(server, physician)
    page = session.get(server.url + reverse("consultations:detail", args=[first.pk]), timeout=30).text
    assert "Sent to PACS" in page

    pacs.stop()
    report = sign(server, second, specialist, password)
    pdf_uid = dicom_export.report_pdf_uids(report)[1]
    failing = wait_for(
        lambda: ResultSend.objects.filter(sop_instance_uid=pdf_uid, status="retrying").first(),
        f"the send shown as retrying\n{worker.log_tail()}",
    )
    assert "cannot be reached" in failing.error
    page = session.get(server.url + reverse("consultations:detail", args=[second.pk]), timeout=30).text
    assert "Failed, retrying" in page and "cannot be reached" in page

    pacs.start()
    wait_for(lambda: pacs.has_instance(pdf_uid), f"the retried PDF in Orthanc\n{worker.log_tail()}")
    sent = wait_for(
        lambda: ResultSend.objects.filter(sop_instance_uid=pdf_uid, status="sent").first(), "the retry marked sent"
    )
    assert sent.attempts >= 2


def test_a_dicomweb_node_is_searched_with_qido_and_pulled_with_wado(
    pacs, team, django_capture_on_commit_callbacks, settings
):
    """Orthanc's DICOMweb plugin as the node: QIDO-RS to search, WADO-RS instance by instance."""
    from bench.orthanc import PLUGIN_DIR
    from studies import priors
    from tests.conftest import require_service

    if not (PLUGIN_DIR / "libOrthancDicomWeb.so").exists():
        require_service("Orthanc's DICOMweb plugin", "apt-get install orthanc-dicomweb")
    settings.CELERY_TASK_ALWAYS_EAGER = True
    physician, practice, pacs_owner, _specialist = team
    node = add_node(ae_title="WEBPACS", host="127.0.0.1", port=pacs.dicom_port, owner=pacs_owner)
    DicomNode.objects.filter(pk=node.pk).update(kind=DicomNode.Kind.DICOMWEB, dicomweb_url=f"{pacs.url}/dicom-web/")
    node.refresh_from_db()
    prior_uid = generate_uid()
    for data in ct_files("MRN-WEB", prior_uid, count=2, StudyDate="20210203"):
        pacs.store(data)
    target = priors.Target(kind="patient", pk=0, label="test", practice=practice)

    [found] = priors.search(node, priors.clean_query({"patient_id": "MRN-WEB", "date_from": "2021-01-01"}))
    assert (found.study_instance_uid, found.instances) == (prior_uid, 2)
    with pytest.raises(priors.NothingFoundError):
        priors.search(node, priors.clean_query({"patient_id": "MRN-NONE"}))
    with django_capture_on_commit_callbacks(execute=True):
        [row] = priors.start_retrievals(target, node, [prior_uid], by=physician)
    row.refresh_from_db()
    assert (row.status, row.completed, row.percent) == ("done", 2, 100), row.error
    prior = Study.objects.get(study_instance_uid=prior_uid)
    assert (prior.practice, prior.uploaded_by, prior.num_instances) == (practice, physician, 2)

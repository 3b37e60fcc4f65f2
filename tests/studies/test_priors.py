"""Priors from a DICOM node and results sent back to it, against a real DICOM peer on loopback
(tests/dimse_peer.py: a pynetdicom archive answering C-FIND, C-GET, C-MOVE and C-STORE).

Searching: the refusals name the problem (no patient, bad dates, unreachable node, rejected
association, a failed C-FIND, nothing found); outsiders get 404. Retrieving: C-GET and C-MOVE
(through the portal's own receiver) file the study under the consult's practice for whoever asked,
not the node's owner, grant the care team and end at 100%. Results back: a released report's PDF
goes to the node the study came from when it asks for results, failures are retried and shown on
the consult page with "Send again".
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from pydicom.uid import generate_uid

from consultations import actions, dicom_export, reports
from studies import priors
from studies.dimse import Receiver
from studies.models import AccessGrant, DicomNode, NodeStudy, PriorRetrieval, ResultSend, Study
from studies.nodes import add_node
from studies.tasks import SEND_BACKOFF_MAX_SECONDS, send_countdown
from tests.dimse_peer import Archive
from tests.factories import ConsultFactory, UserFactory, make_study, practice_of
from tests.servers import free_port
from tests.studies import dicom_factory as f

PRIOR_DATE = "20190304"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def archive():
    peer = Archive("HOSPITALPACS").start()
    yield peer
    peer.stop()


@pytest.fixture
def practice(physician):
    return practice_of(physician)


@pytest.fixture
def study(physician, patient_user):
    return make_study(uploader=physician, patient_account=patient_user)


@pytest.fixture
def node(archive, practice):
    """The archive registered in the physician's practice, owned by another member of it."""
    owner = UserFactory(role="physician", email="pacs-owner@example.com", practice=practice)
    return add_node(ae_title=archive.ae_title, host="127.0.0.1", port=archive.port, owner=owner, practice=practice)


@pytest.fixture
def prior_uid(archive, study):
    """A two-instance CT of the study's patient, held by the archive only."""
    uid = generate_uid()
    series = generate_uid()
    for number in (1, 2):
        archive.datasets.append(
            f.dataset(
                PatientID=study.patient.patient_id,
                PatientName="Doe^Jane",
                StudyInstanceUID=uid,
                SeriesInstanceUID=series,
                StudyDate=PRIOR_DATE,
                StudyDescription="CT chest prior",
                InstanceNumber=number,
            )
        )
    return uid


@pytest.fixture
def accepted(physician, specialist, study, django_capture_on_commit_callbacks):
    consult = ConsultFactory(requester=physician, study=study)
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(consult, by=physician)
        consult.refresh_from_db()
        actions.accept_consult(consult, by=specialist)
    consult.refresh_from_db()
    return consult


def post_json(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def search_url(kind, pk):
    return reverse("studies:priors-search", args=[kind, pk])


# -- searching ----------------------------------------------------------------------------------


def test_search_from_the_patient_page_finds_the_nodes_studies_of_the_patient(client, physician, study, node, prior_uid):
    client.force_login(physician)
    answer = post_json(
        client,
        search_url("patient", study.patient.pk),
        {"node": node.pk, "patient_id": study.patient.patient_id, "date_from": "2019-01-01", "modality": "ct"},
    )

    assert answer.status_code == 200, answer.content
    [found] = answer.json()["studies"]
    assert (found["study_instance_uid"], found["date"], found["instances"]) == (prior_uid, "2019-03-04", 2)
    assert found["description"] == "CT chest prior" and found["here"] is False


def test_search_by_name_matches_the_beginning_of_the_family_name(client, physician, study, node, prior_uid):
    client.force_login(physician)
    answer = post_json(client, search_url("patient", study.patient.pk), {"node": node.pk, "name": "doe"})
    assert [s["study_instance_uid"] for s in answer.json()["studies"]] == [prior_uid]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "Give a patient ID or a name"),
        ({"patient_id": "P1", "date_from": "04/03/2019"}, "not a date"),
        ({"patient_id": "P1", "date_from": "2020-01-01", "date_to": "2019-01-01"}, "is after To"),
        ({"patient_id": "P1", "modality": "C T!"}, "not a modality code"),
        ({"patient_id": "P1\\P2"}, "backslash"),
        ({"patient_id": "P" * 65}, "the limit is 64"),
    ],
)
def test_bad_search_is_400_naming_the_problem(client, physician, study, node, body, words):
    client.force_login(physician)
    answer = post_json(client, search_url("patient", study.patient.pk), {"node": node.pk, **body})
    assert answer.status_code == 400
    assert words in answer.json()["detail"]


def test_search_body_that_is_not_json_is_400(client, physician, study, node):
    client.force_login(physician)
    answer = client.post(search_url("patient", study.patient.pk), data="{", content_type="application/json")
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["detail"]


def test_another_practices_node_cannot_be_searched(client, physician, study, archive, outsider):
    foreign = add_node(ae_title="ELSEWHERE", host="127.0.0.1", port=archive.port, owner=outsider)
    client.force_login(physician)
    answer = post_json(client, search_url("patient", study.patient.pk), {"node": foreign.pk, "patient_id": "X"})
    assert answer.status_code == 400 and "your practice's DICOM nodes" in answer.json()["detail"]


def test_nothing_found_is_404_saying_what_was_searched(client, physician, study, node, prior_uid):
    client.force_login(physician)
    answer = post_json(client, search_url("patient", study.patient.pk), {"node": node.pk, "patient_id": "NOBODY"})
    assert answer.status_code == 404
    assert answer.json() == {
        "detail": "HOSPITALPACS has no study matching PatientID NOBODY.",
        "code": "nothing_found",
    }


def test_unreachable_node_is_named_with_its_address(client, physician, study, node, archive):
    archive.stop()
    client.force_login(physician)
    answer = post_json(client, search_url("patient", study.patient.pk), {"node": node.pk, "patient_id": "P"})
    assert answer.status_code == 502
    assert answer.json()["code"] == "node_unreachable"
    assert f"127.0.0.1:{archive.port} cannot be reached" in answer.json()["detail"]


def test_rejected_association_says_the_node_must_know_the_portal(client, physician, study, practice):
    strict = Archive("STRICTPACS")
    strict.accept_from = {"SOMEONE_ELSE"}
    strict.start()
    try:
        owner = UserFactory(role="physician", email="strict-owner@example.com", practice=practice)
        node = add_node(ae_title="STRICTPACS", host="127.0.0.1", port=strict.port, owner=owner, practice=practice)
        client.force_login(physician)
        answer = post_json(client, search_url("patient", study.patient.pk), {"node": node.pk, "patient_id": "P"})
    finally:
        strict.stop()
    assert answer.status_code == 502
    assert answer.json()["code"] == "association_rejected"
    assert "calling AE TELECONSULT" in answer.json()["detail"]


def test_failed_c_find_gives_its_status(client, physician, study, node, archive):
    archive.find_status = 0xC001
    client.force_login(physician)
    answer = post_json(client, search_url("patient", study.patient.pk), {"node": node.pk, "patient_id": "P"})
    assert answer.status_code == 502
    assert answer.json()["code"] == "operation_failed"
    assert "C-FIND to HOSPITALPACS failed with status 0xC001" in answer.json()["detail"]


def test_outsider_and_patient_get_404_for_the_priors_routes(client, outsider, patient_user, study, node, accepted):
    for user in (outsider, patient_user):
        client.force_login(user)
        for kind, pk in (("patient", study.patient.pk), ("consult", accepted.pk), ("nowhere", 1)):
            assert post_json(client, search_url(kind, pk), {"node": node.pk, "patient_id": "P"}).status_code == 404
            assert client.get(reverse("studies:priors-retrievals", args=[kind, pk])).status_code == 404


def test_the_assigned_specialist_outside_the_practice_may_not_pull_for_it(client, specialist, accepted, node):
    client.force_login(specialist)
    assert (
        post_json(client, search_url("consult", accepted.pk), {"node": node.pk, "patient_id": "P"}).status_code == 404
    )


# -- retrieving ---------------------------------------------------------------------------------


def test_c_get_from_the_consult_page_files_the_prior_for_the_care_team(
    client, physician, specialist, accepted, node, prior_uid, django_capture_on_commit_callbacks
):
    DicomNode.objects.filter(pk=node.pk).update(retrieve_with=DicomNode.Retrieve.GET)
    client.force_login(physician)
    with django_capture_on_commit_callbacks(execute=True):
        answer = post_json(
            client,
            reverse("studies:priors-retrieve", args=["consult", accepted.pk]),
            {"node": node.pk, "study_uids": [prior_uid], "descriptions": {prior_uid: "CT chest prior"}},
        )
    assert answer.status_code == 202, answer.content

    row = PriorRetrieval.objects.get(study_instance_uid=prior_uid)
    assert (row.status, row.completed, row.failed, row.remaining, row.percent) == ("done", 2, 0, 0, 100)
    prior = Study.objects.get(study_instance_uid=prior_uid)
    assert prior.practice == accepted.study.practice
    assert prior.uploaded_by == physician  # whoever asked, not the node's owner
    assert prior.num_instances == 2
    assert Study.objects.visible_to(specialist).filter(pk=prior.pk).exists()
    assert AccessGrant.objects.filter(
        user=specialist, study=prior, reason=AccessGrant.Reason.CONSULT, source=str(accepted.pk)
    ).exists()
    assert NodeStudy.objects.filter(node=node, study_instance_uid=prior_uid).exists()
    listed = client.get(reverse("studies:priors-retrievals", args=["consult", accepted.pk])).json()["retrievals"]
    assert listed[0]["status"] == "done" and listed[0]["url"].endswith(f"/studies/{prior_uid}/")


def test_retrieving_nothing_or_a_bad_uid_is_refused(client, physician, study, node):
    client.force_login(physician)
    url = reverse("studies:priors-retrieve", args=["patient", study.patient.pk])
    assert "Choose at least one" in post_json(client, url, {"node": node.pk, "study_uids": []}).json()["detail"]
    bad = post_json(client, url, {"node": node.pk, "study_uids": ["1.2.x"]})
    assert bad.status_code == 400 and "is not a StudyInstanceUID" in bad.json()["detail"]


def test_a_study_the_node_does_not_have_ends_failed_with_the_reason(
    physician, study, node, archive, settings, django_capture_on_commit_callbacks
):
    archive.destinations[settings.TELECONSULT_AE_TITLE] = ("127.0.0.1", 9)  # never called: nothing to send
    target = priors.target_for(physician, "patient", study.patient.pk)
    with django_capture_on_commit_callbacks(execute=True):
        [row] = priors.start_retrievals(target, node, ["1.2.3.4.5"], by=physician)
    row.refresh_from_db()
    assert row.status == "failed"
    assert "no instance of the study arrived" in row.error


def test_a_node_that_does_not_know_the_portal_as_destination_says_what_to_add(
    physician, study, node, prior_uid, django_capture_on_commit_callbacks
):
    target = priors.target_for(physician, "patient", study.patient.pk)
    with django_capture_on_commit_callbacks(execute=True):
        [row] = priors.start_retrievals(target, node, [prior_uid], by=physician)
    row.refresh_from_db()
    assert (row.status, row.percent) == ("failed", 100)
    assert "failed with status 0xA801: the node does not know the portal's AE title" in row.error
    assert "add TELECONSULT" in row.error


def test_c_move_lands_through_the_receiver_in_the_requesters_name(
    transactional_db, physician, study, node, prior_uid, archive, settings
):
    """The archive opens its own association to the portal's receiver as the registered node; the
    receiver files the prior for the retrieval, not as the node owner's upload."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    receiver = Receiver(ae_title=settings.TELECONSULT_AE_TITLE, bind="127.0.0.1", port=free_port())
    receiver.start()
    archive.destinations[settings.TELECONSULT_AE_TITLE] = receiver.address
    try:
        target = priors.target_for(physician, "patient", study.patient.pk)
        row = PriorRetrieval.objects.create(
            node=node, practice=target.practice, requested_by=physician, target=target.key, study_instance_uid=prior_uid
        )
        assert priors.run(row.pk) == "done"
    finally:
        receiver.stop()
    row.refresh_from_db()
    assert (row.completed, row.percent) == (2, 100)
    prior = Study.objects.get(study_instance_uid=prior_uid)
    assert prior.uploaded_by == physician and prior.uploaded_by != node.owner
    assert prior.practice == study.practice


# -- results back -------------------------------------------------------------------------------


def sign(consult, specialist, password, capture):
    reports.save_draft(consult, by=specialist, findings="No change since the prior.", impression="Stable.")
    with capture(execute=True):
        return reports.sign_report(consult, by=specialist, password=password)


@pytest.fixture
def sends_back(node, accepted):
    DicomNode.objects.filter(pk=node.pk).update(send_results=True)
    NodeStudy.objects.create(node=node, study_instance_uid=accepted.study.study_instance_uid)
    return node


def test_signed_report_pdf_goes_back_to_the_node_the_study_came_from(
    client, physician, specialist, password, accepted, sends_back, archive, django_capture_on_commit_callbacks
):
    report = sign(accepted, specialist, password, django_capture_on_commit_callbacks)

    _series, sop_uid = dicom_export.report_pdf_uids(report)
    assert [ds.SOPInstanceUID for ds in archive.received] == [sop_uid]
    assert archive.received[0].Modality == "DOC"
    send = ResultSend.objects.get(sop_instance_uid=sop_uid)
    assert (send.status, send.attempts, send.source) == ("sent", 1, f"consult:{accepted.pk}")
    client.force_login(physician)
    page = client.get(reverse("consultations:detail", args=[accepted.pk])).content.decode()
    assert "Report PDF" in page and "Sent to PACS" in page


def test_no_send_when_the_node_does_not_ask_for_results(
    specialist, password, accepted, node, archive, django_capture_on_commit_callbacks
):
    NodeStudy.objects.create(node=node, study_instance_uid=accepted.study.study_instance_uid)
    sign(accepted, specialist, password, django_capture_on_commit_callbacks)
    assert archive.received == [] and not ResultSend.objects.exists()


def test_node_down_is_retried_then_shown_failed_and_send_again_delivers(
    client, physician, specialist, password, accepted, sends_back, archive, django_capture_on_commit_callbacks
):
    archive.stop()
    report = sign(accepted, specialist, password, django_capture_on_commit_callbacks)

    send = ResultSend.objects.get(sop_instance_uid=dicom_export.report_pdf_uids(report)[1])
    assert (send.status, send.attempts) == ("failed", 8)  # every try made (in-process, one after another)
    assert "cannot be reached" in send.error
    client.force_login(physician)
    url = reverse("consultations:detail", args=[accepted.pk])
    page = client.get(url).content.decode()
    assert "Failed" in page and "cannot be reached" in page and "Send again" in page

    archive.start()
    DicomNode.objects.filter(pk=sends_back.pk).update(port=archive.port)
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(reverse("studies:send-again", args=[send.pk]), {"next": url})
    assert again.status_code == 302 and again.url == url
    send.refresh_from_db()
    assert send.status == "sent"
    assert [ds.SOPInstanceUID for ds in archive.received] == [send.sop_instance_uid]


def test_send_again_is_404_for_an_outsider(
    client, outsider, specialist, password, accepted, sends_back, archive, django_capture_on_commit_callbacks
):
    sign(accepted, specialist, password, django_capture_on_commit_callbacks)
    send = ResultSend.objects.get()
    client.force_login(outsider)
    assert client.post(reverse("studies:send-again", args=[send.pk])).status_code == 404


def test_retry_waits_grow_and_stay_within_the_visibility_timeout(settings):
    waits = [send_countdown(number) for number in range(1, 9)]
    assert waits[0] <= settings.TELECONSULT_RESULTS_RETRY_SECONDS
    assert max(waits) <= SEND_BACKOFF_MAX_SECONDS < settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]


def test_priors_panel_shows_on_the_consult_page_to_the_requester_only(client, physician, patient_user, accepted, node):
    url = reverse("consultations:detail", args=[accepted.pk])
    client.force_login(physician)
    assert "Priors from PACS" in client.get(url).content.decode()
    client.force_login(patient_user)
    assert "Priors from PACS" not in client.get(url).content.decode()


# -- the node's options -------------------------------------------------------------------------


def test_set_dicom_node_turns_results_on_and_chooses_how_priors_come(node):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("set_dicom_node", node.ae_title, "--send-results", "on", "--retrieve", "get", stdout=out)
    node.refresh_from_db()
    assert (node.send_results, node.retrieve_with) == (True, "get")
    assert "results sent back on" in out.getvalue()
    call_command("set_dicom_node", str(node.pk), "--dicomweb-url", "https://pacs.example.org/dicom-web", stdout=out)
    node.refresh_from_db()
    assert (node.kind, node.dicomweb_url) == ("dicomweb", "https://pacs.example.org/dicom-web")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["NOSUCHNODE", "--send-results", "on"], "No DICOM node with AE title"),
        (["999999", "--retrieve", "get"], "No DICOM node number 999999"),
        (["HOSPITALPACS", "--dicomweb-url", "ftp://x"], r"is not an http\(s\) URL"),
        (["HOSPITALPACS"], "Nothing to change"),
    ],
)
def test_set_dicom_node_refuses_with_the_reason(node, args, words):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=words):
        call_command("set_dicom_node", *args)

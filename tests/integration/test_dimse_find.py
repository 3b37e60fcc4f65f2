"""C-FIND against the receiver as a real process (``manage.py dicom_scp``) on PostgreSQL, queried by
dcmtk's ``findscu`` as a PACS or a viewer would, and by pynetdicom for the exact failure statuses."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from studies.models import Patient, Study
from studies.nodes import add_node
from tests.conftest import require_service
from tests.factories import make_study
from tests.integration import test_dimse as receiving
from tests.servers import free_port, wait_until

pytestmark = pytest.mark.integration

CALLING = "VIEWER"
CALLED = "TELECONSULT"


@pytest.fixture
def findscu():
    if shutil.which("findscu") is None:
        require_service("dcmtk", "install Debian's dcmtk (findscu) to run the C-FIND tests")


@pytest.fixture
def scp(request, postgres, service_environment, findscu):
    process = receiving.DicomScpProcess(free_port(), service_environment.env(LOG_LEVEL="INFO"), f"find-{free_port()}")
    request.addfinalizer(process.stop)
    return process.start()


@pytest.fixture
def node(transactional_db, live_user):
    owner = live_user("physician", email="find-owner@example.com")
    return add_node(ae_title=CALLING, host="127.0.0.1", port=104, owner=owner)


def _study(practice, *, patient_id: str, name: str, date: dt.date) -> Study:
    patient, _ = Patient.objects.get_or_create(practice=practice, patient_id=patient_id, defaults={"name": name})
    made = make_study(practice=practice, patient=patient)
    Study.objects.filter(pk=made.pk).update(study_date=date, num_series=1, num_instances=3)
    return made


@pytest.fixture
def studies(node, live_user):
    """Two of the node's practice's patients, and a practice the node does not belong to holding
    a patient with the same PatientID and name."""
    elsewhere = live_user("physician", email="find-elsewhere@example.com").memberships.get().practice
    return {
        "jane_2024": _study(node.practice, patient_id="MRN-7", name="Doe^Jane", date=dt.date(2024, 5, 2)),
        "jane_2019": _study(node.practice, patient_id="MRN-7", name="Doe^Jane", date=dt.date(2019, 1, 9)),
        "john": _study(node.practice, patient_id="MRN-8", name="Doe^John", date=dt.date(2024, 2, 1)),
        "elsewhere": _study(elsewhere, patient_id="MRN-7", name="Doe^Jane", date=dt.date(2024, 5, 3)),
    }


def run_findscu(
    scp, folder: Path, *keys: str, calling: str = CALLING, log: str = "-v"
) -> tuple[subprocess.CompletedProcess, list]:
    """findscu (Study Root) with ``-k`` keys; the answers it wrote with ``--extract``, in order."""
    folder.mkdir()
    argv = ["findscu", log, "-S", "-aet", calling, "-aec", CALLED, "--extract", "--output-directory", str(folder)]
    argv += [arg for key in ("QueryRetrieveLevel=STUDY", *keys) for arg in ("-k", key)]
    done = subprocess.run([*argv, "127.0.0.1", str(scp.port)], capture_output=True, text=True, timeout=60)
    return done, [dcmread(path) for path in sorted(folder.glob("rsp*.dcm"))]


def test_findscu_finds_the_nodes_practice_studies_by_patient_id(scp, studies, tmp_path):
    done, answers = run_findscu(
        scp, tmp_path / "by-id", "PatientID=MRN-7", "PatientName", "StudyDate", "NumberOfStudyRelatedInstances"
    )

    assert done.returncode == 0, done.stderr
    assert [a.StudyInstanceUID for a in answers] == [
        studies["jane_2024"].study_instance_uid,
        studies["jane_2019"].study_instance_uid,
    ]
    assert [(str(a.PatientName), a.StudyDate, a.NumberOfStudyRelatedInstances) for a in answers] == [
        ("Doe^Jane", "20240502", 3),
        ("Doe^Jane", "20190109", 3),
    ]
    wait_until(lambda: "C-FIND from VIEWER (Study Root, STUDY) on PatientID: 2 matches" in scp.log(), message="logged")


def test_findscu_name_wildcard_and_date_range(scp, studies, tmp_path):
    done, answers = run_findscu(scp, tmp_path / "by-name", "PatientName=DOE^J*", "StudyDate=20240101-20241231")

    assert done.returncode == 0, done.stderr
    assert [a.StudyInstanceUID for a in answers] == [
        studies["jane_2024"].study_instance_uid,
        studies["john"].study_instance_uid,
    ]


def test_findscu_never_sees_another_practices_study(scp, studies, tmp_path):
    _, everything = run_findscu(scp, tmp_path / "all", "StudyInstanceUID")
    _, by_uid = run_findscu(scp, tmp_path / "uid", f"StudyInstanceUID={studies['elsewhere'].study_instance_uid}")

    assert sorted(a.StudyInstanceUID for a in everything) == sorted(
        studies[key].study_instance_uid for key in ("jane_2024", "jane_2019", "john")
    )
    assert by_uid == []


def test_findscu_from_an_unknown_ae_title_is_rejected_where_the_node_is_answered(scp, studies, tmp_path):
    _, answered = run_findscu(scp, tmp_path / "node", "PatientID=MRN-8")
    done, answers = run_findscu(scp, tmp_path / "stranger", "PatientID=MRN-8", calling="STRANGER")

    assert [a.StudyInstanceUID for a in answered] == [studies["john"].study_instance_uid]
    assert done.returncode != 0
    assert "Calling AE Title Not Recognized" in done.stderr
    assert answers == []


def test_findscu_bad_identifier_gets_the_failure_status_and_its_comment(scp, studies, tmp_path):
    done, answers = run_findscu(scp, tmp_path / "bad", "StudyDate=yesterday", log="-d")

    assert answers == []
    assert "DIMSE Status                  : 0xa900" in done.stderr
    assert "StudyDate: 'yesterday' is not a date" in done.stderr


@pytest.mark.parametrize(
    ("keys", "status", "comment"),
    [
        ({"QueryRetrieveLevel": "SERIES"}, 0xC000, "SERIES level not supported: query at STUDY level"),
        ({"StudyDate": "20240231"}, 0xA900, "StudyDate: '20240231' is not a valid date."),
        ({"Modality": "CT"}, 0xA900, "Modality is a SERIES key: use ModalitiesInStudy"),
        ({"OtherPatientIDs": "X1"}, 0xC001, "matching on OtherPatientIDs not supported"),
    ],
)
def test_bad_identifiers_over_the_network_get_status_and_error_comment(scp, studies, keys, status, comment):
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.PatientID = ""
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    ae = AE(ae_title=CALLING)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    assoc = ae.associate("127.0.0.1", scp.port, ae_title=CALLED)
    assert assoc.is_established

    responses = list(assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind))
    assoc.release()

    assert [(answer.Status, answer.ErrorComment, found) for answer, found in responses] == [(status, comment, None)]

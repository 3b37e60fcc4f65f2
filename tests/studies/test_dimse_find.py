"""C-FIND at study level: the receiver started in this process, pynetdicom as the node's SCU.

Matching is QIDO-RS's (tests/studies/test_dicomweb.py covers it key by key); these tests check that
a node reaches it through DIMSE, sees only its own practice's studies, and gets the statuses of
PS3.4 C.4.1.1.4 for what it may not ask.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from studies.dimse import Receiver, find
from studies.models import Patient, Study
from studies.nodes import add_node, set_enabled
from tests.factories import make_study
from tests.servers import free_port, wait_until

CALLING = "MODALITY"
STUDY_ROOT = StudyRootQueryRetrieveInformationModelFind
PATIENT_ROOT = PatientRootQueryRetrieveInformationModelFind


@pytest.fixture
def receiver(transactional_db):
    """The SCP in this process (its associations' threads read the committed rows)."""
    scp = Receiver(ae_title="TELECONSULT", bind="127.0.0.1", port=free_port())
    scp.start()
    yield scp
    scp.stop()


@pytest.fixture
def practice(physician):
    return physician.memberships.get().practice


@pytest.fixture
def node(receiver, physician, practice):
    return add_node(ae_title=CALLING, host="127.0.0.1", port=104, owner=physician, practice=practice)


def study(practice, *, patient_id="P1", name="Doe^Jane", date=None, modalities="CT", accession="", uid=None):
    patient, _ = Patient.objects.get_or_create(practice=practice, patient_id=patient_id, defaults={"name": name})
    made = make_study(practice=practice, patient=patient, modalities=modalities, uid=uid)
    Study.objects.filter(pk=made.pk).update(study_date=date, accession_number=accession, num_series=1, num_instances=7)
    made.refresh_from_db()
    return made


@pytest.fixture
def studies(node, practice, outsider):
    """Jane Doe's CT and MR in the node's practice; an outsider's practice holds a study of a patient
    with the same PatientID and name."""
    elsewhere = outsider.memberships.get().practice
    return {
        "ct": study(practice, date=dt.date(2024, 3, 1), accession="ACC1"),
        "mr": study(practice, date=dt.date(2023, 6, 1), modalities="MR"),
        "other": study(practice, patient_id="P2", name="Roe^Richard", date=dt.date(2024, 1, 5)),
        "elsewhere": study(elsewhere, date=dt.date(2024, 3, 2)),
    }


def query(**keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def associate(port: int, model=STUDY_ROOT, calling: str = CALLING):
    ae = AE(ae_title=calling)
    ae.add_requested_context(model)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    return ae.associate("127.0.0.1", port, ae_title="TELECONSULT")


def c_find(port: int, identifier: Dataset, model=STUDY_ROOT) -> list[tuple[Dataset, Dataset | None]]:
    assoc = associate(port, model)
    assert assoc.is_established
    try:
        return list(assoc.send_c_find(identifier, model))
    finally:
        assoc.release()


def matches(responses) -> list[Dataset]:
    assert responses[-1][0].Status == 0x0000, responses[-1][0]
    assert all(status.Status == 0xFF00 for status, _ in responses[:-1])
    return [found for _, found in responses[:-1]]


def uids(found: list[Dataset]) -> list[str]:
    return [ds.StudyInstanceUID for ds in found]


def test_node_finds_its_practices_studies_by_patient_id_newest_first_with_the_return_keys(receiver, studies):
    found = matches(
        c_find(
            receiver.address[1],
            query(
                PatientID="P1",
                PatientName="",
                StudyDate="",
                AccessionNumber="",
                ModalitiesInStudy="",
                StudyDescription="",
                NumberOfStudyRelatedSeries="",
                NumberOfStudyRelatedInstances="",
            ),
        )
    )

    assert uids(found) == [studies["ct"].study_instance_uid, studies["mr"].study_instance_uid]
    ct = found[0]
    assert (ct.QueryRetrieveLevel, ct.PatientID, str(ct.PatientName)) == ("STUDY", "P1", "Doe^Jane")
    assert (ct.StudyDate, ct.AccessionNumber, ct.ModalitiesInStudy, ct.StudyDescription) == (
        "20240301",
        "ACC1",
        "CT",
        "CT head",
    )
    assert (ct.NumberOfStudyRelatedSeries, ct.NumberOfStudyRelatedInstances) == (1, 7)
    assert "PatientBirthDate" not in ct  # only what was asked for, and the unique key


def test_another_practices_study_is_never_returned(receiver, studies):
    everything = matches(c_find(receiver.address[1], query(StudyInstanceUID="")))
    by_uid = matches(c_find(receiver.address[1], query(StudyInstanceUID=studies["elsewhere"].study_instance_uid)))

    assert studies["elsewhere"].study_instance_uid not in uids(everything)
    assert len(everything) == 3
    assert by_uid == []


def test_name_wildcard_without_regard_to_case_and_a_date_range(receiver, studies):
    port = receiver.address[1]

    assert uids(matches(c_find(port, query(PatientName="doe*", StudyDate="20240101-")))) == [
        studies["ct"].study_instance_uid
    ]
    assert uids(matches(c_find(port, query(PatientName="*", StudyDate="20230101-20231231")))) == [
        studies["mr"].study_instance_uid
    ]
    assert uids(matches(c_find(port, query(PatientName="R?e^*")))) == [studies["other"].study_instance_uid]


def test_uid_lists_modalities_and_accession_number(receiver, studies):
    port = receiver.address[1]
    listed = query(StudyInstanceUID=[studies["mr"].study_instance_uid, studies["other"].study_instance_uid])

    assert set(uids(matches(c_find(port, listed)))) == {
        studies["mr"].study_instance_uid,
        studies["other"].study_instance_uid,
    }
    assert uids(matches(c_find(port, query(ModalitiesInStudy=["MR", "XA"])))) == [studies["mr"].study_instance_uid]
    assert uids(matches(c_find(port, query(AccessionNumber="ACC1")))) == [studies["ct"].study_instance_uid]


def test_a_name_in_several_character_sets_is_found_by_its_ideographic_group(receiver, node, practice):
    made = study(practice, patient_id="J1", name="Yamada^Tarou=山田^太郎=やまだ^たろう")
    identifier = query(PatientName="山田*")
    identifier.SpecificCharacterSet = "ISO_IR 192"

    found = matches(c_find(receiver.address[1], identifier))

    assert uids(found) == [made.study_instance_uid]
    assert found[0].SpecificCharacterSet == "ISO_IR 192"
    assert str(found[0].PatientName) == "Yamada^Tarou=山田^太郎=やまだ^たろう"


def test_patient_root_at_study_level_needs_the_patients_id(receiver, studies):
    port = receiver.address[1]

    found = matches(c_find(port, query(PatientID="P2", StudyDate=""), PATIENT_ROOT))
    without = c_find(port, query(PatientName="Doe*"), PATIENT_ROOT)

    assert uids(found) == [studies["other"].study_instance_uid]
    assert found[0].PatientID == "P2"
    assert [status.Status for status, _ in without] == [0xA900]
    assert "needs one PatientID" in without[0][0].ErrorComment


@pytest.mark.parametrize(
    ("keys", "status", "comment"),
    [
        ({"QueryRetrieveLevel": None}, 0xA900, "QueryRetrieveLevel (0008,0052) is missing"),
        ({"QueryRetrieveLevel": "PATIENT"}, 0xA900, "PATIENT is not a level of Study Root"),
        ({"QueryRetrieveLevel": "SERIES"}, 0xC000, "SERIES level not supported"),
        ({"QueryRetrieveLevel": "IMAGE"}, 0xC000, "IMAGE level not supported"),
        ({"StudyDate": "2024-01-01"}, 0xA900, "StudyDate: '2024-01-01' is not a range"),
        ({"StudyDate": "March"}, 0xA900, "StudyDate: 'March' is not a date"),
        ({"StudyDate": "20241301"}, 0xA900, "StudyDate: '20241301' is not a valid date"),
        ({"StudyInstanceUID": "1.2.abc"}, 0xA900, "StudyInstanceUID: '1.2.abc' is not a UID"),
        ({"Modality": "CT"}, 0xA900, "Modality is a SERIES key: use ModalitiesInStudy"),
        ({"SOPInstanceUID": "1.2.3"}, 0xA900, "SOPInstanceUID is a INSTANCE key"),
        ({"PatientName": ["Doe*", "Roe*"]}, 0xA900, "PatientName takes one value, not a list"),
        ({"InstitutionName": "General*"}, 0xC001, "matching on InstitutionName not supported"),
    ],
)
def test_bad_identifiers_get_a_failure_status_naming_the_problem(receiver, studies, keys, status, comment):
    identifier = query(PatientID="")
    for keyword, value in keys.items():
        if value is None:
            delattr(identifier, keyword)
        else:
            setattr(identifier, keyword, value)

    responses = c_find(receiver.address[1], identifier)

    assert len(responses) == 1
    answer, found = responses[0]
    assert (answer.Status, found) == (status, None)
    assert answer.ErrorComment.startswith(comment)
    assert len(answer.ErrorComment) <= 64


def test_sequence_matching_is_refused_and_an_empty_sequence_is_a_return_key(receiver, studies):
    item = Dataset()
    item.CodeValue = "CT-HEAD"
    matching = query(PatientID="P2", ProcedureCodeSequence=[item])
    returning = query(PatientID="P2", ProcedureCodeSequence=[])

    refused = c_find(receiver.address[1], matching)
    answered = c_find(receiver.address[1], returning)

    assert refused[0][0].Status == 0xC001
    assert refused[0][0].ErrorComment == "sequence matching on ProcedureCodeSequence not supported"
    assert refused[0][0].OffendingElement == 0x00081032
    # A key the SCP cannot fill is sent zero-length, with the pending warning status.
    assert [status.Status for status, _ in answered] == [0xFF01, 0x0000]
    assert answered[0][1].ProcedureCodeSequence == []


def test_more_matches_than_the_cap_sends_the_newest_and_says_the_answer_was_cut(receiver, studies, monkeypatch):
    monkeypatch.setattr(find, "MAX_MATCHES", 2)
    assoc = associate(receiver.address[1])
    assert assoc.is_established

    cut = list(assoc.send_c_find(query(PatientName=""), STUDY_ROOT))
    # The same association goes on answering: the cut answer ended with one final response.
    after = list(assoc.send_c_find(query(PatientID="P2"), STUDY_ROOT))
    assoc.release()

    assert [status.Status for status, _ in cut] == [0xFF00, 0xFF00, 0xA700]
    assert uids([found for _, found in cut[:2]]) == [
        studies["ct"].study_instance_uid,
        studies["other"].study_instance_uid,
    ]
    assert cut[-1][0].ErrorComment == "more than 2 studies match; the newest 2 were sent"
    assert uids(matches(after)) == [studies["other"].study_instance_uid]


def test_c_cancel_stops_the_matches(receiver, studies, monkeypatch):
    """The SCP holds its second match until the node's C-CANCEL has arrived: nothing more is sent
    after it, and the answer ends with Cancel."""
    build = find.identifier
    built = []

    def held(request, match):
        built.append(match)
        if len(built) == 2:
            wait_until(
                lambda: any(a.dimse.cancel_req for a in receiver._server.active_associations),
                timeout=30,
                message="the C-CANCEL received",
            )
        return build(request, match)

    monkeypatch.setattr(find, "identifier", held)
    assoc = associate(receiver.address[1])
    context = next(cx for cx in assoc.accepted_contexts if cx.abstract_syntax == STUDY_ROOT)
    responses = []
    for status, found in assoc.send_c_find(query(PatientName=""), STUDY_ROOT, msg_id=7):
        responses.append((status, found))
        if len(responses) == 1:
            assoc.send_c_cancel(7, context.context_id)
    assoc.release()

    assert [status.Status for status, _ in responses] == [0xFF00, 0xFE00]
    assert uids([responses[0][1]]) == [studies["ct"].study_instance_uid]


def test_only_the_registered_enabled_node_may_query(receiver, studies, node):
    port = receiver.address[1]
    assert len(matches(c_find(port, query(PatientID="P1")))) == 2

    assert associate(port, calling="STRANGER").is_rejected
    set_enabled(node, False)
    assert associate(port).is_rejected


def test_find_does_not_block_other_associations(receiver, studies):
    """Two nodes' searches side by side (each association its own thread) both end in success."""
    results: list = []

    def run() -> None:
        results.append(c_find(receiver.address[1], query(PatientID="P1")))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert [len(matches(responses)) for responses in results] == [2, 2]

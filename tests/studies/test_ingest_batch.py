"""studies.ingest.batch: the rows of a batch's files written together, each file settled once."""

from __future__ import annotations

import hashlib
import io

import pytest
from pydicom.uid import generate_uid

from studies.ingest import IngestBatch, IngestResult, batch, ingest_file
from studies.ingest.checks import Limits, Pending, checked
from studies.models import Instance, Patient, Series, Study
from tests.studies import dicom_factory as f


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def renders(monkeypatch):
    queued: list[list[int]] = []
    monkeypatch.setattr(batch, "_queue_renders", queued.append)
    return queued


def pending(data: bytes, filename: str = "a.dcm") -> Pending:
    outcome = checked(io.BytesIO(data), filename, None, Limits.from_settings())
    assert isinstance(outcome, Pending), outcome
    return outcome


def test_two_instances_of_one_series_make_one_study_and_one_series_with_exact_counts(physician, renders):
    study_uid, series_uid = generate_uid(), generate_uid()
    with IngestBatch(physician) as ingest:
        first = ingest.add(pending(f.make_ct(StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid)))
        second = ingest.add(pending(f.make_ct(StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid)))
        assert first.instance_id is None  # written when the batch commits

    assert (first.status, second.status) == ("stored", "stored")
    study = Study.objects.get()
    assert (study.study_instance_uid, study.num_series, study.num_instances, study.modalities) == (
        study_uid,
        1,
        2,
        "CT",
    )
    assert Series.objects.get().num_instances == 2
    assert Patient.objects.count() == 1
    assert sorted(Instance.objects.values_list("pk", flat=True)) == sorted([first.instance_id, second.instance_id])
    assert len(renders) == 1  # one render message for the batch
    assert sorted(renders[0]) == sorted([first.instance_id, second.instance_id])


def test_a_refusal_handed_to_the_batch_is_its_own_result(physician):
    refused = IngestResult(filename="a.dcm", status="refused", code="empty", reason="The file is empty (0 bytes).")
    with IngestBatch(physician) as ingest:
        assert ingest.add(refused) is refused

    assert not Instance.objects.exists()


def test_resending_a_stored_instance_is_already_stored_and_changes_nothing(physician, media, renders):
    data = f.make_ct()
    with IngestBatch(physician) as ingest:
        first = ingest.add(pending(data))
    with IngestBatch(physician) as ingest:
        again = ingest.add(pending(data))

    assert again.status == "already_stored"
    assert again.instance_id == first.instance_id
    assert Instance.objects.count() == 1
    assert (Study.objects.get().num_instances, Series.objects.get().num_instances) == (1, 1)
    assert len(list(media.rglob("*.dcm"))) == 1
    assert len(renders) == 1


def test_the_same_instance_twice_in_one_batch_is_stored_once(physician, media):
    data = f.make_ct()
    with IngestBatch(physician) as ingest:
        first = ingest.add(pending(data))
        repeat = ingest.add(pending(data, "copy.dcm"))

    assert (first.status, repeat.status) == ("stored", "already_stored")
    assert repeat.instance_id == first.instance_id
    assert Study.objects.get().num_instances == 1
    assert len(list(media.rglob("*.dcm"))) == 1


def test_a_resend_with_other_content_is_a_conflict_and_the_stored_one_is_kept(physician, media):
    sop_uid = generate_uid()
    original = f.make_ct(SOPInstanceUID=sop_uid, PatientName="Doe^Jane")
    with IngestBatch(physician) as ingest:
        first = ingest.add(pending(original))
    with IngestBatch(physician) as ingest:
        conflict = ingest.add(pending(f.make_ct(SOPInstanceUID=sop_uid, PatientName="Other^Name")))

    assert (conflict.status, conflict.code) == ("refused", "conflict")
    assert sop_uid in conflict.reason
    assert conflict.instance_id is None
    instance = Instance.objects.get()
    assert instance.pk == first.instance_id
    assert instance.sha256 == hashlib.sha256(original).hexdigest()  # the preamble is zeros already
    assert len(list(media.rglob("*.dcm"))) == 1


def test_a_conflicting_repeat_in_one_batch_is_refused_and_the_first_kept(physician):
    sop_uid = generate_uid()
    with IngestBatch(physician) as ingest:
        first = ingest.add(pending(f.make_ct(SOPInstanceUID=sop_uid, PatientName="Doe^Jane")))
        other = ingest.add(pending(f.make_ct(SOPInstanceUID=sop_uid, PatientName="Other^Name")))

    assert first.status == "stored"
    assert (other.status, other.code) == ("refused", "conflict")
    assert Instance.objects.count() == 1


def test_a_series_of_another_study_is_a_conflict_within_one_batch(physician):
    series_uid = generate_uid()
    with IngestBatch(physician) as ingest:
        first = ingest.add(pending(f.make_ct(SeriesInstanceUID=series_uid)))
        other = ingest.add(pending(f.make_ct(SeriesInstanceUID=series_uid)))  # a study of its own

    assert first.status == "stored"
    assert (other.status, other.code) == ("refused", "conflict")
    assert Study.objects.count() == 1


def test_a_commit_inside_the_batch_makes_the_results_final_and_the_counts_add_up(physician):
    study_uid = generate_uid()
    with IngestBatch(physician) as ingest:
        first = ingest.add(pending(f.make_ct(StudyInstanceUID=study_uid, Modality="CT")))
        ingest.commit()
        assert first.instance_id is not None
        second = ingest.add(pending(f.make_ct(StudyInstanceUID=study_uid, Modality="PT")))

    assert (first.status, second.status) == ("stored", "stored")
    study = Study.objects.get()
    assert (study.num_series, study.num_instances, study.modalities) == (2, 2, "CT\\PT")


def test_an_error_inside_the_batch_writes_nothing_and_leaves_no_file(physician, media):
    with pytest.raises(RuntimeError), IngestBatch(physician) as ingest:
        ingest.add(pending(f.make_ct()))
        raise RuntimeError("the request broke off")

    assert not Instance.objects.exists()
    assert not Study.objects.exists()
    assert not [path for path in media.rglob("*") if path.is_file()]


def test_a_stored_study_the_user_may_not_see_refuses_the_file_as_forbidden(physician, outsider):
    theirs = ingest_file(io.BytesIO(f.make_ct()), filename="theirs.dcm", user=outsider)
    with IngestBatch(physician) as ingest:
        result = ingest.add(pending(f.make_ct(StudyInstanceUID=theirs.study_instance_uid)))

    assert (result.status, result.code) == ("refused", "forbidden_study")
    assert Study.objects.get().num_instances == 1

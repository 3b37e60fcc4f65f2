"""studies.ingest: what is stored, what is refused and why, and what the database says afterwards."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.files.storage import default_storage
from pydicom.uid import generate_uid

from studies import ingest
from studies.ingest import IngestRefusedError, IngestResult, batch, entry, ingest_file, ingest_files, rows
from studies.models import AccessGrant, Instance, Patient, Series, Study
from studies.permissions import can_view_study, get_study_for_user, visible_patients
from tests.factories import UserFactory
from tests.studies import dicom_factory as f


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def stored_bytes(instance: Instance) -> bytes:
    with default_storage.open(instance.file.name, "rb") as fp:
        return fp.read()


def test_ct_is_stored_with_its_fields_counts_under_the_uploaders_practice(physician):
    data = f.make_ct(PatientID="P-1", PatientName="Doe^Jane", StudyDescription="Head CT")
    result = ingest_file(io.BytesIO(data), filename="ct.dcm", user=physician)

    assert result.status == "stored", result
    instance = Instance.objects.get(pk=result.instance_id)
    assert instance.sop_instance_uid == result.sop_instance_uid
    assert (instance.rows, instance.columns, instance.number_of_frames, instance.bits_allocated) == (16, 16, 1, 16)
    assert instance.photometric_interpretation == "MONOCHROME2"
    assert instance.has_pixel_data is True
    assert instance.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert instance.uploaded_by == physician
    study = instance.series.study
    assert (study.num_series, study.num_instances, study.modalities) == (1, 1, "CT")
    assert study.description == "Head CT"
    assert str(study.study_date) == "2024-01-02"
    assert study.patient.patient_id == "P-1"
    assert study.patient.name == "Doe^Jane"
    assert study.practice == study.patient.practice == physician.default_practice
    # The practice gives the uploader access; no grant of their own is written.
    assert not AccessGrant.objects.filter(study=study).exists()
    assert can_view_study(physician, study)


def test_stored_file_has_zeroed_preamble_and_its_hash_recorded(physician):
    data = f.to_bytes(f.dataset(), preamble=b"MZ" + b"\x90" * 126)
    result = ingest_file(io.BytesIO(data), filename="ct.dcm", user=physician)

    instance = Instance.objects.get(pk=result.instance_id)
    kept = stored_bytes(instance)
    assert kept[:128] == bytes(128)
    assert kept[128:] == data[128:]
    assert instance.sha256 == hashlib.sha256(kept).hexdigest()
    assert instance.size == len(data)


def test_metadata_is_dicom_json_without_bulk_pixel_data(physician):
    result = ingest_file(io.BytesIO(f.make_ct(PatientID="P-2")), filename="ct.dcm", user=physician)

    metadata = Instance.objects.get(pk=result.instance_id).metadata
    assert metadata["00100020"] == {"vr": "LO", "Value": ["P-2"]}
    assert metadata["00080018"]["Value"] == [result.sop_instance_uid]
    assert metadata["7FE00010"] == {"vr": "OW"}


def test_large_binary_values_are_left_out_of_metadata(physician):
    ds = f.dataset()
    ds.add_new(0x00091010, "OB", b"\x01" * 5000)
    ds.add_new(0x00091002, "LO", "PRIVATE CREATOR")
    result = ingest_file(io.BytesIO(f.to_bytes(ds)), filename="ct.dcm", user=physician)

    metadata = Instance.objects.get(pk=result.instance_id).metadata
    assert metadata["00091010"] == {"vr": "OB"}


def test_resending_the_same_instance_is_already_stored_and_changes_nothing(physician):
    data = f.make_ct()
    first = ingest_file(io.BytesIO(data), filename="a.dcm", user=physician)
    again = ingest_file(io.BytesIO(data), filename="a.dcm", user=physician)

    assert again.status == "already_stored"
    assert again.instance_id == first.instance_id
    assert Instance.objects.count() == 1
    assert Study.objects.get().num_instances == 1


def test_resend_with_another_preamble_is_already_stored(physician):
    ds = f.dataset()
    ingest_file(io.BytesIO(f.to_bytes(ds)), filename="a.dcm", user=physician)
    again = ingest_file(io.BytesIO(f.to_bytes(ds, preamble=b"\xff" * 128)), filename="a.dcm", user=physician)

    assert again.status == "already_stored"


def test_same_sop_instance_uid_with_other_content_is_a_conflict_and_the_original_is_kept(physician):
    uid = generate_uid()
    first = ingest_file(io.BytesIO(f.make_ct(SOPInstanceUID=uid)), filename="a.dcm", user=physician)
    original = stored_bytes(Instance.objects.get())
    other = ingest_file(
        io.BytesIO(f.make_ct(SOPInstanceUID=uid, PatientID="SOMEONE-ELSE")), filename="b.dcm", user=physician
    )

    assert other.status == "refused"
    assert other.code == "conflict"
    assert uid in other.reason
    instance = Instance.objects.get()
    assert instance.pk == first.instance_id
    assert stored_bytes(instance) == original


def test_counts_and_modalities_follow_series_and_instances(physician):
    study_uid, ct_series, mr_series = generate_uid(), generate_uid(), generate_uid()
    files = [
        ("1.dcm", io.BytesIO(f.make_ct(StudyInstanceUID=study_uid, SeriesInstanceUID=ct_series))),
        ("2.dcm", io.BytesIO(f.make_ct(StudyInstanceUID=study_uid, SeriesInstanceUID=ct_series))),
        ("3.dcm", io.BytesIO(f.make_mr(StudyInstanceUID=study_uid, SeriesInstanceUID=mr_series))),
    ]
    results = ingest_files(files, user=physician)

    assert [r.status for r in results] == ["stored"] * 3
    study = Study.objects.get(study_instance_uid=study_uid)
    assert (study.num_series, study.num_instances, study.modalities) == (2, 3, "CT\\MR")
    assert Series.objects.get(series_instance_uid=ct_series).num_instances == 2
    assert Series.objects.get(series_instance_uid=mr_series).num_instances == 1


def test_patient_is_upserted_on_patient_id_and_issuer(physician):
    ingest_file(io.BytesIO(f.make_ct(PatientID="P-9")), filename="a.dcm", user=physician)
    ingest_file(io.BytesIO(f.make_ct(PatientID="P-9")), filename="b.dcm", user=physician)
    ingest_file(io.BytesIO(f.make_ct(PatientID="P-9", IssuerOfPatientID="OTHER")), filename="c.dcm", user=physician)

    assert Patient.objects.filter(patient_id="P-9").count() == 2
    assert Study.objects.filter(patient__patient_id="P-9", patient__issuer="").count() == 2


def test_studies_without_patient_id_are_not_merged_into_one_patient(physician):
    ingest_file(io.BytesIO(f.make_ct(PatientID=None)), filename="a.dcm", user=physician)
    ingest_file(io.BytesIO(f.make_ct(PatientID=None)), filename="b.dcm", user=physician)

    assert Patient.objects.count() == 2


def test_outsider_cannot_see_the_uploaded_study_or_its_patient(physician, outsider, patient_user):
    result = ingest_file(io.BytesIO(f.make_ct()), filename="a.dcm", user=physician)
    study = Study.objects.get(study_instance_uid=result.study_instance_uid)

    assert can_view_study(physician, study)
    assert get_study_for_user(physician, study.study_instance_uid) == study
    assert not can_view_study(outsider, study)
    assert not can_view_study(patient_user, study)
    assert not visible_patients(outsider).exists()


def test_resend_by_an_outsider_is_refused_and_grants_no_access(physician, outsider):
    data = f.make_ct()
    ingest_file(io.BytesIO(data), filename="a.dcm", user=physician)
    again = ingest_file(io.BytesIO(data), filename="a.dcm", user=outsider)

    assert (again.status, again.code) == ("refused", "forbidden_study")
    assert not can_view_study(outsider, Study.objects.get())


def test_an_outsider_cannot_add_an_instance_to_someone_elses_study(physician, outsider):
    first = ingest_file(io.BytesIO(f.make_ct()), filename="a.dcm", user=physician)
    intruder = f.make_ct(StudyInstanceUID=first.study_instance_uid)

    result = ingest_file(io.BytesIO(intruder), filename="b.dcm", user=outsider)

    assert (result.status, result.code) == ("refused", "forbidden_study")
    assert "not shared with you" in result.reason
    study = Study.objects.get()
    assert study.num_instances == 1 and Instance.objects.count() == 1
    assert not can_view_study(outsider, study)
    # Someone the study is shared with may add to it.
    colleague_result = ingest_file(
        io.BytesIO(f.make_ct(StudyInstanceUID=first.study_instance_uid)), filename="c.dcm", user=physician
    )
    assert colleague_result.status == "stored"


def test_file_paths_are_accepted_as_sources(physician, tmp_path):
    path = tmp_path / "ct.dcm"
    f.make_ct(path)

    assert ingest_file(path, filename="ct.dcm", user=physician).status == "stored"
    assert ingest_file(str(path), filename="ct.dcm", user=physician).status == "already_stored"


def test_multiframe_and_documents_without_pixels_are_stored(physician):
    multi = ingest_file(io.BytesIO(f.make_multiframe(frames=4)), filename="mf.dcm", user=physician)
    sr = ingest_file(io.BytesIO(f.make_sr()), filename="sr.dcm", user=physician)

    assert Instance.objects.get(pk=multi.instance_id).number_of_frames == 4
    assert Instance.objects.get(pk=sr.instance_id).has_pixel_data is False


def test_sending_to_a_given_study_refuses_a_file_of_another_study(physician):
    result = ingest_file(io.BytesIO(f.make_ct()), filename="a.dcm", user=physician, study_uid="1.2.3.4")

    assert result.status == "refused"
    assert result.code == "wrong_study"
    assert "1.2.3.4" in result.reason
    assert not Instance.objects.exists()


def test_render_task_is_queued_after_commit(physician, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr(batch, "_queue_renders", lambda pks: queued.append(pks))
    result = ingest_file(io.BytesIO(f.make_ct()), filename="a.dcm", user=physician)

    assert queued == [[result.instance_id]]


def test_on_commit_callback_calls_the_render_task(physician, django_capture_on_commit_callbacks, monkeypatch):
    from studies import tasks

    calls = []
    monkeypatch.setattr(tasks.render_instance, "delay", lambda **kwargs: calls.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest_file(io.BytesIO(f.make_ct()), filename="a.dcm", user=physician)

    assert calls == [{"instance_pk": result.instance_id}]


def test_lost_race_for_the_same_instance_is_already_stored_without_a_duplicate(physician, monkeypatch, media):
    data = f.make_ct()
    first = ingest_file(io.BytesIO(data), filename="a.dcm", user=physician)
    real_lookup = rows.stored_instances
    calls = []

    def missed_while_the_other_upload_was_in_flight(uids):
        calls.append(uids)
        return {} if len(calls) == 1 else real_lookup(uids)

    monkeypatch.setattr(rows, "stored_instances", missed_while_the_other_upload_was_in_flight)
    again = ingest_file(io.BytesIO(data), filename="a.dcm", user=physician)

    assert again.status == "already_stored"
    assert again.instance_id == first.instance_id
    assert Instance.objects.count() == 1
    assert len(list(media.rglob("*.dcm"))) == 1


def test_as_dict_has_every_field():
    result = IngestResult(filename="a.dcm", status="refused", code="empty", reason="The file is empty (0 bytes).")

    assert result.as_dict() == {
        "filename": "a.dcm",
        "status": "refused",
        "code": "empty",
        "reason": "The file is empty (0 bytes).",
        "sop_class_uid": "",
        "sop_instance_uid": "",
        "study_instance_uid": "",
        "series_instance_uid": "",
        "instance_id": None,
        "coerced": False,
    }


def test_stored_image_gets_its_thumbnail_after_commit(physician, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest_file(io.BytesIO(f.make_ct(rows=64, columns=64)), filename="ct.dcm", user=physician)

    instance = Instance.objects.get(pk=result.instance_id)
    assert instance.status == Instance.Status.READY, instance.failure_reason
    assert instance.thumbnail.name


def test_document_without_pixels_is_marked_as_having_no_image(physician, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest_file(io.BytesIO(f.make_sr()), filename="sr.dcm", user=physician)

    assert Instance.objects.get(pk=result.instance_id).status == Instance.Status.NO_IMAGE


def test_invalid_values_are_left_out_of_metadata_without_switching_pydicom_to_strict(physician, monkeypatch):
    from pydicom import config
    from pydicom.data import get_testdata_file

    def strict_reading_is_process_wide():
        raise AssertionError("strict reading would make uploads in other threads fail")

    monkeypatch.setattr(config, "strict_reading", strict_reading_is_process_wide)
    result = ingest_file(get_testdata_file("badVR.dcm"), filename="badVR.dcm", user=physician)

    assert result.status == "stored", result
    assert result.coerced is True
    assert "(0028,0008)" in result.reason
    assert "00280008" not in Instance.objects.get().metadata


def test_file_encoded_unlike_its_transfer_syntax_is_kept_and_marked_coerced(physician):
    from pydicom.data import get_testdata_file

    result = ingest_file(get_testdata_file("SC_rgb_jpeg.dcm"), filename="SC_rgb_jpeg.dcm", user=physician)

    assert result.status == "stored", result
    assert result.coerced is True
    assert "implicit VR" in result.reason


def test_conforming_file_is_not_marked_coerced(physician):
    result = ingest_file(io.BytesIO(f.make_ct()), filename="ct.dcm", user=physician)

    assert result.coerced is False
    assert result.reason == ""


def test_a_refusal_can_only_carry_a_documented_code():
    """Refusals are made with codes from REFUSAL_CODES (the table the API documents), or not at all."""
    with pytest.raises(ValueError, match="REFUSAL_CODES"):
        IngestRefusedError("undocumented", "A refusal nobody could look up.")
    with pytest.raises(ValueError, match="REFUSAL_CODES"):
        IngestResult(filename="a.dcm", status="refused", code="undocumented", reason="A refusal nobody could look up.")
    with pytest.raises(ValueError, match="REFUSAL_CODES"):
        IngestResult(filename="a.dcm", status="refused")

    assert IngestRefusedError("zip_bomb", "The archive expands too far.").code == "zip_bomb"
    assert IngestResult(filename="a.dcm", status="stored").code == ""


def test_series_already_stored_in_another_study_is_a_conflict(physician):
    series_uid = generate_uid()
    ingest_file(io.BytesIO(f.make_ct(SeriesInstanceUID=series_uid)), filename="a.dcm", user=physician)
    other = ingest_file(io.BytesIO(f.make_ct(SeriesInstanceUID=series_uid)), filename="b.dcm", user=physician)

    assert other.status == "refused"
    assert other.code == "conflict"
    assert series_uid in other.reason
    assert Instance.objects.count() == 1
    assert Study.objects.count() == 1


def test_bulk_values_inside_sequences_keep_only_their_vr(physician):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    icon = Dataset()
    icon.Rows, icon.Columns, icon.BitsAllocated, icon.SamplesPerPixel = 64, 64, 8, 1
    icon.add_new(0x7FE00010, "OW", bytes(64 * 64))
    ds = f.dataset()
    ds.IconImageSequence = Sequence([icon])
    result = ingest_file(io.BytesIO(f.to_bytes(ds)), filename="icon.dcm", user=physician)

    item = Instance.objects.get(pk=result.instance_id).metadata["00880200"]["Value"][0]
    assert item["7FE00010"] == {"vr": "OW"}
    assert item["00280010"] == {"vr": "US", "Value": [64]}


def test_a_file_refused_inside_a_batch_rolls_back_only_its_own_rows(physician, django_capture_on_commit_callbacks):
    study_uid, series_uid = generate_uid(), generate_uid()
    first = f.make_ct(StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, Modality="CT")
    files = [
        ("a.dcm", io.BytesIO(first)),
        ("b.dcm", io.BytesIO(f.make_ct(SeriesInstanceUID=series_uid))),  # that series in another study
        ("c.dcm", io.BytesIO(f.make_mr(StudyInstanceUID=study_uid))),
        ("a-again.dcm", io.BytesIO(first)),
    ]
    with django_capture_on_commit_callbacks() as callbacks:
        results = ingest_files(files, user=physician)

    assert [r.status for r in results] == ["stored", "refused", "stored", "already_stored"]
    assert results[1].code == "conflict"
    assert results[3].instance_id == results[0].instance_id
    assert Study.objects.count() == 1
    study = Study.objects.get()
    assert (study.num_series, study.num_instances, study.modalities) == (2, 2, "CT\\MR")
    assert Series.objects.get(series_instance_uid=series_uid).num_instances == 1
    assert can_view_study(physician, study)
    assert len(callbacks) == 1  # one render message for the batch


def test_a_batch_sends_one_render_message_that_the_worker_fans_out(
    physician, django_capture_on_commit_callbacks, monkeypatch
):
    from studies import tasks

    messages, renders = [], []
    monkeypatch.setattr(tasks.render_instances, "delay", lambda **kwargs: messages.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        results = ingest_files([(f"{n}.dcm", io.BytesIO(f.make_ct())) for n in range(3)], user=physician)
    pks = [result.instance_id for result in results]

    assert messages == [{"instance_pks": pks}]
    monkeypatch.setattr(tasks.render_instance, "delay", lambda **kwargs: renders.append(kwargs))
    tasks.render_instances(instance_pks=pks)
    assert renders == [{"instance_pk": pk} for pk in pks]


def test_one_uid_twice_in_a_batch_with_other_content_is_a_conflict_for_the_second(physician, media):
    uid = generate_uid()
    results = ingest_files(
        [
            ("a.dcm", io.BytesIO(f.make_ct(SOPInstanceUID=uid, SeriesDescription="first"))),
            ("b.dcm", io.BytesIO(f.make_ct(SOPInstanceUID=uid, SeriesDescription="second"))),
        ],
        user=physician,
    )

    assert [(r.status, r.code) for r in results] == [("stored", ""), ("refused", "conflict")]
    assert uid in results[1].reason
    assert Instance.objects.get().series.description == "first"
    assert len(list((media / "dicom").rglob("*.dcm"))) == 1
    assert not list((media / ".incoming").glob("*"))


def test_a_batch_mixing_its_own_files_with_one_of_someone_elses_study_keeps_its_own(physician, outsider, media):
    theirs = ingest_file(io.BytesIO(f.make_ct()), filename="theirs.dcm", user=physician)
    results = ingest_files(
        [
            ("mine.dcm", io.BytesIO(f.make_ct())),
            ("into-theirs.dcm", io.BytesIO(f.make_ct(StudyInstanceUID=theirs.study_instance_uid))),
            ("mine-too.dcm", io.BytesIO(f.make_mr())),
        ],
        user=outsider,
    )

    assert [(r.status, r.code) for r in results] == [("stored", ""), ("refused", "forbidden_study"), ("stored", "")]
    assert results[1].instance_id is None
    their_study = Study.objects.get(study_instance_uid=theirs.study_instance_uid)
    assert their_study.num_instances == 1
    assert not can_view_study(outsider, their_study)
    assert Instance.objects.count() == 3
    assert not list((media / ".incoming").glob("*"))


def test_files_beyond_one_batch_are_committed_in_several_with_exact_counts(physician, monkeypatch):
    monkeypatch.setattr(entry, "BATCH_SIZE", 2)
    study_uid, series_uid = generate_uid(), generate_uid()
    files = [
        (f"{i}.dcm", io.BytesIO(f.make_ct(StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid))) for i in range(5)
    ]
    results = ingest_files(files, user=physician)

    assert [r.status for r in results] == ["stored"] * 5
    study = Study.objects.get(study_instance_uid=study_uid)
    assert (study.num_series, study.num_instances) == (1, 5)
    assert Series.objects.get().num_instances == 5
    assert study.practice == physician.default_practice


def test_a_failed_batch_removes_the_files_it_moved_into_storage(physician, media, monkeypatch):
    from django.db import DatabaseError

    def fail(*args, **kwargs):
        raise DatabaseError("the database went away")

    monkeypatch.setattr(ingest.IngestBatch, "_write_counts", fail)
    with pytest.raises(DatabaseError):
        ingest_files([("a.dcm", io.BytesIO(f.make_ct())), ("b.dcm", io.BytesIO(f.make_ct()))], user=physician)

    assert not list(media.rglob("*.dcm"))
    assert not Instance.objects.exists()


def test_a_file_storage_refuses_is_refused_alone_and_leaves_nothing_behind(physician, media, monkeypatch):
    from studies import storage

    real_store, calls = storage.store, []

    def full_disk_on_the_second(staged):
        calls.append(staged)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_store(staged)

    monkeypatch.setattr(storage, "store", full_disk_on_the_second)
    study_uid = generate_uid()
    files = [(f"{n}.dcm", io.BytesIO(f.make_ct(StudyInstanceUID=study_uid))) for n in range(4)]
    results = ingest_files(files, user=physician)

    assert [(r.status, r.code) for r in results] == [("stored", ""), ("refused", "unreadable")] + [("stored", "")] * 2
    assert "No space left on device" in results[1].reason
    assert Study.objects.get(study_instance_uid=study_uid).num_instances == 3
    assert len(list((media / "dicom").rglob("*.dcm"))) == 3
    assert not list((media / ".incoming").glob("*"))


def test_values_valid_for_pydicom_that_json_cannot_hold_are_left_out_and_the_file_kept(physician):
    from pydicom.dataelem import DataElement

    ds = f.dataset()
    ds.add(DataElement(0x00189087, "FD", float("nan")))  # Diffusion b-value
    ds.add(DataElement(0x00181050, "DS", "1e400"))  # Spatial Resolution
    ds.add(DataElement(0x00081090, "LO", "Scanner\x00Model"))  # Manufacturer's Model Name
    ds.ReferencedImageSequence = [f.base_dataset(f.CTImageStorage)]
    ds.ReferencedImageSequence[0].add(DataElement(0x00189087, "FD", float("inf")))
    result = ingest_file(io.BytesIO(f.to_bytes(ds)), filename="odd.dcm", user=physician)

    assert result.status == "stored", result.reason
    assert result.coerced
    for tag in ("(0018,9087)", "(0018,1050)", "(0008,1090)", "(0008,1140)"):
        assert tag in result.reason
    metadata = Instance.objects.get(pk=result.instance_id).metadata
    assert {"00189087", "00181050", "00081090", "00081140"}.isdisjoint(metadata)
    assert metadata["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Test^Patient"}]}


def test_an_upload_is_stored_even_when_its_thumbnails_cannot_be_queued(
    physician, django_capture_on_commit_callbacks, monkeypatch
):
    from kombu.exceptions import OperationalError as BrokerError

    from studies import tasks

    def broker_down(**kwargs):
        raise BrokerError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(tasks.render_instances, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        results = ingest_files([(f"{n}.dcm", io.BytesIO(f.make_ct())) for n in range(2)], user=physician)

    assert [r.status for r in results] == ["stored", "stored"]
    assert set(Instance.objects.values_list("status", flat=True)) == {Instance.Status.PENDING}  # for the safety net


def test_the_same_mrn_in_two_practices_is_two_records_that_never_meet(physician, outsider):
    ingest_files([("a.dcm", io.BytesIO(f.make_ct(PatientID="MRN-4711", PatientName="Doe^Jane")))], user=physician)
    ingest_files([("b.dcm", io.BytesIO(f.make_ct(PatientID="MRN-4711", PatientName="Other^Name")))], user=outsider)
    ingest_files([("c.dcm", io.BytesIO(f.make_mr(PatientID="MRN-4711", PatientName="Doe^Jane")))], user=physician)

    records = Patient.objects.filter(patient_id="MRN-4711").order_by("pk")
    assert [(p.practice_id, p.name, p.studies.count()) for p in records] == [
        (physician.default_practice.pk, "Doe^Jane", 2),
        (outsider.default_practice.pk, "Other^Name", 1),
    ]
    assert not visible_patients(outsider).filter(practice=physician.default_practice).exists()
    assert not AccessGrant.objects.exists()


def test_a_clinician_outside_any_practice_cannot_start_a_study(db):
    pending = UserFactory(role="physician", practice=False)
    result = ingest_file(io.BytesIO(f.make_ct()), filename="ct.dcm", user=pending)
    assert (result.status, result.code) == ("refused", "no_practice")
    assert "practice admin" in result.reason
    assert not Study.objects.exists() and not Patient.objects.exists()

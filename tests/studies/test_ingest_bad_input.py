"""Every bad input of issue 3 is refused with a reason of its own; good files beside it are kept."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.storage import default_storage
from pydicom.uid import generate_uid

from studies.ingest import ingest_file, ingest_files
from studies.models import Instance, Study
from tests.studies import dicom_factory as f


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def refuse(data: bytes, user, filename: str = "bad.dcm"):
    result = ingest_file(io.BytesIO(data), filename=filename, user=user)
    assert result.status == "refused", result
    assert result.reason
    assert not Instance.objects.exists()
    return result


def test_not_dicom_is_refused_naming_the_missing_marker(physician):
    result = refuse(b"%PDF-1.7 this is a report, not an image" * 10, physician)

    assert result.code == "not_dicom"
    assert "DICM" in result.reason


def test_zero_byte_file_is_refused_as_empty(physician):
    result = refuse(b"", physician)

    assert result.code == "empty"
    assert "0 bytes" in result.reason


def test_file_shorter_than_the_preamble_is_not_dicom(physician):
    assert refuse(b"DICM", physician).code == "not_dicom"


def test_truncated_file_is_refused_as_truncated(physician):
    result = refuse(f.make_truncated(), physician)

    assert result.code == "truncated"
    assert "pixel data" in result.reason


@pytest.mark.parametrize("keep", [0.05, 0.1, 0.2])
def test_file_cut_inside_its_header_is_refused(physician, keep):
    data = f.make_ct()
    result = refuse(data[: max(140, int(len(data) * keep))], physician)

    assert result.code in {"truncated", "missing_uid"}


def test_missing_uids_are_refused_naming_each(physician):
    result = refuse(f.make_ct(StudyInstanceUID=None, SeriesInstanceUID=None), physician)

    assert result.code == "missing_uid"
    assert "StudyInstanceUID" in result.reason
    assert "SeriesInstanceUID" in result.reason
    assert "SOPInstanceUID" not in result.reason.split("every")[0]


def test_missing_sop_instance_uid_is_refused(physician):
    result = refuse(f.make_ct(SOPInstanceUID=None), physician)

    assert result.code == "missing_uid"
    assert "SOPInstanceUID" in result.reason


def test_overlong_uid_is_refused(physician):
    result = refuse(f.make_ct(SeriesInstanceUID="1." + "2" * 70), physician)

    assert result.code == "invalid_uid"
    assert "SeriesInstanceUID" in result.reason


def test_random_bytes_after_dicm_are_refused_as_bad_file_meta(physician):
    result = refuse(f.make_random_after_dicm(), physician)

    assert result.code == "bad_file_meta"
    assert "DICM" in result.reason


def test_declared_dimensions_larger_than_the_data_are_refused(physician):
    result = refuse(f.make_dimensions_mismatch(), physician)

    assert result.code == "dimensions_mismatch"
    assert "4096 rows x 4096 columns" in result.reason


def test_more_frames_declared_than_carried_are_refused(physician):
    ds = f.dataset(sop_class="1.2.840.10008.5.1.4.1.1.7", modality="OT")
    ds.NumberOfFrames = 50
    result = refuse(f.to_bytes(ds), physician)

    assert result.code == "dimensions_mismatch"
    assert "50 frame" in result.reason


@pytest.mark.parametrize("depth", [60, 300, 2000])
def test_sequences_nested_hundreds_deep_are_refused(physician, depth):
    result = refuse(f.make_nested(depth), physician)

    assert result.code == "too_deep"
    assert "nested" in result.reason


def test_reasonable_nesting_is_stored(physician):
    result = ingest_file(io.BytesIO(f.make_nested(12)), filename="sr.dcm", user=physician)

    assert result.status == "stored", result


def test_file_over_the_size_limit_is_refused(physician, settings):
    settings.TELECONSULT_MAX_FILE_SIZE = 1000
    result = refuse(f.make_ct(), physician)

    assert result.code == "too_large"
    assert "limit" in result.reason


def test_upload_over_the_request_limit_refuses_the_rest(physician, settings):
    data = f.make_ct()
    settings.TELECONSULT_MAX_REQUEST_SIZE = len(data) + 100
    results = ingest_files([("a.dcm", io.BytesIO(data)), ("b.dcm", io.BytesIO(f.make_ct()))], user=physician)

    assert [r.status for r in results] == ["stored", "refused"]
    assert results[1].code == "too_large"


def test_dicomdir_is_skipped_with_its_own_reason(physician):
    from pydicom.data import get_testdata_file

    path = get_testdata_file("DICOMDIR")
    result = ingest_file(path, filename="DICOMDIR", user=physician)

    assert result.status == "refused"
    assert result.code == "dicomdir"
    assert "skipped" in result.reason


def test_dicomdir_under_another_name_is_recognised(physician):
    from pydicom.data import get_testdata_file

    result = ingest_file(get_testdata_file("DICOMDIR"), filename="index.dcm", user=physician)

    assert result.code == "dicomdir"


def test_zip_with_parent_path_is_refused_before_anything_is_extracted(physician):
    archive = f.make_zip({"good.dcm": f.make_ct(), "../evil.dcm": f.make_ct()})
    results = ingest_files([("upload.zip", io.BytesIO(archive))], user=physician)

    assert len(results) == 1
    assert results[0].code == "zip_unsafe"
    assert "../evil.dcm" in results[0].reason
    assert not Instance.objects.exists()


@pytest.mark.parametrize("name", ["/etc/evil.dcm", "C:/evil.dcm", "a/../../evil.dcm", "\\\\server\\..\\x.dcm"])
def test_zip_with_absolute_or_escaping_paths_is_refused(physician, name):
    archive = f.make_zip({"good.dcm": f.make_ct(), name: f.make_ct()})
    results = ingest_files([("upload.zip", io.BytesIO(archive))], user=physician)

    assert [r.code for r in results] == ["zip_unsafe"]
    assert not Instance.objects.exists()


def test_zip_bomb_is_refused_by_its_compression_ratio(physician):
    results = ingest_files([("bomb.zip", io.BytesIO(f.make_zip_bomb()))], user=physician)

    assert [r.code for r in results] == ["zip_bomb"]
    assert "zip bomb" in results[0].reason


def test_zip_expanding_over_the_total_limit_is_refused(physician, settings):
    settings.TELECONSULT_ZIP_MAX_UNCOMPRESSED = 1000
    archive = f.make_zip({"a.dcm": f.make_ct(), "b.dcm": f.make_ct()}, compression=zipfile.ZIP_STORED)
    results = ingest_files([("big.zip", io.BytesIO(archive))], user=physician)

    assert [r.code for r in results] == ["zip_too_large"]


def test_zip_with_too_many_entries_is_refused(physician, settings):
    settings.TELECONSULT_ZIP_MAX_ENTRIES = 2
    archive = f.make_zip({f"{n}.dcm": f.make_ct() for n in range(3)})
    results = ingest_files([("many.zip", io.BytesIO(archive))], user=physician)

    assert [r.code for r in results] == ["zip_too_many_entries"]


def test_empty_zip_is_refused(physician):
    results = ingest_files([("empty.zip", io.BytesIO(f.make_zip({})))], user=physician)

    assert [r.code for r in results] == ["empty"]


def test_empty_upload_gives_no_results(physician):
    assert ingest_files([], user=physician) == []


def test_zip_entries_are_ingested_one_by_one_and_bad_ones_refused(physician):
    study_uid = generate_uid()
    archive = f.make_zip(
        {
            "study/1.dcm": f.make_ct(StudyInstanceUID=study_uid),
            "study/2.dcm": f.make_ct(StudyInstanceUID=study_uid),
            "study/notes.txt": b"not an image",
            "study/empty.dcm": b"",
            "__MACOSX/study/._1.dcm": b"resource fork",
            "study/": b"",
        }
    )
    results = ingest_files([("study.zip", io.BytesIO(archive))], user=physician)

    by_name = {r.filename: r for r in results}
    assert set(by_name) == {
        "study.zip/study/1.dcm",
        "study.zip/study/2.dcm",
        "study.zip/study/notes.txt",
        "study.zip/study/empty.dcm",
    }
    assert by_name["study.zip/study/1.dcm"].status == "stored"
    assert by_name["study.zip/study/notes.txt"].code == "not_dicom"
    assert by_name["study.zip/study/empty.dcm"].code == "empty"
    assert Study.objects.get().num_instances == 2


def test_every_bad_input_in_one_upload_keeps_the_good_files_and_changes_nothing_stored(physician):
    kept = f.make_ct()
    first = ingest_file(io.BytesIO(kept), filename="kept.dcm", user=physician)
    before = Instance.objects.values_list("pk", "sha256", "file")
    before = list(before)
    with default_storage.open(Instance.objects.get().file.name, "rb") as fp:
        original_bytes = fp.read()
    good = f.make_mr()
    upload = [
        ("good.dcm", good),
        ("resent.dcm", kept),
        ("notdicom.txt", b"hello world" * 20),
        ("empty.dcm", b""),
        ("truncated.dcm", f.make_truncated()),
        ("nouids.dcm", f.make_ct(StudyInstanceUID=None)),
        ("random.dcm", f.make_random_after_dicm()),
        ("dims.dcm", f.make_dimensions_mismatch()),
        ("deep.dcm", f.make_nested(300)),
        ("conflict.dcm", f.make_ct(SOPInstanceUID=first.sop_instance_uid, PatientID="OTHER")),
        ("unsafe.zip", f.make_zip({"../x.dcm": f.make_ct()})),
        ("bomb.zip", f.make_zip_bomb()),
    ]
    results = ingest_files([(name, io.BytesIO(data)) for name, data in upload], user=physician)

    codes = {r.filename: (r.status, r.code) for r in results}
    assert codes == {
        "good.dcm": ("stored", ""),
        "resent.dcm": ("already_stored", ""),
        "notdicom.txt": ("refused", "not_dicom"),
        "empty.dcm": ("refused", "empty"),
        "truncated.dcm": ("refused", "truncated"),
        "nouids.dcm": ("refused", "missing_uid"),
        "random.dcm": ("refused", "bad_file_meta"),
        "dims.dcm": ("refused", "dimensions_mismatch"),
        "deep.dcm": ("refused", "too_deep"),
        "conflict.dcm": ("refused", "conflict"),
        "unsafe.zip": ("refused", "zip_unsafe"),
        "bomb.zip": ("refused", "zip_bomb"),
    }
    reasons = [r.reason for r in results if r.status == "refused"]
    assert len(set(reasons)) == len(reasons)
    assert Instance.objects.count() == 2
    assert [
        row for row in Instance.objects.values_list("pk", "sha256", "file") if row[0] == first.instance_id
    ] == before
    with default_storage.open(Instance.objects.get(pk=first.instance_id).file.name, "rb") as fp:
        assert fp.read() == original_bytes


def deflated(ds) -> bytes:
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    return f.to_bytes(ds)


def test_deflated_image_is_stored_with_its_pixel_data_found(physician):
    from pydicom.data import get_testdata_file

    result = ingest_file(get_testdata_file("image_dfl.dcm"), filename="image_dfl.dcm", user=physician)

    assert result.status == "stored", result
    assert Instance.objects.get().has_pixel_data is True


def test_deflate_bomb_is_refused(physician, monkeypatch):
    from studies.ingest import structure

    monkeypatch.setattr(structure, "MAX_INFLATED_SIZE", 1024 * 1024)
    ds = f.dataset()
    ds.add_new(0x00091002, "LO", "PRIVATE CREATOR")
    ds.add_new(0x00091010, "OB", bytes(4 * 1024 * 1024))
    result = refuse(deflated(ds), physician)

    assert result.code == "too_large"
    assert "deflated" in result.reason


def test_truncated_deflated_file_is_refused(physician):
    data = deflated(f.dataset(rows=64, columns=64))
    result = refuse(data[: len(data) - 200], physician)

    assert result.code in {"truncated", "corrupt"}

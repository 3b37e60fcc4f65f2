"""De-identified copies: the basic profile table applied row by row, and the download route."""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, generate_uid

from studies import deid
from studies.ingest import ingest_file
from studies.models import AccessEvent, Study
from studies.permissions import grant_access
from tests.studies import dicom_factory as f

SECRET_UID = "1.2.826.0.1.3680043.10.999.2"

SAMPLE_BY_VR = {
    "PN": "Secret^Person",
    "DA": "20200304",
    "TM": "121314",
    "DT": "20200304121314",
    "AS": "045Y",
    "IS": "7",
    "DS": "7.5",
    "UI": "1.2.826.0.1.3680043.10.999.1",
    "CS": "SECRET",
    "AE": "SECRETAE",
    "US": 7,
    "SS": 7,
    "UL": 7,
    "FD": 7.0,
    "FL": 7.0,
    "OB": b"secret",
    "UN": b"secret",
    "UT": "Secret text",
    "LT": "Secret text",
    "ST": "Secret text",
}


def _secret_item() -> Dataset:
    item = Dataset()
    item.PersonName = "Secret^Nested"
    item.PatientID = "SECRET-ID"
    item.ReferencedSOPInstanceUID = SECRET_UID
    return item


def sample(keyword: str):
    vr = dictionary_VR(tag_for_keyword(keyword)).split(" or ")[0]
    if vr == "SQ":
        return Sequence([_secret_item()])
    if keyword in ("OtherPatientIDs",):
        return "SECRET"
    return SAMPLE_BY_VR.get(vr, "SECRET")


def full_dataset() -> Dataset:
    """A CT instance carrying every attribute of the profile table, each with an identifying value."""
    ds = f.dataset()
    for keyword in deid.BASIC_PROFILE:
        setattr(ds, keyword, sample(keyword))
    ds.SOPClassUID = CTImageStorage
    return ds


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def test_every_table_row_names_a_dicom_attribute_and_a_known_action():
    assert len(deid.BASIC_PROFILE) > 200
    for keyword, action in deid.BASIC_PROFILE.items():
        assert tag_for_keyword(keyword) is not None, keyword
        assert {part.rstrip("*") for part in action.split("/")} <= {"X", "Z", "D", "U"}, keyword


@pytest.mark.parametrize("keyword", sorted(deid.BASIC_PROFILE))
def test_each_profile_row_is_applied(keyword):
    ds = full_dataset()
    original = ds[keyword].value
    result = deid.deidentify(ds, deid.UIDMap())
    action = deid.resolve(deid.BASIC_PROFILE[keyword])
    if tag_for_keyword(keyword) >> 16 == 0:
        action = "X"  # command elements never stay in a stored data set
    if action == "X":
        assert keyword not in result
    elif action == "Z":
        assert keyword in result
        assert result[keyword].is_empty
    elif isinstance(result[keyword].value, Sequence):  # U or D: the items are cleaned
        (item,) = result[keyword].value
        assert "PatientID" in item and item["PatientID"].is_empty
        assert str(item.PersonName) == "ANONYMOUS"
        assert item.ReferencedSOPInstanceUID != SECRET_UID
    else:  # U or D on a value
        assert keyword in result
        assert str(result[keyword].value) != str(original)
    # The result still encodes as a valid file.
    assert pydicom.dcmread(io.BytesIO(deid.to_bytes(result)))


def test_rules_reach_into_sequences_and_private_tags_go():
    ds = f.dataset()
    item = Dataset()
    item.PatientName = "Secret^Inside"
    item.InstitutionName = "Secret Hospital"
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    item.ReferencedSOPClassUID = CTImageStorage
    block = item.private_block(0x0029, "ACME", create=True)
    block.add_new(0x01, "LO", "secret in a private tag")
    ds.ReferencedImageSequence = Sequence([item])
    ds.add_new(0x00091010, "LO", "private top level")
    ds.add_new(0x60003000, "OW", b"\0\1" * 8)
    ds.add_new(0x60004000, "LT", "overlay comment")

    sop_uid = ds.SOPInstanceUID
    result = deid.deidentify(ds, deid.UIDMap())
    inner = result.ReferencedImageSequence[0]
    assert inner["PatientName"].is_empty
    assert inner["InstitutionName"].is_empty
    assert inner.ReferencedSOPInstanceUID == result.SOPInstanceUID != sop_uid
    assert inner.ReferencedSOPClassUID == CTImageStorage
    assert not any(element.tag.is_private for element in result.iterall())
    assert 0x60003000 not in result and 0x60004000 not in result


def test_identity_removed_and_method_recorded():
    result = deid.deidentify(f.dataset(), deid.UIDMap())
    assert result.PatientIdentityRemoved == "YES"
    assert "Basic Application Confidentiality Profile" in result.DeidentificationMethod
    (code,) = result.DeidentificationMethodCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
        "113100",
        "DCM",
        "Basic Application Confidentiality Profile",
    )
    assert result.file_meta.MediaStorageSOPInstanceUID == result.SOPInstanceUID


def test_uids_are_replaced_consistently_within_one_copy_and_not_across_copies():
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    first = f.dataset(StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, FrameOfReferenceUID=frame_uid)
    second = f.dataset(StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, FrameOfReferenceUID=frame_uid)
    uids = deid.UIDMap()
    a, b = deid.deidentify(first, uids), deid.deidentify(second, uids)
    assert a.StudyInstanceUID == b.StudyInstanceUID != study_uid
    assert a.SeriesInstanceUID == b.SeriesInstanceUID != series_uid
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID != frame_uid
    assert a.SOPInstanceUID != b.SOPInstanceUID
    other = deid.deidentify(f.dataset(StudyInstanceUID=study_uid), deid.UIDMap())
    assert other.StudyInstanceUID != a.StudyInstanceUID


def test_registered_uids_are_kept():
    uids = deid.UIDMap()
    assert uids(CTImageStorage) == CTImageStorage
    assert uids("1.2.840.10008.1.2.1") == "1.2.840.10008.1.2.1"


# --- The download route -----------------------------------------------------------------------


def _store(user, **attrs) -> Study:
    data = f.make_ct(**attrs)
    result = ingest_file(SimpleUploadedFile("x.dcm", data), filename="x.dcm", user=user)
    assert result.status == "stored", result.reason
    return Study.objects.get(study_instance_uid=result.study_instance_uid)


def _zip(response) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


@pytest.fixture
def study(physician):
    study_uid = generate_uid()
    _store(physician, StudyInstanceUID=study_uid, PatientName="Secret^Patient", PatientID="SECRET-7")
    _store(physician, StudyInstanceUID=study_uid, BurnedInAnnotation="YES", InstanceNumber=2)
    return Study.objects.get(study_instance_uid=study_uid)


def url(study: Study, query: str = "") -> str:
    return f"/studies/{study.study_instance_uid}/deidentified.zip{query}"


def test_physician_downloads_a_copy_without_the_burned_in_file_and_the_readme_says_why(client, physician, study):
    client.force_login(physician)
    response = client.get(url(study))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    archive = _zip(response)
    dicoms = [n for n in archive.namelist() if n.endswith(".dcm")]
    assert len(dicoms) == 1
    ds = pydicom.dcmread(io.BytesIO(archive.read(dicoms[0])))
    assert ds.PatientName == "" and ds.PatientID == ""
    assert ds.StudyInstanceUID != study.study_instance_uid
    assert ds.PatientIdentityRemoved == "YES"
    readme = archive.read("README.txt").decode()
    assert "BurnedInAnnotation is YES" in readme and "left out" in readme
    everything = b"".join(archive.read(n) for n in archive.namelist())
    assert b"Secret" not in everything and b"SECRET-7" not in everything
    event = AccessEvent.objects.get(action=AccessEvent.Action.DOWNLOAD)
    assert event.study == study and event.user == physician and event.object_id == "deidentified"


def test_burned_in_files_are_included_when_the_user_insists(client, physician, study):
    client.force_login(physician)
    archive = _zip(client.get(url(study, "?include_burned_in=1")))
    dicoms = [n for n in archive.namelist() if n.endswith(".dcm")]
    assert len(dicoms) == 2
    studies = {pydicom.dcmread(io.BytesIO(archive.read(n))).StudyInstanceUID for n in dicoms}
    assert len(studies) == 1 and study.study_instance_uid not in studies
    assert "INCLUDED" in archive.read("README.txt").decode()
    assert AccessEvent.objects.get().object_id == "deidentified+burned-in"


def test_specialist_with_access_downloads_a_copy(client, specialist, physician, study):
    grant_access(user=specialist, study=study, reason="consult", source="1")
    client.force_login(specialist)
    assert client.get(url(study)).status_code == 200


def test_outsider_gets_404_for_deidentified_copy(client, outsider, study):
    client.force_login(outsider)
    assert client.get(url(study)).status_code == 404
    assert not AccessEvent.objects.exists()


def test_patient_is_refused_a_deidentified_copy_of_their_own_study(client, patient_user, study):
    study.patient.account = patient_user
    study.patient.save()
    client.force_login(patient_user)
    assert client.get(url(study)).status_code == 403


def test_other_patient_gets_404_for_deidentified_copy(client, patient_user, study):
    client.force_login(patient_user)
    assert client.get(url(study)).status_code == 404


def test_anonymous_is_sent_to_sign_in(client, study):
    response = client.get(url(study))
    assert response.status_code == 302


def test_study_page_offers_the_copy_to_clinicians_only(client, physician, patient_user, study):
    client.force_login(physician)
    assert url(study) in client.get(f"/studies/{study.study_instance_uid}/").content.decode()
    study.patient.account = patient_user
    study.patient.save()
    client.force_login(patient_user)
    assert url(study) not in client.get(f"/studies/{study.study_instance_uid}/").content.decode()


def test_api_client_downloads_the_copy_and_the_access_is_recorded(auth_client, physician, study):
    response = auth_client(physician).get(f"/api/v1/studies/{study.study_instance_uid}/deidentified/")
    assert response.status_code == 200
    assert len([n for n in _zip(response).namelist() if n.endswith(".dcm")]) == 1
    assert AccessEvent.objects.get().object_id == "deidentified"


def test_api_outsider_gets_404_and_patient_403(auth_client, outsider, patient_user, study):
    api = f"/api/v1/studies/{study.study_instance_uid}/deidentified/"
    assert auth_client(outsider).get(api).status_code == 404
    study.patient.account = patient_user
    study.patient.save()
    assert auth_client(patient_user).get(api).status_code == 403
    assert not AccessEvent.objects.exists()


def test_a_file_that_cannot_be_rewritten_is_left_out_and_listed(client, physician, study, monkeypatch):
    real = deid.to_bytes
    calls = []

    def fail_first(ds):
        calls.append(ds)
        if len(calls) == 1:
            raise ValueError("cannot encode")
        return real(ds)

    monkeypatch.setattr(deid, "to_bytes", fail_first)
    client.force_login(physician)
    archive = _zip(client.get(url(study, "?include_burned_in=1")))
    assert len([n for n in archive.namelist() if n.endswith(".dcm")]) == 1
    assert "could not be de-identified" in archive.read("README.txt").decode()

"""De-identified copies: every row of PS3.15 Table E.1-1 applied, at the top level and inside
nested sequence items, and the download route."""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID, CTImageStorage, generate_uid

from studies import deid
from studies.ingest import ingest_file
from studies.models import AccessEvent, Study
from studies.permissions import grant_access
from tests.studies import dicom_factory as f

SECRET_UID = "1.2.826.0.1.3680043.10.999.2"

# Table E.1-1 as the dicom-anonymizer package ships it, each category with the action it resolves
# to under the rule studies/deid.py documents: U over Z over D, X alone stays X.
TABLE = dicom_anonymization_database_selector("dicomfields_2026c")
RESOLVED = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z",
    "X_Z_TAGS": "Z",
    "X_D_TAGS": "D",
    "X_Z_D_TAGS": "Z",
    "X_Z_U_STAR_TAGS": "U",
}
# A sequence the table allows to remove is removed (its items may hold what no row reaches), and
# the module's stricter overrides apply.
OPTIONAL_REMOVAL = {"X_Z_TAGS", "X_D_TAGS", "X_Z_D_TAGS"}


def expected_action(category: str, row: tuple[int, ...]) -> str:
    tag = (row[0] << 16) | row[1]
    if tag in deid.LOCAL_OVERRIDES:
        return deid.LOCAL_OVERRIDES[tag]
    if category in OPTIONAL_REMOVAL and len(row) == 2 and deid.dictionary_vr(tag) == "SQ":
        return "X"
    return RESOLVED[category]


ROWS = [(tuple(row), expected_action(category, tuple(row))) for category in RESOLVED for row in TABLE[category]]
LOCAL_ROWS = [((tag >> 16, tag & 0xFFFF), action) for tag, action in deid.LOCAL_ADDITIONS.items()]

SAMPLE_BY_VR = {
    "AE": "SECRETAE",
    "AS": "045Y",
    "CS": "SECRET",
    "DA": "20200304",
    "DS": "7.5",
    "DT": "20200304121314",
    "IS": "7",
    "LO": "Secret Person",
    "LT": "Secret text",
    "PN": "Secret^Person",
    "SH": "Secret",
    "ST": "Secret text",
    "TM": "121314",
    "UC": "Secret text",
    "UI": SECRET_UID,
    "UR": "https://example.org/secret",
    "UT": "Secret text",
    "US": 7,
    "OB": b"secret",
    "UN": b"secret",
}


def concrete_tag(row: tuple[int, ...]) -> BaseTag:
    """The tag of a row; for a repeating group row, one member of the group."""
    if len(row) == 2:
        return Tag(*row)
    group, element, _, element_mask = row
    return Tag(group + 2, element if element_mask else 0x3000)  # (5002,3000), (6002,3000), (6002,4000)


def vr_for(tag: BaseTag) -> str:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"  # newer than pydicom's dictionary: how a reader of an implicit VR file sees it
    return vr.split(" or ")[0]


def row_id(row: tuple[int, ...]) -> str:
    tag = concrete_tag(row)
    if len(row) == 4:
        return f"({row[0]:04X},{row[1]:04X})-repeating"
    return f"({tag.group:04X},{tag.element:04X})-{keyword_for_tag(tag) or 'unknown'}"


def _secret_item() -> Dataset:
    item = Dataset()
    item.PatientName = "Secret^Nested"
    item.ReferencedSOPClassUID = CTImageStorage
    item.ReferencedSOPInstanceUID = SECRET_UID
    return item


def sample(tag: BaseTag):
    vr = vr_for(tag)
    return Sequence([_secret_item()]) if vr == "SQ" else SAMPLE_BY_VR[vr]


def with_attribute(tag: BaseTag, *, nested: bool) -> Dataset:
    """A small instance carrying ``tag`` with an identifying value, at the top level or in an item
    two sequences down (sequences the table does not list)."""
    ds = f.base_dataset(CTImageStorage, media_storage=True)
    if tag.group == 0x0002:
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = SECRET_UID
        return ds
    target = ds
    if nested:
        target, outer = Dataset(), Dataset()
        outer.ReferencedInstanceSequence = Sequence([target])
        ds.ReferencedSeriesSequence = Sequence([outer])
    target.add_new(tag, vr_for(tag), sample(tag))
    return ds


def copied(tag: BaseTag, *, nested: bool, uids: deid.UIDMap) -> Dataset:
    """Where ``tag`` lives in the de-identified file, written and read back."""
    ds = pydicom.dcmread(io.BytesIO(deid.to_bytes(deid.deidentify(with_attribute(tag, nested=nested), uids))))
    if tag.group == 0x0002:
        return ds.file_meta
    return ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0] if nested else ds


def test_the_action_table_is_the_whole_of_table_e11():
    assert len(ROWS) == len(TABLE["ALL_TAGS"]) == len(deid.PROFILE_TABLE) > 600
    for row, action in ROWS:
        assert deid.action_for(concrete_tag(row)) == action, row_id(row)
    for tag in deid.LOCAL_ADDITIONS:
        assert (tag >> 16, tag & 0xFFFF) not in deid.PROFILE_TABLE  # an addition, never an override


@pytest.mark.parametrize(
    ("row", "action", "nested"),
    [
        pytest.param(row, action, nested, id=f"{row_id(row)}-{'nested' if nested else 'top'}")
        for row, action in ROWS + LOCAL_ROWS
        for nested in (False, True)
        if not (nested and row[0] == 0x0002)  # file meta information is never inside an item
    ],
)
def test_each_table_row_is_applied(row, action, nested):
    tag = concrete_tag(row)
    if tag.group == 0x0000:
        action = "X"  # command elements never stay in a stored file, whatever the table says
    uids = deid.UIDMap()
    first = copied(tag, nested=nested, uids=uids)
    second = copied(tag, nested=nested, uids=uids)  # a second file of the same copy
    if action == "X":
        assert tag not in first
        return
    assert tag in first
    element = first[tag]
    if action == "Z":
        assert element.is_empty
    elif element.VR == "SQ":  # D or U: the sequence stays, its item cleaned
        (item,) = element.value
        assert item["PatientName"].is_empty
        assert item.ReferencedSOPClassUID == CTImageStorage
        assert item.ReferencedSOPInstanceUID == second[tag].value[0].ReferencedSOPInstanceUID != SECRET_UID
    else:  # D or U on a value: replaced, never emptied
        original = SECRET_UID if tag.group == 0x0002 else sample(tag)
        assert not element.is_empty
        assert str(element.value) != str(original)
        if action == "U":
            assert UID(element.value).is_valid
            assert element.value == second[tag].value  # the same original, the same replacement


def test_structured_report_content_is_kept_with_its_values_replaced():
    ds = f.base_dataset(f.BASIC_TEXT_SR)
    text, name, code = Dataset(), Dataset(), Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "121106", "DCM", "Comment"
    text.ValueType, text.ConceptNameCodeSequence, text.TextValue = "TEXT", [code], "Seen by Secret^Person"
    name.ValueType, name.ConceptNameCodeSequence, name.PersonName = "PNAME", [code], "Secret^Person"
    ds.ContentSequence = Sequence([text, name])
    result = deid.deidentify(ds, deid.UIDMap())
    kept_text, kept_name = result.ContentSequence
    assert (kept_text.ValueType, kept_text.TextValue) == ("TEXT", "ANONYMOUS")
    assert (kept_name.ValueType, str(kept_name.PersonName)) == ("PNAME", "ANONYMOUS")
    assert kept_text.ConceptNameCodeSequence[0].CodeValue == "121106"


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
    _store(
        physician,
        StudyInstanceUID=study_uid,
        PatientName="Secret^Patient",
        PatientID="SECRET-7",
        BurnedInAnnotation="YES",
        InstanceNumber=2,
    )
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


def test_operator_ids_local_codes_urls_and_unknown_attributes_do_not_survive():
    ds = f.dataset()
    person_code = Dataset()
    person_code.CodeValue, person_code.CodingSchemeDesignator = "EMP-778899", "99HOSP"
    person_code.CodeMeaning = "Tech Tina Smith"
    operator = Dataset()
    operator.PersonIdentificationCodeSequence = Sequence([person_code])
    ds.OperatorIdentificationSequence = Sequence([operator])
    ds.PersonIdentificationCodeSequence = Sequence([person_code])
    ds.RetrieveURL = f"https://pacs.example.org/wado/studies/{ds.StudyInstanceUID}"
    ds.add_new(0x0040E010, "UR", f"https://pacs.example.org/rs/studies/{ds.StudyInstanceUID}")
    ds.add_new(0x00109999, "LO", "UNKNOWN PUBLIC DOE")  # a public tag no dictionary knows
    local, standard, concept = Dataset(), Dataset(), Dataset()
    local.CodeValue, local.CodingSchemeDesignator, local.CodeMeaning = "LOCALX9", "99LOCAL", "Seen at St Mary's"
    standard.CodeValue, standard.CodingSchemeDesignator, standard.CodeMeaning = "121106", "DCM", "Comment"
    concept.ValueType, concept.ConceptNameCodeSequence, concept.ConceptCodeSequence = "CODE", [standard], [local]
    ds.ContentSequence = Sequence([concept])
    study_uid = ds.StudyInstanceUID

    result = deid.to_bytes(deid.deidentify(ds, deid.UIDMap()))

    for secret in (b"EMP-778899", b"Tina", b"pacs.example.org", study_uid.encode(), b"UNKNOWN PUBLIC", b"St Mary"):
        assert secret not in result, secret
    copy = pydicom.dcmread(io.BytesIO(result))
    item = copy.ContentSequence[0]
    assert item.ConceptNameCodeSequence[0].CodeValue == "121106"  # standard codes keep the report's structure
    assert item.ConceptCodeSequence[0].CodeMeaning == "ANONYMOUS"


def test_a_modality_with_path_characters_cannot_make_zip_entries_climb_out(client, physician, study):
    from studies.models import Series

    Series.objects.filter(study=study).update(modality="/../../../etc")
    client.force_login(physician)
    for path in (url(study), f"/studies/{study.study_instance_uid}/download/"):
        response = client.get(path)
        assert response.status_code == 200, path
        names = _zip(response).namelist()
        assert names and all(".." not in name.split("/") and not name.startswith("/") for name in names), names
        assert any("series-" in name and "_etc" in name for name in names), names

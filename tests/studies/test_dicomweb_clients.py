"""What DICOMweb clients nobody here wrote send and expect (Orthanc's DICOMweb plugin, dicomweb-client
and its CLI, OHIF's JavaScript client, dcmtk): long multipart boundaries, Bearer tokens, repeated
QIDO keys, person names with ideographic and phonetic groups, icons beside the pixel data, the
fuzzymatching warning, trailing slashes; and a study that keeps to one patient."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
from django.test import Client
from pydicom.dataset import Dataset
from rest_framework.authtoken.models import Token

from studies.admin import merge_patient
from studies.ingest import ingest_file
from studies.models import AccessGrant, Instance, Patient, Study
from studies.permissions import grant_access
from tests.studies.test_dicomweb_helpers import (
    BASE,
    DjangoTestAdapter,
    dicomweb_client_for,
    make_dataset,
    store,
    store_dataset,
    to_bytes,
    token_client,
    token_for,
)

pytestmark = pytest.mark.django_db

DICOM_JSON = "application/dicom+json"
# What Orthanc writes: two UUIDs, 73 characters, over RFC 2046's 70 for senders.
ORTHANC_BOUNDARY = f"{uuid.uuid4()}-{uuid.uuid4()}"
MAX_BOUNDARY = 200  # studies.dicomweb.multipart.MAX_BOUNDARY
JAPANESE = "Yamada^Tarou=山田^太郎=やまだ^たろう"


def value(dataset: dict, tag: str):
    values = dataset.get(tag, {}).get("Value")
    return values[0] if values else None


def uids(answer) -> set[str]:
    return {value(study, "0020000D") for study in answer.json()}


def multipart(*parts: bytes, boundary: str) -> bytes:
    body = b""
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def stow(client: Client, *parts: bytes, boundary: str = "b0undary", path: str = "/dicomweb/studies"):
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return client.generic("POST", path, multipart(*parts, boundary=boundary), content_type=content_type)


def bearer_client(user) -> Client:
    return Client(headers={"Authorization": f"Bearer {token_for(user)}"})


# --- STOW-RS boundaries ------------------------------------------------------------------------


def test_orthanc_boundary_of_73_characters_is_accepted(physician):
    ds = make_dataset()
    answer = stow(token_client(physician), to_bytes(ds), boundary=ORTHANC_BOUNDARY)
    assert answer.status_code == 200, answer.content
    assert Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists()


def test_boundary_of_the_largest_accepted_length_is_accepted(physician):
    answer = stow(token_client(physician), to_bytes(make_dataset()), boundary="b" * MAX_BOUNDARY)
    assert answer.status_code == 200, answer.content


def test_absurdly_long_boundary_is_a_clear_400(physician):
    answer = stow(token_client(physician), to_bytes(make_dataset()), boundary="b" * (MAX_BOUNDARY + 1))
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert "boundary" in detail and str(MAX_BOUNDARY + 1) in detail and str(MAX_BOUNDARY) in detail
    assert not Instance.objects.exists()


# --- Bearer tokens -----------------------------------------------------------------------------


def test_bearer_token_authenticates_the_rest_api_as_token_does(physician):
    answer = bearer_client(physician).get("/api/v1/me/")
    assert answer.status_code == 200, answer.content
    assert answer.json()["email"] == physician.email
    assert token_client(physician).get("/api/v1/me/").status_code == 200


def test_rest_api_401_challenges_with_bearer():
    answer = Client().get("/api/v1/me/")
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"].startswith("Bearer")


def test_unknown_bearer_token_is_401_on_the_api_and_dicomweb(db):
    client = Client(headers={"Authorization": "Bearer not-a-token"})
    assert client.get("/api/v1/me/").status_code == 401
    answer = client.get("/dicomweb/studies")
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"].startswith("Bearer")


def test_dicomweb_client_with_a_bearer_session_searches_and_stores(physician):
    session = requests.Session()
    session.mount("http://testserver", DjangoTestAdapter(Client()))
    session.headers["Authorization"] = f"Bearer {token_for(physician)}"
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=BASE, session=session)
    ds = make_dataset()
    answer = client.store_instances([ds])
    assert answer.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    found = client.search_for_studies(search_filters={"StudyInstanceUID": ds.StudyInstanceUID})
    assert [value(s, "0020000D") for s in found] == [ds.StudyInstanceUID]


def test_dicomweb_401_challenges_with_bearer():
    answer = Client().get("/dicomweb/studies")
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"] == 'Bearer realm="dicomweb"'


# --- QIDO-RS: repeated keys are list matching ---------------------------------------------------


@pytest.fixture
def three_studies(physician):
    """A CT of PID-1, an MR of PID-2 and a US of PID-3, all of the same practice."""
    ct = store_dataset(physician)
    mr = store_dataset(physician, PatientID="PID-2", PatientName="Smith^John", Modality="MR", AccessionNumber="A2")
    us = store_dataset(physician, PatientID="PID-3", PatientName="Brown^Anna", Modality="US", AccessionNumber="A3")
    return ct, mr, us


def test_repeated_modalities_in_study_match_any_of_them_as_dicomweb_client_sends_them(physician, three_studies):
    ct, mr, _us = three_studies
    found = dicomweb_client_for(physician).search_for_studies(search_filters={"ModalitiesInStudy": ["CT", "MR"]})
    assert {value(s, "0020000D") for s in found} == {ct.StudyInstanceUID, mr.StudyInstanceUID}


def test_repeated_keys_match_any_value_for_ids_uids_modality_and_names(physician, three_studies):
    ct, mr, us = three_studies
    client = token_client(physician)
    assert uids(client.get("/dicomweb/studies?PatientID=PID-1&PatientID=PID-3")) == {
        ct.StudyInstanceUID,
        us.StudyInstanceUID,
    }
    answer = client.get(f"/dicomweb/studies?StudyInstanceUID={ct.StudyInstanceUID}&0020000D={mr.StudyInstanceUID}")
    assert uids(answer) == {ct.StudyInstanceUID, mr.StudyInstanceUID}
    assert uids(client.get("/dicomweb/studies?PatientName=smith*&PatientName=brown^anna")) == {
        mr.StudyInstanceUID,
        us.StudyInstanceUID,
    }
    series = client.get("/dicomweb/series?Modality=US&Modality=CT").json()
    assert {value(s, "0020000D") for s in series} == {ct.StudyInstanceUID, us.StudyInstanceUID}
    # A universal value among them matches everything.
    assert len(uids(client.get("/dicomweb/studies?PatientID=PID-1&PatientID=*"))) == 3


def test_repeated_names_through_a_users_grants_match_any_value(physician, colleague, three_studies):
    ct, mr, us = three_studies
    for ds in (ct, mr, us):
        study = Study.objects.get(study_instance_uid=ds.StudyInstanceUID)
        grant_access(user=colleague, study=study, reason=AccessGrant.Reason.SHARED, granted_by=physician)
    client = token_client(colleague)
    answer = client.get("/dicomweb/studies?PatientName=doe*&PatientName=*anna&PatientID=PID-1&PatientID=PID-3")
    assert uids(answer) == {ct.StudyInstanceUID, us.StudyInstanceUID}


@pytest.mark.parametrize(
    "query, named",
    [
        ("StudyDate=20240315&StudyDate=20230101", "StudyDate"),
        ("StudyTime=1000-1100&00080030=1200", "StudyTime"),
        ("limit=1&limit=2", "limit"),
        ("offset=0&offset=1", "offset"),
        ("fuzzymatching=true&fuzzymatching=false", "fuzzymatching"),
    ],
)
def test_repeated_keys_that_take_one_value_are_a_clear_400(physician, three_studies, query, named):
    answer = token_client(physician).get(f"/dicomweb/studies?{query}")
    assert answer.status_code == 400
    assert named in answer.json()["detail"] and "given 2 times" in answer.json()["detail"]


# --- One patient per study ---------------------------------------------------------------------


def failures(answer) -> list[dict]:
    return answer.json().get("00081198", {}).get("Value", [])


def test_stow_of_an_instance_naming_another_patient_into_a_stored_study_is_refused(physician):
    first = store_dataset(physician)
    other = make_dataset(
        PatientID="PID-OTHER",
        PatientName="Other^Person",
        StudyInstanceUID=first.StudyInstanceUID,
        SeriesInstanceUID=first.SeriesInstanceUID,
    )
    answer = stow(token_client(physician), to_bytes(other))
    assert answer.status_code == 409
    (failed,) = failures(answer)
    assert value(failed, "00081155") == other.SOPInstanceUID
    assert value(failed, "00081197") == 0xA900
    reason = value(failed, "0040A160")
    assert "PatientID PID-OTHER" in reason and "PatientID PID-1" in reason and first.StudyInstanceUID in reason
    assert not Instance.objects.filter(sop_instance_uid=other.SOPInstanceUID).exists()
    assert not Patient.objects.filter(patient_id="PID-OTHER").exists()
    # Nothing is filed where a search by the file's own PatientID would miss it.
    assert token_client(physician).get("/dicomweb/instances?PatientID=PID-OTHER").json() == []


def test_another_issuer_of_the_same_patient_id_is_refused_too(physician):
    first = store_dataset(physician, IssuerOfPatientID="HOSPITAL-A")
    other = make_dataset(IssuerOfPatientID="HOSPITAL-B", StudyInstanceUID=first.StudyInstanceUID)
    answer = stow(token_client(physician), to_bytes(other))
    assert answer.status_code == 409
    assert "issuer HOSPITAL-B" in value(failures(answer)[0], "0040A160")


def test_a_new_study_keeps_the_patient_of_its_first_file_in_one_request(physician):
    first = make_dataset()
    second = make_dataset(PatientID="PID-9", StudyInstanceUID=first.StudyInstanceUID)
    answer = stow(token_client(physician), to_bytes(first), to_bytes(second))
    assert answer.status_code == 202
    assert [value(i, "00081155") for i in answer.json()["00081199"]["Value"]] == [first.SOPInstanceUID]
    (failed,) = failures(answer)
    assert value(failed, "00081155") == second.SOPInstanceUID
    assert "PatientID PID-9" in value(failed, "0040A160")
    assert Study.objects.get(study_instance_uid=first.StudyInstanceUID).num_instances == 1


def test_upload_api_refuses_another_patient_with_the_reason(physician, auth_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    first = store_dataset(physician)
    other = make_dataset(PatientID="PID-7", StudyInstanceUID=first.StudyInstanceUID)
    upload = SimpleUploadedFile("other.dcm", to_bytes(other), content_type="application/dicom")
    answer = auth_client(physician).post("/api/v1/uploads/", {"files": [upload]}, format="multipart")
    assert answer.status_code == 400
    (result,) = answer.json()["results"]
    assert result["code"] == "patient_mismatch"
    assert "PatientID PID-7" in result["reason"] and "a study has one patient" in result["reason"]


def test_files_of_a_record_merged_into_the_studys_patient_are_accepted_and_others_refused(physician):
    kept = store_dataset(physician)
    merged = store_dataset(physician, PatientID="OLD-ID")
    records = {p.patient_id: p for p in Patient.objects.all()}
    merge_patient(records["OLD-ID"], into=records["PID-1"], by=None)

    def ingest(**attrs):
        return ingest_file(io.BytesIO(to_bytes(make_dataset(**attrs))), filename="late.dcm", user=physician)

    # A report exported into the moved study copies the PatientID of its first instance.
    assert ingest(PatientID="OLD-ID", StudyInstanceUID=merged.StudyInstanceUID).status == "stored"
    assert ingest(StudyInstanceUID=kept.StudyInstanceUID).status == "stored"
    refused = ingest(PatientID="PID-5", StudyInstanceUID=merged.StudyInstanceUID)
    assert (refused.status, refused.code) == ("refused", "patient_mismatch")
    assert "PatientID PID-1" in refused.reason


# --- Icons beside the pixel data ---------------------------------------------------------------


def with_icon(ds: Dataset, size: int = 64) -> bytes:
    """``ds`` with an IconImageSequence whose 8-bit icon is larger than what headers keep inline."""
    icon = Dataset()
    icon.Rows = icon.Columns = size
    icon.SamplesPerPixel = 1
    icon.PhotometricInterpretation = "MONOCHROME2"
    icon.BitsAllocated = icon.BitsStored = 8
    icon.HighBit = 7
    icon.PixelRepresentation = 0
    icon.PixelData = (np.arange(size * size) % 251).astype(np.uint8).tobytes()
    ds.IconImageSequence = [icon]
    return icon.PixelData


def test_metadata_keeps_the_pixel_data_of_an_instance_with_an_icon(physician):
    ds = make_dataset(frames=2)
    icon_pixels = with_icon(ds)
    store(physician, to_bytes(ds))
    client = dicomweb_client_for(physician)
    metadata = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    instance_url = f"{BASE}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    assert metadata["7FE00010"]["BulkDataURI"] == f"{instance_url}/frames/1,2"
    icon = metadata["00880200"]["Value"][0]
    assert icon["7FE00010"]["BulkDataURI"] == f"{instance_url}/bulkdata/00880200/1/7FE00010"
    assert client.retrieve_bulkdata(icon["7FE00010"]["BulkDataURI"]) == [icon_pixels]
    frames = client.retrieve_instance_frames(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [2])
    assert frames == [ds.PixelData[len(ds.PixelData) // 2 :]]
    # Series metadata, as OHIF asks for it, says the same.
    (series,) = client.retrieve_series_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID)
    assert series["7FE00010"]["BulkDataURI"] == f"{instance_url}/frames/1,2"


def test_bulkdata_paths_that_lead_nowhere_are_404_or_400(physician):
    ds = make_dataset()
    with_icon(ds)
    store(physician, to_bytes(ds))
    instance = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    client = token_client(physician)
    assert client.get(f"{instance}/bulkdata/00880200/2/7FE00010").status_code == 404
    assert client.get(f"{instance}/bulkdata/00081140/1/7FE00010").status_code == 404
    bad = client.get(f"{instance}/bulkdata/00880200/x/7FE00010")
    assert bad.status_code == 400 and "path" in bad.json()["detail"]


# --- Person names with ideographic and phonetic groups ------------------------------------------


@pytest.fixture
def yamada(physician):
    ds = store_dataset(physician, SpecificCharacterSet="ISO_IR 192", PatientName=JAPANESE, PatientID="JP-1")
    store_dataset(physician, PatientName="Yamamoto^Hanako", PatientID="JP-2")
    return ds


def test_qido_answers_a_name_split_into_its_component_groups_and_matches_groups_whole(physician, yamada):
    client = dicomweb_client_for(physician)
    (study,) = client.search_for_studies(search_filters={"PatientID": "JP-1"})
    assert value(study, "00100010") == {
        "Alphabetic": "Yamada^Tarou",
        "Ideographic": "山田^太郎",
        "Phonetic": "やまだ^たろう",
    }
    for name in ("yamada*", "*たろう", "*まだ^た*", JAPANESE):  # as before: the whole name matches
        assert [value(s, "0020000D") for s in client.search_for_studies(search_filters={"PatientName": name})] == [
            yamada.StudyInstanceUID
        ], name
    for name in ("太郎*", "*山田", "Tarou", "山田", "yamada^tarou=山田"):  # a group matches whole, not across
        assert client.search_for_studies(search_filters={"PatientName": name}) == [], name


@pytest.mark.parametrize("name", ["山田*", "山田^太郎", "やまだ^たろう", "Yamada^Tarou", "*^太?", "山?^*"])
def test_qido_matches_a_name_on_each_of_its_groups(physician, colleague, yamada, name):
    study = Study.objects.get(study_instance_uid=yamada.StudyInstanceUID)
    grant_access(user=colleague, study=study, reason=AccessGrant.Reason.SHARED, granted_by=physician)
    for user in (physician, colleague):  # the practice's studies, and a walk of the colleague's grants
        found = dicomweb_client_for(user).search_for_studies(search_filters={"PatientName": name})
        assert [value(s, "0020000D") for s in found] == [yamada.StudyInstanceUID], (user, name)


# --- Smaller: fuzzymatching, CORS, trailing slashes ------------------------------------------------


FUZZY_TEXT = '"The fuzzymatching parameter is not supported. Only literal matching has been performed."'


def test_fuzzymatching_true_is_answered_with_the_299_warning(physician, three_studies):
    client = token_client(physician)
    answer = client.get("/dicomweb/studies?fuzzymatching=true&PatientName=doe*")
    assert answer.status_code == 200
    assert answer["Warning"].startswith("299 ") and FUZZY_TEXT in answer["Warning"]
    assert "Warning" not in client.get("/dicomweb/studies?fuzzymatching=false")
    bad = client.get("/dicomweb/studies?fuzzymatching=maybe")
    assert bad.status_code == 400 and "fuzzymatching" in bad.json()["detail"]


def test_cors_exposes_the_warning_header(physician, three_studies, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://viewer.example.org"]
    answer = Client(
        headers={"Authorization": f"Bearer {token_for(physician)}", "Origin": "https://viewer.example.org"}
    ).get("/dicomweb/studies?fuzzymatching=true")
    assert answer["Access-Control-Allow-Origin"] == "https://viewer.example.org"
    assert "warning" in answer["Access-Control-Expose-Headers"].lower()


def test_routes_answer_with_a_trailing_slash_too(physician, three_studies):
    ct, _mr, _us = three_studies
    client = dicomweb_client_for(physician)
    session = client._session
    studies = session.get(f"{BASE}/studies/", headers={"Accept": DICOM_JSON})
    assert studies.status_code == 200 and len(studies.json()) == 3
    series = f"{BASE}/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}"
    metadata = session.get(f"{series}/metadata/", headers={"Accept": DICOM_JSON})
    assert metadata.status_code == 200 and metadata.json()[0]["00080018"]["Value"] == [ct.SOPInstanceUID]
    assert session.get(f"{series}/instances/").json()[0]["00080018"]["Value"] == [ct.SOPInstanceUID]
    ds = make_dataset()
    assert stow(token_client(physician), to_bytes(ds), path="/dicomweb/studies/").status_code == 200


@pytest.mark.parametrize("path", ["/dicomweb/", "/dicomweb/nothing-here", "/dicomweb/studies/1.2.3/nothing/"])
def test_unknown_paths_under_dicomweb_are_json_404s(physician, path):
    answer = token_client(physician).get(path)
    assert answer.status_code == 404
    assert answer["Content-Type"] == "application/json"
    assert "detail" in answer.json()


# --- Real clients over real HTTP (daphne) -----------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_real_clients_through_daphne(live_server_url, live_user, tmp_path):
    """An Orthanc-length boundary split in front of Django, dicomweb-client's CLI with
    --bearer-token, and a trailing slash, over real HTTP."""
    user = live_user("physician", email="dicomweb-clients-live@example.com")
    key = Token.objects.create(user=user).key
    ds = make_dataset(PatientName=JAPANESE, SpecificCharacterSet="ISO_IR 192")
    answer = requests.post(
        f"{live_server_url}/dicomweb/studies/",
        data=multipart(to_bytes(ds), boundary=ORTHANC_BOUNDARY),
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={ORTHANC_BOUNDARY}',
        },
        timeout=60,
    )
    assert answer.status_code == 200, answer.text

    cli = Path(sys.executable).parent / "dicomweb_client"
    out = subprocess.run(
        [
            str(cli),
            "--url",
            f"{live_server_url}/dicomweb",
            "--bearer-token",
            key,
            "search",
            "studies",
            "--filter",
            "PatientName=山田*",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert out.returncode == 0, out.stderr
    assert ds.StudyInstanceUID in out.stdout

    missing = requests.get(
        f"{live_server_url}/dicomweb/nothing/", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/json"
    assert json.loads(missing.text)["detail"]

"""DICOMweb QIDO-RS and WADO-RS, through dicomweb-client where a client would call them."""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pytest
import requests
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file

from studies.models import AccessGrant, Instance, Patient, Study
from studies.permissions import grant_access
from tests.factories import practice_of
from tests.studies.test_dicomweb_helpers import (
    dicomweb_client_for,
    make_dataset,
    store,
    store_dataset,
    to_bytes,
    token_client,
    with_fresh_uid,
)

pytestmark = pytest.mark.django_db

DICOM_JSON = "application/dicom+json"


def value(dataset: dict, tag: str):
    values = dataset.get(tag, {}).get("Value")
    return values[0] if values else None


@pytest.fixture
def two_studies(physician):
    """Jane Doe's CT head (two instances) and John Smith's MR knee."""
    ct = store_dataset(physician)
    store_dataset(
        physician,
        StudyInstanceUID=ct.StudyInstanceUID,
        SeriesInstanceUID=ct.SeriesInstanceUID,
        InstanceNumber=2,
    )
    mr = store_dataset(
        physician,
        PatientID="PID-2",
        PatientName="Smith^John",
        StudyDate="20230601",
        StudyTime="153000",
        Modality="MR",
        AccessionNumber="ACC-2",
        StudyDescription="Knee MR",
    )
    return ct, mr


# --- QIDO-RS -----------------------------------------------------------------------------------


def test_client_searches_studies_with_the_standard_attributes(physician, two_studies):
    ct, mr = two_studies
    studies = dicomweb_client_for(physician).search_for_studies()
    assert {value(s, "0020000D") for s in studies} == {ct.StudyInstanceUID, mr.StudyInstanceUID}
    ct_json = next(s for s in studies if value(s, "0020000D") == ct.StudyInstanceUID)
    assert value(ct_json, "00100010") == {"Alphabetic": "Doe^Jane"}
    assert value(ct_json, "00100020") == "PID-1"
    assert value(ct_json, "00080020") == "20240315"
    assert value(ct_json, "00080061") == "CT"
    assert value(ct_json, "00201206") == 1
    assert value(ct_json, "00201208") == 2
    assert value(ct_json, "00081190") == f"http://testserver/dicomweb/studies/{ct.StudyInstanceUID}"
    for tag in ("00080030", "00080050", "00080090", "00100030", "00100040", "00200010"):
        assert tag in ct_json


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"PatientID": "PID-2"}, {"mr"}),
        ({"PatientName": "doe*"}, {"ct"}),
        ({"PatientName": "*SMITH*"}, {"mr"}),
        ({"PatientName": "D?e^jane"}, {"ct"}),
        ({"StudyDate": "20240101-20241231"}, {"ct"}),
        ({"StudyDate": "-20231231"}, {"mr"}),
        ({"StudyDate": "20230601-"}, {"ct", "mr"}),
        ({"StudyDate": "20230601"}, {"mr"}),
        ({"StudyTime": "1400-1600"}, {"mr"}),
        ({"StudyTime": "10"}, {"ct"}),
        ({"ModalitiesInStudy": "MR"}, {"mr"}),
        ({"ModalitiesInStudy": "CT,MR"}, {"ct", "mr"}),
        ({"AccessionNumber": "ACC-1"}, {"ct"}),
        ({"PatientID": "PID-1", "ModalitiesInStudy": "MR"}, set()),
        ({"fuzzymatching": "true", "PatientName": "smith*"}, {"mr"}),
    ],
)
def test_client_study_search_matches(physician, two_studies, filters, expected):
    ct, mr = two_studies
    names = {ct.StudyInstanceUID: "ct", mr.StudyInstanceUID: "mr"}
    fuzzy = filters.pop("fuzzymatching", None)
    studies = dicomweb_client_for(physician).search_for_studies(search_filters=filters, fuzzymatching=bool(fuzzy))
    assert {names[value(s, "0020000D")] for s in studies} == expected


def test_study_uid_lists_match_with_comma_or_backslash(physician, two_studies):
    ct, mr = two_studies
    for separator in (",", "\\"):
        answer = token_client(physician).get(
            "/dicomweb/studies", {"StudyInstanceUID": f"{ct.StudyInstanceUID}{separator}{mr.StudyInstanceUID}"}
        )
        assert answer.status_code == 200
        assert answer["Content-Type"] == DICOM_JSON
        assert len(answer.json()) == 2


def test_limit_offset_and_includefield(physician, two_studies):
    client = dicomweb_client_for(physician)
    first = client.search_for_studies(limit=1)
    second = client.search_for_studies(limit=1, offset=1)
    assert len(first) == len(second) == 1
    assert value(first[0], "0020000D") != value(second[0], "0020000D")
    # Extra study attributes come from the stored header of a first instance.
    studies = client.search_for_studies(fields=["InstitutionName", "00081030"], search_filters={"PatientID": "PID-1"})
    assert value(studies[0], "00080080") == "General Hospital"
    assert value(studies[0], "00081030") == "Head CT"
    answer = token_client(physician).get("/dicomweb/studies", {"includefield": "all", "PatientID": "PID-1"})
    assert value(answer.json()[0], "00080080") == "General Hospital"


def test_client_searches_series_and_instances(physician, two_studies):
    ct, mr = two_studies
    client = dicomweb_client_for(physician)
    series = client.search_for_series(ct.StudyInstanceUID)
    assert len(series) == 1
    assert value(series[0], "0020000E") == ct.SeriesInstanceUID
    assert value(series[0], "00080060") == "CT"
    assert value(series[0], "00201209") == 2
    assert value(series[0], "00081190").endswith(f"/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}")
    all_mr = client.search_for_series(search_filters={"Modality": "MR"})
    assert [value(s, "0020000E") for s in all_mr] == [mr.SeriesInstanceUID]
    assert value(all_mr[0], "00100020") == "PID-2"  # study attributes on a search across studies

    instances = client.search_for_instances(ct.StudyInstanceUID, ct.SeriesInstanceUID)
    assert [value(i, "00200013") for i in instances] == [1, 2]
    first = instances[0]
    assert value(first, "00080018") == ct.SOPInstanceUID
    assert value(first, "00080016") == ct.SOPClassUID
    assert value(first, "00280010") == 8 and value(first, "00280011") == 6
    assert value(first, "00280008") == 1
    assert value(first, "00081190").endswith(f"/instances/{ct.SOPInstanceUID}")
    one = client.search_for_instances(ct.StudyInstanceUID, search_filters={"SOPInstanceUID": ct.SOPInstanceUID})
    assert len(one) == 1
    with_header = client.search_for_instances(
        ct.StudyInstanceUID, ct.SeriesInstanceUID, fields=["InstitutionName", "00100010"]
    )
    assert value(with_header[0], "00080080") == "General Hospital"
    by_class = client.search_for_instances(search_filters={"SOPClassUID": ct.SOPClassUID, "InstanceNumber": "2"})
    assert len(by_class) == 1


def test_outsider_sees_no_studies_series_or_instances(outsider, two_studies):
    client = dicomweb_client_for(outsider)
    assert client.search_for_studies() == []
    assert client.search_for_series() == []
    assert client.search_for_instances() == []


def test_granted_colleague_and_linked_patient_see_the_study(physician, colleague, patient_user, two_studies):
    ct, _mr = two_studies
    study = Study.objects.get(study_instance_uid=ct.StudyInstanceUID)
    grant_access(user=colleague, study=study, reason=AccessGrant.Reason.SHARED, granted_by=physician)
    Patient.objects.filter(pk=study.patient_id).update(account=patient_user)
    for user in (colleague, patient_user):
        found = dicomweb_client_for(user).search_for_studies()
        assert [value(s, "0020000D") for s in found] == [ct.StudyInstanceUID]


@pytest.mark.parametrize(
    ("path", "params", "fragment"),
    [
        ("/dicomweb/studies", {"StudyDate": "notadate"}, "StudyDate"),
        ("/dicomweb/studies", {"StudyDate": "20240231"}, "StudyDate"),
        ("/dicomweb/studies", {"StudyDate": "2024-01-01-2024"}, "StudyDate"),
        ("/dicomweb/studies", {"StudyTime": "2561"}, "StudyTime"),
        ("/dicomweb/studies", {"limit": "-1"}, "limit"),
        ("/dicomweb/studies", {"limit": "ten"}, "limit"),
        ("/dicomweb/studies", {"offset": "-3"}, "offset"),
        ("/dicomweb/studies", {"includefield": "NoSuchKeyword"}, "includefield"),
        ("/dicomweb/studies", {"NotAnAttribute": "x"}, "NotAnAttribute"),
        ("/dicomweb/studies", {"StudyInstanceUID": "1.2.abc"}, "StudyInstanceUID"),
        ("/dicomweb/series", {"SeriesNumber": "one"}, "SeriesNumber"),
    ],
)
def test_bad_query_values_are_400_with_a_message(physician, path, params, fragment):
    answer = token_client(physician).get(path, params)
    assert answer.status_code == 400
    assert fragment in answer.json()["detail"]


def test_unsupported_matching_key_is_ignored_with_a_warning(physician, two_studies):
    answer = token_client(physician).get("/dicomweb/studies", {"PatientAge": "040Y"})
    assert answer.status_code == 200
    assert len(answer.json()) == 2
    assert "PatientAge" in answer["Warning"]


def make_rows(owner, start: int, stop: int) -> None:
    """Studies with one series and one instance each, written directly (fast) and granted to owner."""
    from studies.models import Series

    for n in range(start, stop):
        practice = practice_of(None)
        patient = Patient.objects.create(practice=practice, patient_id=f"Q{n}", name=f"Query^{n}")
        study = Study.objects.create(
            study_instance_uid=f"1.2.3.{n}",
            practice=practice,
            patient=patient,
            study_date=dt.date(2024, 1, 1 + n % 28),
            modalities="CT",
            num_series=1,
            num_instances=1,
        )
        series = Series.objects.create(series_instance_uid=f"1.2.3.{n}.1", study=study, modality="CT")
        Instance.objects.create(
            sop_instance_uid=f"1.2.3.{n}.1.1",
            series=series,
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            metadata={"00080080": {"vr": "LO", "Value": ["Hospital"]}},
        )
        AccessGrant.objects.create(user=owner, study=study, reason=AccessGrant.Reason.UPLOADER)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/dicomweb/studies", {}),
        ("/dicomweb/studies", {"PatientName": "query*", "ModalitiesInStudy": "CT", "includefield": "all"}),
        ("/dicomweb/studies", {"includefield": "InstitutionName", "StudyDate": "-20991231"}),
        ("/dicomweb/series", {"includefield": "all"}),
        ("/dicomweb/instances", {"includefield": "all"}),
    ],
)
def test_qido_query_count_does_not_grow_with_results(physician, path, params):
    client = token_client(physician)
    make_rows(physician, 0, 1)
    with CaptureQueriesContext(connection) as one:
        assert len(client.get(path, params).json()) == 1
    make_rows(physician, 1, 30)
    with CaptureQueriesContext(connection) as thirty:
        assert len(client.get(path, params).json()) == 30
    assert len(thirty) == len(one)
    # token and user, the user's practices, the page's keys (studies: per path of the visibility
    # rule, own records and practices one query, grants two), its rows (+ includefield's headers)
    assert len(thirty) <= 9


# --- WADO-RS -----------------------------------------------------------------------------------


def test_client_retrieves_study_series_and_instance(physician, two_studies):
    ct, _mr = two_studies
    client = dicomweb_client_for(physician)
    study = client.retrieve_study(ct.StudyInstanceUID)
    assert sorted(ds.InstanceNumber for ds in study) == [1, 2]
    series = client.retrieve_series(ct.StudyInstanceUID, ct.SeriesInstanceUID)
    assert len(series) == 2
    instance = client.retrieve_instance(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID)
    assert instance.SOPInstanceUID == ct.SOPInstanceUID
    assert instance.PixelData == ct.PixelData
    assert instance.preamble == b"\0" * 128


def test_retrieve_streams_multipart_with_each_transfer_syntax(physician, two_studies):
    ct, _mr = two_studies
    answer = token_client(physician).get(
        f"/dicomweb/studies/{ct.StudyInstanceUID}", headers={"Accept": 'multipart/related; type="application/dicom"'}
    )
    assert answer.status_code == 200
    assert answer.streaming
    assert answer["Content-Type"].startswith('multipart/related; type="application/dicom"; boundary=')
    body = b"".join(answer.streaming_content)
    assert body.count(b"Content-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1") == 2


def test_retrieve_refuses_a_transfer_syntax_it_would_have_to_transcode(physician, two_studies):
    ct, _mr = two_studies
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    answer = token_client(physician).get(f"/dicomweb/studies/{ct.StudyInstanceUID}", headers={"Accept": accept})
    assert answer.status_code == 406


def test_client_retrieves_metadata_with_pixel_data_as_bulk_data_uri(physician, two_studies):
    ct, _mr = two_studies
    client = dicomweb_client_for(physician)
    metadata = client.retrieve_series_metadata(ct.StudyInstanceUID, ct.SeriesInstanceUID)
    assert len(metadata) == 2
    first = next(m for m in metadata if value(m, "00080018") == ct.SOPInstanceUID)
    assert value(first, "00100010") == {"Alphabetic": "Doe^Jane"}
    uri = first["7FE00010"]["BulkDataURI"]
    assert uri.endswith(f"/instances/{ct.SOPInstanceUID}/frames/1")
    assert len(client.retrieve_study_metadata(ct.StudyInstanceUID)) == 2
    single = client.retrieve_instance_metadata(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID)
    assert value(single, "00080018") == ct.SOPInstanceUID


def test_client_retrieves_native_frames(physician):
    ds = store_dataset(physician, frames=3)
    client = dicomweb_client_for(physician)
    frames = client.retrieve_instance_frames(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [1, 3])
    size = 8 * 6 * 2
    assert frames == [ds.PixelData[:size], ds.PixelData[2 * size :]]


def test_frames_out_of_range_are_404_and_bad_numbers_400(physician):
    ds = store_dataset(physician, frames=2)
    base = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    client = token_client(physician)
    assert client.get(f"{base}/frames/3").status_code == 404
    for bad in ("0", "abc", "1,x", "-1"):
        answer = client.get(f"{base}/frames/{bad}")
        assert answer.status_code == 400
        assert "frame" in answer.json()["detail"]


@pytest.fixture
def jpeg_instance(physician):
    """A JPEG baseline corpus file stored under a fresh SOP Instance UID."""
    data = with_fresh_uid(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    result = store(physician, data)
    return dcmread(io.BytesIO(data)), result


def test_compressed_frames_keep_their_encoding_when_the_client_accepts_any(physician, jpeg_instance):
    ds, result = jpeg_instance
    base = (
        f"/dicomweb/studies/{result.study_instance_uid}/series/{result.series_instance_uid}"
        f"/instances/{result.sop_instance_uid}"
    )
    ohif_accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    answer = token_client(physician).get(f"{base}/frames/1", headers={"Accept": ohif_accept})
    assert answer.status_code == 200
    body = b"".join(answer.streaming_content)
    assert b"Content-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.50" in body
    assert b"\xff\xd8" in body  # the JPEG stream itself

    jpeg = token_client(physician).get(f"{base}/frames/1", headers={"Accept": 'multipart/related; type="image/jpeg"'})
    assert jpeg.status_code == 200
    assert b"Content-Type: image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50" in b"".join(jpeg.streaming_content)


def test_compressed_frames_are_decoded_for_clients_that_want_native_bytes(physician, jpeg_instance):
    ds, result = jpeg_instance
    frames = dicomweb_client_for(physician).retrieve_instance_frames(
        result.study_instance_uid, result.series_instance_uid, result.sop_instance_uid, [1]
    )
    assert len(frames[0]) == ds.Rows * ds.Columns * ds.SamplesPerPixel


def test_client_retrieves_rendered_images(physician, two_studies):
    ct, _mr = two_studies
    client = dicomweb_client_for(physician)
    jpeg = client.retrieve_instance_rendered(
        ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID, media_types=("image/jpeg",)
    )
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    png = client.retrieve_instance_rendered(
        ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID, media_types=("image/png",)
    )
    assert Image.open(io.BytesIO(png)).format == "PNG"
    base = f"/dicomweb/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}"
    answer = token_client(physician).get(
        f"{base}/instances/{ct.SOPInstanceUID}/frames/1/rendered",
        {"accept": "image/png", "window": "100,200,linear", "viewport": "3,4", "quality": "80"},
    )
    assert answer["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(answer.content))
    assert image.size[0] <= 3 and image.size[1] <= 4
    series = token_client(physician).get(f"{base}/rendered")
    assert series["Content-Type"].startswith('multipart/related; type="image/jpeg"')
    assert b"".join(series.streaming_content).count(b"Content-Type: image/jpeg") == 2


def test_rendered_window_function_is_applied(physician, two_studies):
    ct, _mr = two_studies
    base = f"/dicomweb/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}"
    images = {}
    for function in ("linear", "sigmoid"):
        answer = token_client(physician).get(
            f"{base}/frames/1/rendered", {"accept": "image/png", "window": f"100,200,{function}"}
        )
        assert answer.status_code == 200
        images[function] = np.asarray(Image.open(io.BytesIO(answer.content)).convert("L")).astype(int)

    assert images["linear"].shape == images["sigmoid"].shape
    assert (images["linear"] != images["sigmoid"]).any()


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"window": "abc"}, "window"),
        ({"window": "40"}, "window"),
        ({"window": "40,0"}, "window"),
        ({"window": "40,400,cubic"}, "window"),
        ({"viewport": "0,0"}, "viewport"),
        ({"viewport": "100"}, "viewport"),
        ({"quality": "0"}, "quality"),
        ({"quality": "high"}, "quality"),
    ],
)
def test_bad_rendering_parameters_are_400_naming_the_parameter(physician, two_studies, params, name):
    ct, _mr = two_studies
    base = f"/dicomweb/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}"
    for path in (f"{base}/rendered", f"{base}/frames/1/rendered", f"{base}/thumbnail"):
        answer = token_client(physician).get(path, params)
        assert answer.status_code == 400, path
        assert name in answer.json()["detail"]


def test_rendered_frame_zero_is_400(physician, two_studies):
    ct, _mr = two_studies
    base = f"/dicomweb/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}"
    answer = token_client(physician).get(f"{base}/frames/0/rendered")
    assert answer.status_code == 400
    assert "frame" in answer.json()["detail"]


def test_thumbnails_for_study_series_and_instance(physician, two_studies):
    ct, _mr = two_studies
    client = token_client(physician)
    study = f"/dicomweb/studies/{ct.StudyInstanceUID}"
    series = f"{study}/series/{ct.SeriesInstanceUID}"
    for path in (f"{study}/thumbnail", f"{series}/thumbnail", f"{series}/instances/{ct.SOPInstanceUID}/thumbnail"):
        answer = client.get(path, {"viewport": "64,64"})
        assert answer.status_code == 200, path
        assert answer["Content-Type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(answer.content)).size) <= 64


def test_stored_thumbnail_is_served_when_ready(physician, two_studies, settings, tmp_path):
    ct, _mr = two_studies
    instance = Instance.objects.get(sop_instance_uid=ct.SOPInstanceUID)
    out = io.BytesIO()
    Image.new("L", (5, 7), 128).save(out, format="PNG")
    name = instance.thumbnail.storage.save("thumbnails/dicomweb-test.png", io.BytesIO(out.getvalue()))
    instance.mark_rendered(name)
    path = f"/dicomweb/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}"
    answer = token_client(physician).get(f"{path}/thumbnail")
    assert answer["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(answer.content)).size == (5, 7)
    jpeg = token_client(physician).get(f"{path}/thumbnail", {"accept": "image/jpeg"})
    assert Image.open(io.BytesIO(jpeg.content)).format == "JPEG"
    smaller = token_client(physician).get(f"{path}/thumbnail", {"viewport": "3,3"})
    assert max(Image.open(io.BytesIO(smaller.content)).size) <= 3


def test_rendering_an_object_without_pixels_is_404(physician):
    ds = make_dataset()
    del ds.PixelData
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    store(physician, to_bytes(ds))
    base = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    client = token_client(physician)
    assert client.get(f"{base}/rendered").status_code == 404
    assert client.get(f"{base}/frames/1").status_code == 404
    assert "7FE00010" not in client.get(f"{base}/metadata").json()[0]


# --- Access: every route -----------------------------------------------------------------------

ROUTES = [
    "/studies/{st}",
    "/studies/{st}/metadata",
    "/studies/{st}/thumbnail",
    "/studies/{st}/series",
    "/studies/{st}/instances",
    "/studies/{st}/series/{se}",
    "/studies/{st}/series/{se}/metadata",
    "/studies/{st}/series/{se}/rendered",
    "/studies/{st}/series/{se}/thumbnail",
    "/studies/{st}/series/{se}/instances",
    "/studies/{st}/series/{se}/instances/{i}",
    "/studies/{st}/series/{se}/instances/{i}/metadata",
    "/studies/{st}/series/{se}/instances/{i}/rendered",
    "/studies/{st}/series/{se}/instances/{i}/thumbnail",
    "/studies/{st}/series/{se}/instances/{i}/frames/1",
    "/studies/{st}/series/{se}/instances/{i}/frames/1/rendered",
]
SEARCHES = ["/studies", "/series", "/instances"]


def test_owner_reaches_every_route(physician, two_studies):
    ct, _mr = two_studies
    client = token_client(physician)
    for route in ROUTES:
        path = "/dicomweb" + route.format(st=ct.StudyInstanceUID, se=ct.SeriesInstanceUID, i=ct.SOPInstanceUID)
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.content[:200])


def test_outsider_gets_404_on_every_route_like_an_unknown_uid(outsider, two_studies):
    ct, _mr = two_studies
    client = token_client(outsider)
    for route in ROUTES:
        path = "/dicomweb" + route.format(st=ct.StudyInstanceUID, se=ct.SeriesInstanceUID, i=ct.SOPInstanceUID)
        forbidden = client.get(path)
        unknown = client.get(path.replace(ct.StudyInstanceUID, "1.2.3.999"))
        assert forbidden.status_code == unknown.status_code == 404, path
        assert forbidden.content == unknown.content
    for route in SEARCHES:
        assert client.get("/dicomweb" + route).json() == []


def test_unauthenticated_requests_get_401_everywhere(two_studies):
    ct, _mr = two_studies
    client = Client()
    for route in ROUTES + SEARCHES:
        path = "/dicomweb" + route.format(st=ct.StudyInstanceUID, se=ct.SeriesInstanceUID, i=ct.SOPInstanceUID)
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert answer["WWW-Authenticate"].startswith("Bearer")
    assert Client(headers={"Authorization": "Token not-a-token"}).get("/dicomweb/studies").status_code == 401
    assert client.post("/dicomweb/studies", b"", content_type="multipart/related").status_code == 401


def test_unauthenticated_dicomweb_client_gets_401(two_studies):
    with pytest.raises(requests.HTTPError) as info:
        dicomweb_client_for(None).search_for_studies()
    assert info.value.response.status_code == 401


def test_inactive_user_token_is_refused(physician, two_studies):
    client = token_client(physician)
    physician.is_active = False
    physician.save()
    assert client.get("/dicomweb/studies").status_code == 401


def test_session_authentication_reads(physician, two_studies):
    client = Client()
    client.force_login(physician)
    answer = client.get("/dicomweb/studies")
    assert answer.status_code == 200
    assert len(json.loads(answer.content)) == 2


def test_qido_answers_the_media_types_clients_ask_for(physician, two_studies):
    client = token_client(physician)
    for accept, expected in [
        ("application/dicom+json", DICOM_JSON),
        ("application/json", "application/json"),
        ("application/dicom+json, application/json", DICOM_JSON),
        ("*/*", DICOM_JSON),
        ("text/html,application/xhtml+xml,*/*;q=0.8", DICOM_JSON),
    ]:
        answer = client.get("/dicomweb/studies", headers={"Accept": accept})
        assert answer.status_code == 200, accept
        assert answer["Content-Type"] == expected
    assert client.get("/dicomweb/studies", headers={"Accept": "application/dicom+xml"}).status_code == 406


def test_cors_preflight_from_an_allowed_origin(settings, client):
    settings.CORS_ALLOWED_ORIGINS = ["https://viewer.example.org"]
    answer = client.options(
        "/dicomweb/studies",
        headers={
            "Origin": "https://viewer.example.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, accept",
        },
    )
    assert answer.status_code == 200
    assert answer["Access-Control-Allow-Origin"] == "https://viewer.example.org"
    assert "authorization" in answer["Access-Control-Allow-Headers"]
    other = client.options(
        "/dicomweb/studies",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "Access-Control-Allow-Origin" not in other


def test_native_frame_reader_matches_pydicom_pixel_array(physician):
    ds = store_dataset(physician, frames=2, rows=5, columns=3)
    frames = dicomweb_client_for(physician).retrieve_instance_frames(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [2]
    )
    expected = ds.pixel_array[1]
    assert np.array_equal(np.frombuffer(frames[0], dtype="<u2").reshape(5, 3), expected)


CORPUS_FRAMES = [
    ("image_dfl.dcm", 1),  # deflated
    ("SC_rgb_small_odd_big_endian.dcm", 1),  # explicit VR big endian
    ("liver_expb_1frame.dcm", 1),  # 1 bit per pixel, big endian
    ("JPEG-lossy.dcm", 1),  # JPEG extended, 12 bits
    ("JPEG-LL.dcm", 1),  # JPEG lossless
    ("emri_small_jpeg_ls_lossless.dcm", 10),  # JPEG-LS, multi-frame
    ("SC_rgb_jpeg_gdcm.dcm", 1),  # JPEG lossless, colour
    ("MR_small_jp2klossless.dcm", 1),  # JPEG 2000 lossless
    ("rtdose_rle.dcm", 15),  # RLE, 32 bits, multi-frame
    ("SC_rgb_rle_2frame.dcm", 2),
]


@pytest.mark.parametrize(("name", "frames"), CORPUS_FRAMES)
def test_frames_of_every_stored_encoding(physician, name, frames):
    data = with_fresh_uid(get_testdata_file(name))
    result = store(physician, data)
    ds = dcmread(io.BytesIO(data))
    base = (
        f"/dicomweb/studies/{result.study_instance_uid}/series/{result.series_instance_uid}"
        f"/instances/{result.sop_instance_uid}"
    )
    client = token_client(physician)
    native = client.get(
        f"{base}/frames/{frames}", headers={"Accept": 'multipart/related; type="application/octet-stream"'}
    )
    assert native.status_code == 200, native.content[:300]
    body = b"".join(native.streaming_content)
    samples, bits = int(ds.get("SamplesPerPixel", 1)), int(ds.BitsAllocated)
    expected = ds.Rows * ds.Columns * samples * bits // 8 if bits > 1 else (ds.Rows * ds.Columns + 7) // 8
    assert b"transfer-syntax=1.2.840.10008.1.2.1\r\n\r\n" in body
    assert len(body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]) == expected
    stored = client.get(
        f"{base}/frames/1", headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}
    )
    assert stored.status_code == 200
    assert b"".join(stored.streaming_content)


def test_metadata_text_gets_a_bulk_data_uri_for_pixel_data_only():
    from studies.dicomweb import instance_metadata_json

    url = "http://testserver/dicomweb/studies/1/series/2/instances/3"
    options = {"number_of_frames": 2, "transfer_syntax": "1.2.840.10008.1.2.1", "bits_allocated": 16}
    stored = '{"00100010": {"vr": "PN"}, "7FE00010": {"vr": "OW"}}'
    answer = json.loads(instance_metadata_json(stored, url, has_pixel_data=True, **options))
    assert answer["7FE00010"] == {"vr": "OW", "BulkDataURI": f"{url}/frames/1,2"}
    assert answer["00100010"] == {"vr": "PN"}
    added = json.loads(instance_metadata_json('{"00100010": {"vr": "PN"}}', url, has_pixel_data=True, **options))
    assert added["7FE00010"]["BulkDataURI"].endswith("/frames/1,2")
    assert json.loads(instance_metadata_json("{}", url, has_pixel_data=True, **options))["7FE00010"]["vr"] == "OW"
    # Without pixel data the header passes through, with the stored transfer syntax named.
    assert json.loads(instance_metadata_json(stored, url, has_pixel_data=False, **options)) == {
        **json.loads(stored),
        "00083002": {"vr": "UI", "Value": ["1.2.840.10008.1.2.1"]},
    }


def test_frames_in_an_encoding_the_server_cannot_give_are_406(physician):
    ds = store_dataset(physician)
    base = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    answer = token_client(physician).get(f"{base}/frames/1", headers={"Accept": 'multipart/related; type="image/jp2"'})
    assert answer.status_code == 406
    assert "octet-stream" in answer.json()["detail"]


def test_a_search_cut_short_by_the_server_says_so(physician, two_studies, monkeypatch):
    from studies.dicomweb import qido

    monkeypatch.setattr(qido, "QIDO_MAX_RESULTS", 1)
    answer = token_client(physician).get("/dicomweb/studies")
    assert len(answer.json()) == 1
    assert answer["Warning"].startswith("299 ")
    assert "limit and offset" in answer["Warning"]
    rest = token_client(physician).get("/dicomweb/studies", {"offset": "1"})
    assert len(rest.json()) == 1


def test_unsupported_methods_are_405_with_the_allowed_ones(physician, two_studies):
    ct, _mr = two_studies
    client = token_client(physician)
    root = client.delete("/dicomweb/studies")
    assert root.status_code == 405
    assert "POST" in root["Allow"]
    # DELETE deletes (tests/studies/test_dicomweb_delete.py); PUT is no method of a study.
    assert client.put(f"/dicomweb/studies/{ct.StudyInstanceUID}").status_code == 405
    assert client.post("/dicomweb/series").status_code == 405


def test_other_bulk_data_is_served_through_its_bulk_data_uri(physician, outsider):
    ds = make_dataset()
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 6)
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", bytes(range(256)) * 8)
    store(physician, to_bytes(ds))
    client = dicomweb_client_for(physician)
    metadata = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    uri = metadata["60003000"]["BulkDataURI"]
    assert uri.endswith(f"/instances/{ds.SOPInstanceUID}/bulkdata/60003000")
    assert client.retrieve_bulkdata(uri) == [bytes(range(256)) * 8]
    base = uri.rsplit("/", 1)[0]
    assert token_client(physician).get(f"{base}/7FE00010").status_code == 404
    assert token_client(physician).get(f"{base}/00100010").status_code == 404
    assert token_client(physician).get(f"{base}/zz").status_code == 400
    assert token_client(outsider).get(uri).status_code == 404


@pytest.mark.parametrize(
    ("accept", "part_type"),
    [
        (
            "multipart/related; type=application/octet-stream; transfer-syntax=*",
            b"transfer-syntax=1.2.840.10008.1.2.4.50",
        ),
        (
            'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.50',
            b"transfer-syntax=1.2.840.10008.1.2.4.50",
        ),
        (
            'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1',
            b"transfer-syntax=1.2.840.10008.1.2.1",
        ),
        ("*/*", b"transfer-syntax=1.2.840.10008.1.2.1"),
        (
            'multipart/related; type="image/jls", multipart/related; type="application/octet-stream"; q=0.5',
            b"transfer-syntax=1.2.840.10008.1.2.1",
        ),
    ],
)
def test_frame_negotiation_for_the_accept_headers_viewers_send(physician, jpeg_instance, accept, part_type):
    _ds, result = jpeg_instance
    base = (
        f"/dicomweb/studies/{result.study_instance_uid}/series/{result.series_instance_uid}"
        f"/instances/{result.sop_instance_uid}"
    )
    answer = token_client(physician).get(f"{base}/frames/1", headers={"Accept": accept})
    assert answer.status_code == 200
    body = b"".join(answer.streaming_content)
    assert b"Content-Type: application/octet-stream; " + part_type + b"\r\n" in body


def test_dicomweb_errors_are_portal_errors_answered_with_detail_only():
    from studies.dicomweb import DicomwebError, exception_response
    from teleconsult.errors import PortalError

    refused = DicomwebError("Frames are sent as application/octet-stream.", status=406)
    answer = exception_response(refused)

    assert isinstance(refused, PortalError) and refused.code == "not_acceptable"
    assert answer.status_code == 406 and json.loads(answer.content) == {"detail": refused.message}
    assert exception_response(DicomwebError("Log in.", 401))["WWW-Authenticate"] == 'Bearer realm="dicomweb"'
    assert exception_response(PortalError("Not now.", status=409)).status_code == 409

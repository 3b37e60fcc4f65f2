"""POST /api/v1/uploads/ and the patients/studies lists."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom.uid import generate_uid

from studies.models import Instance, Patient, Study
from studies.permissions import grant_access
from tests.studies import dicom_factory as f

URL = "/api/v1/uploads/"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def dicom(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/dicom")


def upload(client, *files):
    return client.post(URL, {"files": list(files)}, format="multipart")


def test_physician_uploads_files_and_gets_201_with_a_result_per_file(auth_client, physician):
    response = upload(auth_client(physician), dicom("a.dcm", f.make_ct()), dicom("b.txt", b"not dicom at all" * 20))

    assert response.status_code == 201, response.content
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["stored", "refused"]
    assert body["results"][1]["code"] == "not_dicom"
    assert (body["stored"], body["already_stored"], body["refused"]) == (1, 0, 1)
    assert Instance.objects.get().pk == body["results"][0]["instance_id"]


def test_resending_everything_gives_200(auth_client, physician):
    data = f.make_ct()
    client = auth_client(physician)
    upload(client, dicom("a.dcm", data))
    response = upload(client, dicom("a.dcm", data))

    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "already_stored"


def test_all_refused_gives_400_naming_the_reason(auth_client, physician):
    response = upload(auth_client(physician), dicom("empty.dcm", b""))

    assert response.status_code == 400
    assert "empty" in response.json()["detail"]
    assert response.json()["results"][0]["code"] == "empty"


def test_upload_without_files_gives_400_naming_the_field(auth_client, physician):
    response = auth_client(physician).post(URL, {}, format="multipart")

    assert response.status_code == 400
    assert "'files'" in response.json()["detail"]


def test_json_body_is_415(auth_client, physician):
    response = auth_client(physician).post(URL, {"files": "x"}, format="json")

    assert response.status_code == 415


def test_request_over_the_size_limit_is_413(auth_client, physician, settings):
    settings.TELECONSULT_MAX_REQUEST_SIZE = 1000
    response = upload(auth_client(physician), dicom("a.dcm", f.make_ct()))

    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert not Instance.objects.exists()


def test_too_many_files_in_one_request_is_400(auth_client, physician, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    response = upload(auth_client(physician), *[dicom(f"{n}.dcm", f.make_ct()) for n in range(3)])

    assert response.status_code == 400
    assert "zip" in response.json()["detail"]


def test_zip_upload_gives_one_result_per_entry(auth_client, physician):
    study_uid = generate_uid()
    archive = f.make_zip({f"s/{n}.dcm": f.make_ct(StudyInstanceUID=study_uid) for n in range(3)})
    response = upload(auth_client(physician), SimpleUploadedFile("study.zip", archive, "application/zip"))

    assert response.status_code == 201
    assert [r["filename"] for r in response.json()["results"]] == [f"study.zip/s/{n}.dcm" for n in range(3)]
    assert Study.objects.get().num_instances == 3


def test_bad_zip_upload_is_400_not_500(auth_client, physician):
    archive = f.make_zip({"../../etc/passwd": b"x"})
    response = upload(auth_client(physician), SimpleUploadedFile("evil.zip", archive, "application/zip"))

    assert response.status_code == 400
    assert response.json()["results"][0]["code"] == "zip_unsafe"


def test_specialist_and_admin_may_upload(auth_client, specialist, admin_user, physician):
    assert upload(auth_client(specialist), dicom("a.dcm", f.make_ct())).status_code == 201
    # An administrator belongs to no practice: they name the one the study is filed under.
    practice = physician.default_practice
    response = auth_client(admin_user).post(
        "/api/v1/uploads/", {"files": [dicom("b.dcm", f.make_ct())], "practice": practice.pk}, format="multipart"
    )
    assert response.status_code == 201
    assert Study.objects.get(uploaded_by=admin_user).practice == practice


def test_admin_without_a_practice_is_told_to_name_one(auth_client, admin_user):
    response = upload(auth_client(admin_user), dicom("b.dcm", f.make_ct()))
    assert response.status_code == 400
    assert response.json()["results"][0]["code"] == "no_practice"


def test_practice_parameter_must_be_one_of_the_uploaders(auth_client, physician, outsider):
    for value, words in ((outsider.default_practice.pk, "not a member"), ("abc", "practice's number")):
        response = auth_client(physician).post(
            "/api/v1/uploads/", {"files": [dicom("c.dcm", f.make_ct())], "practice": value}, format="multipart"
        )
        assert response.status_code == 400
        assert words in response.json()["practice"][0]
    assert not Study.objects.exists()


def test_patient_may_not_upload_and_is_told_why(auth_client, patient_user):
    response = upload(auth_client(patient_user), dicom("a.dcm", f.make_ct()))

    assert response.status_code == 403
    assert "Patients cannot upload" in response.json()["detail"]
    assert not Instance.objects.exists()


def test_anonymous_upload_is_401(api_client, db):
    assert upload(api_client, dicom("a.dcm", f.make_ct())).status_code == 401


def test_upload_with_token_header(api_client, physician, password):
    token = api_client.post("/api/v1/auth/token/", {"email": physician.email, "password": password}).json()["token"]
    response = api_client.post(
        URL, {"files": [dicom("a.dcm", f.make_ct())]}, format="multipart", HTTP_AUTHORIZATION=f"Token {token}"
    )

    assert response.status_code == 201


def test_uploader_sees_the_patient_and_outsider_does_not(auth_client, physician, outsider):
    upload(auth_client(physician), dicom("a.dcm", f.make_ct(PatientID="P-77", PatientName="Doe^John")))
    patient = Patient.objects.get(patient_id="P-77")

    mine = auth_client(physician).get("/api/v1/patients/").json()
    assert [p["patient_id"] for p in mine["results"]] == ["P-77"]
    assert mine["results"][0]["num_studies"] == 1
    detail = auth_client(physician).get(f"/api/v1/patients/{patient.pk}/")
    assert detail.status_code == 200
    assert detail.json()["display_name"] == "Doe John"
    assert len(detail.json()["studies"]) == 1

    assert auth_client(outsider).get("/api/v1/patients/").json()["results"] == []
    assert auth_client(outsider).get(f"/api/v1/patients/{patient.pk}/").status_code == 404
    assert auth_client(outsider).get("/api/v1/studies/").json()["results"] == []


def test_patient_detail_lists_only_the_studies_the_user_may_see(auth_client, physician, colleague):
    client = auth_client(physician)
    upload(client, dicom("a.dcm", f.make_ct(PatientID="P-5")))
    upload(client, dicom("b.dcm", f.make_ct(PatientID="P-5")))
    shared = Study.objects.order_by("pk").first()
    grant_access(user=colleague, study=shared, reason="shared", granted_by=physician)
    patient = Patient.objects.get(patient_id="P-5")

    body = auth_client(colleague).get(f"/api/v1/patients/{patient.pk}/").json()

    assert [s["study_instance_uid"] for s in body["studies"]] == [shared.study_instance_uid]
    assert body["num_studies"] == 1


def test_linked_patient_sees_their_own_record(auth_client, physician, patient_user):
    upload(auth_client(physician), dicom("a.dcm", f.make_ct(PatientID="P-8")))
    Patient.objects.filter(patient_id="P-8").update(account=patient_user)

    body = auth_client(patient_user).get("/api/v1/patients/").json()

    assert [p["patient_id"] for p in body["results"]] == ["P-8"]


def test_unknown_patient_is_404(auth_client, physician):
    assert auth_client(physician).get("/api/v1/patients/999999/").status_code == 404


def test_studies_list_shows_the_uploaders_studies(auth_client, physician):
    upload(auth_client(physician), dicom("a.dcm", f.make_ct()))

    body = auth_client(physician).get("/api/v1/studies/").json()

    assert body["count"] == 1
    assert body["results"][0]["num_instances"] == 1


def test_only_patients_and_inactive_or_anonymous_users_may_not_upload(physician, specialist, admin_user, patient_user):
    from django.contrib.auth.models import AnonymousUser

    from studies.permissions import can_upload

    assert can_upload(physician) and can_upload(specialist) and can_upload(admin_user)
    assert not can_upload(patient_user)
    assert not can_upload(AnonymousUser())
    physician.is_active = False
    assert not can_upload(physician)


def test_oversized_request_from_a_browser_session_is_413_before_its_body_is_read(physician, settings, monkeypatch):
    from django.http import multipartparser
    from django.test import Client
    from django.test.client import encode_multipart

    settings.TELECONSULT_MAX_REQUEST_SIZE = 1000
    client = Client(enforce_csrf_checks=True)
    client.force_login(physician)
    monkeypatch.setattr(
        multipartparser.MultiPartParser, "parse", lambda self: pytest.fail("the body must not be parsed")
    )
    body = encode_multipart("BoUnDaRy", {"files": dicom("a.dcm", f.make_ct())})

    response = client.post(URL, body, content_type="multipart/form-data; boundary=BoUnDaRy")

    assert response.status_code == 413
    assert "over the limit" in response.json()["detail"]


def test_upload_larger_than_the_in_memory_limit_streams_through_a_temporary_file(auth_client, physician, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    data = f.make_multiframe(frames=200, rows=64, columns=64)  # about 1.6 MB
    assert len(data) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE

    response = upload(auth_client(physician), dicom("large.dcm", data))

    assert response.status_code == 201, response.content
    instance = Instance.objects.get()
    assert (instance.number_of_frames, instance.size) == (200, len(data))

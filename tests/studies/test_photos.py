"""Photos and PDFs added to a study from a phone: DICOM objects of the study, like any instance."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from pydicom.uid import generate_uid

from studies import photos
from studies.ingest import ingest_file
from studies.models import AccessGrant, Instance, Study
from studies.permissions import grant_access
from tests.studies import dicom_factory as f

MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def study(physician, patient_user) -> Study:
    data = f.make_ct(StudyInstanceUID=generate_uid(), PatientName="Doe^Jane", PatientID="PID-42")
    result = ingest_file(SimpleUploadedFile("ct.dcm", data), filename="ct.dcm", user=physician)
    assert result.status == "stored", result.reason
    found = Study.objects.get(study_instance_uid=result.study_instance_uid)
    found.patient.account = patient_user
    found.patient.save()
    return found


def jpeg_with_exif(*, width: int = 40, height: int = 20, orientation: int = 6) -> bytes:
    """A landscape picture whose EXIF says to turn it (6: 90 degrees clockwise), with a camera name
    and a GPS block that must not survive."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, width // 2, height))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SecretCameraMaker"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    return buffer.getvalue()


def png(mode: str = "RGBA") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (12, 10), (0, 128, 0, 0) if mode == "RGBA" else (0, 128, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def heic() -> bytes:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 200, 10)).save(buffer, format="HEIF")
    return buffer.getvalue()


def api_url(study: Study) -> str:
    return f"/api/v1/studies/{study.study_instance_uid}/photos/"


def page_url(study: Study) -> str:
    return f"/studies/{study.study_instance_uid}/add-photo/"


def post_api(client, study: Study, name: str, data: bytes, content_type: str = "image/jpeg"):
    return client.post(api_url(study), {"file": SimpleUploadedFile(name, data, content_type)}, format="multipart")


def stored_dataset(instance_id: int) -> pydicom.Dataset:
    instance = Instance.objects.get(pk=instance_id)
    with instance.file.open("rb") as fp:
        return pydicom.dcmread(fp)


def test_physician_adds_a_photo_and_it_becomes_a_vl_photographic_image_of_the_study(
    auth_client, physician, study, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_api(auth_client(physician), study, "IMG_0001.jpg", jpeg_with_exif())
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["sop_class_uid"] == photos.VL_PHOTOGRAPHIC_IMAGE and body["modality"] == "XC"
    assert body["study_instance_uid"] == study.study_instance_uid

    ds = stored_dataset(body["instance_id"])
    assert ds.StudyInstanceUID == study.study_instance_uid
    assert (str(ds.PatientName), ds.PatientID) == ("Doe^Jane", "PID-42")
    # Orientation 6 turns the 40 x 20 picture upright: 20 wide, 40 high.
    assert (ds.Columns, ds.Rows) == (20, 40)
    pixels = ds.pixel_array
    assert pixels.shape == (40, 20, 3)
    raw = Instance.objects.get(pk=body["instance_id"]).file.open("rb").read()
    assert b"Exif" not in raw and b"SecretCameraMaker" not in raw

    instance = Instance.objects.get(pk=body["instance_id"])
    assert instance.status == Instance.Status.READY and instance.thumbnail
    study.refresh_from_db()
    assert study.num_instances == 2 and "XC" in study.modality_list


def test_photo_orientation_is_applied_so_the_left_half_goes_to_the_top(auth_client, physician, study):
    response = post_api(auth_client(physician), study, "turned.jpg", jpeg_with_exif(orientation=6))
    ds = stored_dataset(response.json()["instance_id"])
    rgb = ds.pixel_array  # pydicom hands JPEG YBR data back as RGB
    top, bottom = rgb[2, 10].astype(int), rgb[-3, 10].astype(int)
    assert top[2] > top[0]  # the blue left half is now at the top
    assert bottom[0] > bottom[2]


def test_second_photo_joins_the_same_series_with_the_next_number(auth_client, physician, study):
    client = auth_client(physician)
    first = post_api(client, study, "a.jpg", jpeg_with_exif()).json()
    second = post_api(client, study, "b.png", png(), "image/png").json()
    assert first["series_instance_uid"] == second["series_instance_uid"]
    assert stored_dataset(second["instance_id"]).InstanceNumber == 2


def test_heic_photo_is_accepted(auth_client, physician, study):
    response = post_api(auth_client(physician), study, "IMG.HEIC", heic(), "image/heic")
    assert response.status_code == 201, response.content
    assert stored_dataset(response.json()["instance_id"]).Rows == 24


def test_pdf_becomes_an_encapsulated_pdf(auth_client, physician, study, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_api(auth_client(physician), study, "Referral letter.pdf", MINIMAL_PDF, "application/pdf")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["sop_class_uid"] == photos.ENCAPSULATED_PDF and body["modality"] == "DOC"
    ds = stored_dataset(body["instance_id"])
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.EncapsulatedDocument[: ds.EncapsulatedDocumentLength] == MINIMAL_PDF
    assert ds.DocumentTitle == "Referral letter"
    assert ds.PatientID == "PID-42" and ds.StudyInstanceUID == study.study_instance_uid
    assert Instance.objects.get(pk=body["instance_id"]).status == Instance.Status.NO_IMAGE


def test_patient_adds_a_photo_to_their_own_study_without_getting_a_grant(auth_client, patient_user, study):
    response = post_api(auth_client(patient_user), study, "rash.jpg", jpeg_with_exif())
    assert response.status_code == 201, response.content
    assert Instance.objects.get(pk=response.json()["instance_id"]).uploaded_by == patient_user
    assert not AccessGrant.objects.filter(user=patient_user).exists()


def test_patient_gets_404_adding_to_another_patients_study(auth_client, study):
    from tests.factories import UserFactory

    other = UserFactory(role="patient", email="other-patient@example.com")
    response = post_api(auth_client(other), study, "rash.jpg", jpeg_with_exif())
    assert response.status_code == 404
    assert Instance.objects.count() == 1


def test_outsider_gets_404_adding_a_photo(auth_client, outsider, study):
    assert post_api(auth_client(outsider), study, "a.jpg", jpeg_with_exif()).status_code == 404


def test_specialist_who_may_see_the_study_adds_a_photo(auth_client, specialist, study):
    grant_access(user=specialist, study=study, reason="consult", source="7")
    assert post_api(auth_client(specialist), study, "a.jpg", jpeg_with_exif()).status_code == 201


def test_unknown_study_is_404(auth_client, physician, study):
    response = auth_client(physician).post(
        "/api/v1/studies/1.2.3.4/photos/", {"file": SimpleUploadedFile("a.jpg", jpeg_with_exif())}, format="multipart"
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("photo.jpg", b"this is not a picture at all" * 10, "not_image"),
        ("photo.jpg", jpeg_with_exif()[:200], "not_image"),
        ("empty.jpg", b"", "empty"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\n", "not_pdf"),
        ("anim.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "not_image"),
    ],
)
def test_bad_files_are_refused_with_a_reason(auth_client, physician, study, name, data, code):
    response = post_api(auth_client(physician), study, name, data)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert Instance.objects.count() == 1


def test_gif_is_refused_as_unsupported(auth_client, physician, study):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="GIF")
    response = post_api(auth_client(physician), study, "a.gif", buffer.getvalue(), "image/gif")
    assert response.status_code == 400
    assert response.json()["code"] == "unsupported_image"


def test_missing_file_field_is_400(auth_client, physician, study):
    response = auth_client(physician).post(api_url(study), {}, format="multipart")
    assert response.status_code == 400
    assert response.json()["code"] == "no_file"


def test_oversized_file_is_413(auth_client, physician, study, settings):
    settings.TELECONSULT_MAX_PHOTO_SIZE = 1000
    response = post_api(auth_client(physician), study, "big.jpg", jpeg_with_exif(width=400, height=300))
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


def test_picture_with_too_many_pixels_is_refused_before_decoding(auth_client, physician, study, monkeypatch):
    monkeypatch.setattr(photos, "MAX_PIXELS", 100)
    response = post_api(auth_client(physician), study, "big.jpg", jpeg_with_exif())
    assert response.status_code == 413


def test_decompression_bomb_is_refused_not_a_500(auth_client, physician, study, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    response = post_api(auth_client(physician), study, "bomb.png", png("RGB"), "image/png")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


def test_anonymous_api_call_is_refused(api_client, study):
    response = api_client.post(
        api_url(study), {"file": SimpleUploadedFile("a.jpg", jpeg_with_exif())}, format="multipart"
    )
    assert response.status_code in (401, 403)


def test_added_photo_is_served_by_dicomweb_like_any_instance(client, auth_client, physician, study):
    body = post_api(auth_client(physician), study, "a.jpg", jpeg_with_exif()).json()
    client.force_login(physician)
    response = client.get(f"/dicomweb/studies/{study.study_instance_uid}/series")
    assert response.status_code == 200
    assert body["series_instance_uid"] in response.content.decode()
    frames = client.get(
        f"/dicomweb/studies/{study.study_instance_uid}/series/{body['series_instance_uid']}"
        f"/instances/{body['sop_instance_uid']}/rendered",
        HTTP_ACCEPT="image/jpeg",
    )
    assert frames.status_code == 200
    # What the viewer asks for a colour image: the rendered frame.
    viewer_frame = client.get(
        f"/dicomweb/studies/{study.study_instance_uid}/series/{body['series_instance_uid']}"
        f"/instances/{body['sop_instance_uid']}/frames/1/rendered",
        HTTP_ACCEPT="image/png",
    )
    assert viewer_frame.status_code == 200
    rendered = Image.open(io.BytesIO(viewer_frame.content))
    assert rendered.size == (20, 40)


# --- The mobile page ---------------------------------------------------------------------------


def test_page_offers_the_camera(client, patient_user, study):
    client.force_login(patient_user)
    response = client.get(page_url(study))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'capture="environment"' in html and 'accept="image/*,application/pdf"' in html
    assert "<script" not in html.split("<main", 1)[-1].split("</main>", 1)[0]


def test_patient_adds_a_photo_from_the_page_and_returns_to_the_portal(client, patient_user, study):
    client.force_login(patient_user)
    response = client.post(page_url(study), {"file": SimpleUploadedFile("a.jpg", jpeg_with_exif(), "image/jpeg")})
    assert response.status_code == 302
    assert response["Location"] == f"/portal/studies/{study.study_instance_uid}/"
    assert Instance.objects.filter(series__modality="XC").count() == 1


def test_physician_adds_a_pdf_from_the_page_and_returns_to_the_study(client, physician, study):
    client.force_login(physician)
    response = client.post(page_url(study), {"document": SimpleUploadedFile("a.pdf", MINIMAL_PDF, "application/pdf")})
    assert response.status_code == 302
    assert response["Location"] == f"/studies/{study.study_instance_uid}/"


def test_page_shows_the_reason_for_a_bad_file(client, physician, study):
    client.force_login(physician)
    response = client.post(page_url(study), {"file": SimpleUploadedFile("a.jpg", b"nope" * 50, "image/jpeg")})
    assert response.status_code == 400
    assert "not a photo we can read" in response.content.decode()


def test_page_without_a_file_is_400(client, physician, study):
    client.force_login(physician)
    assert client.post(page_url(study), {}).status_code == 400


def test_outsider_gets_404_for_the_page(client, outsider, study):
    client.force_login(outsider)
    assert client.get(page_url(study)).status_code == 404
    assert client.post(page_url(study), {"file": SimpleUploadedFile("a.jpg", jpeg_with_exif())}).status_code == 404


def test_deidentified_copy_leaves_out_phone_photos_unless_asked(client, physician, study):
    photos.add_to_study(
        study, io.BytesIO(jpeg_with_exif()), size=len(jpeg_with_exif()), filename="a.jpg", user=physician
    )
    client.force_login(physician)
    import zipfile

    response = client.get(f"/studies/{study.study_instance_uid}/deidentified.zip")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert len([n for n in archive.namelist() if n.endswith(".dcm")]) == 1
    assert "RecognizableVisualFeatures" in archive.read("README.txt").decode()


def test_image_helpers_make_rgb_from_transparent_png():
    image = Image.open(io.BytesIO(png("RGBA")))
    assert np.asarray(photos._rgb(image))[0, 0].tolist() == [255, 255, 255]


def test_study_page_and_portal_page_link_to_adding_a_photo(client, physician, patient_user, study):
    client.force_login(physician)
    assert page_url(study) in client.get(f"/studies/{study.study_instance_uid}/").content.decode()
    client.force_login(patient_user)
    assert page_url(study) in client.get(f"/portal/studies/{study.study_instance_uid}/").content.decode()

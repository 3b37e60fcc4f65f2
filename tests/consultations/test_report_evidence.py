"""The consult's key images and measurements in the report editor and into the findings; the PDF
with the key images, the signer's credentials and the modalities in words (read back with pypdf)."""

from __future__ import annotations

import io
import uuid

import pydicom
import pytest
from pypdf import PdfReader

from consultations import actions, reports
from consultations.models import Annotation
from studies.ingest import ingest_file
from studies.models import Instance
from tests.factories import ConsultFactory
from tests.viewer.dicom import ct_slices


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def chest(physician, patient_user, specialist, django_capture_on_commit_callbacks):
    """A chest CT of two slices (series 1, images 1 and 2), consult accepted by the specialist."""
    study_uid = pydicom.uid.generate_uid()
    with django_capture_on_commit_callbacks(execute=True):
        for ds in ct_slices(study_uid, count=2, size=256):
            ds.BodyPartExamined = "CHEST"
            ds.StudyDescription = "CT chest"
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            assert ingest_file(buffer, filename="ct.dcm", user=physician).status == "stored"
    study = Instance.objects.filter(series__study__study_instance_uid=study_uid).first().series.study
    study.patient.account = patient_user
    study.patient.save(update_fields=["account"])
    consult = ConsultFactory(requester=physician, study=study, specialty="general_radiology")
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(consult, by=physician)
        actions.accept_consult(consult, by=specialist)
    consult.refresh_from_db()
    return consult


def annotate(consult, author, image: int, tool: str, values=None, label="") -> Annotation:
    instance = Instance.objects.get(series__study=consult.study, instance_number=image)
    return Annotation.objects.create(
        id=uuid.uuid4(),
        consult=consult,
        sop_instance_uid=instance.sop_instance_uid,
        frame=1,
        tool=tool,
        geometry={},
        values=values or {},
        label=label,
        author=author,
    )


@pytest.fixture
def marked(chest, specialist):
    """A length and an ellipse on image 2, an angle and a key image on image 1, an unlabelled arrow."""
    length = annotate(chest, specialist, 2, "length", {"length": 13.24, "unit": "mm"})
    annotate(
        chest, specialist, 2, "ellipse", {"area": 314.2, "area_unit": "mm²", "mean": 42.0, "sd": 3.1, "unit": "HU"}
    )
    annotate(chest, specialist, 1, "angle", {"angle": 90.0, "unit": "°"})
    key = annotate(chest, specialist, 1, "key_image", label="Nodule")
    annotate(chest, specialist, 1, "arrow")
    return {"length": length, "key": key}


def test_findings_lines_name_the_value_the_series_and_the_image(marked):
    lines = [e.line for e in reports.evidence_for(marked["length"].consult)]
    assert lines == [
        "Length 13.2 mm (series 1, image 2)",
        "Ellipse ROI area 314.2 mm², mean 42.0 HU, SD 3.1 (series 1, image 2)",
        "Angle 90.0° (series 1, image 1)",
        "Key image: Nodule (series 1, image 1)",
    ]


def test_the_editor_shows_key_images_and_measurements_with_thumbnails(client, specialist, chest, marked):
    client.force_login(specialist)
    page = client.get(f"/consults/{chest.pk}/report/")
    html = page.content.decode()
    assert "Key images and measurements" in html
    assert 'data-insert-line="Length 13.2 mm (series 1, image 2)"' in html
    assert f'name="insert" value="{marked["key"].id}"' in html
    evidence = page.context["evidence"]
    thumbnail = next(e for e in evidence if e.is_key_image).thumbnail_url
    assert thumbnail.startswith(f"/dicomweb/studies/{chest.study.study_instance_uid}/series/")
    picture = client.get(thumbnail)
    assert picture.status_code == 200 and picture["Content-Type"] == "image/jpeg"


def test_insert_adds_the_line_after_the_text_being_written(client, specialist, chest, marked):
    client.force_login(specialist)
    client.get(f"/consults/{chest.pk}/report/")
    response = client.post(
        f"/consults/{chest.pk}/report/save/",
        {"findings": "Right upper lobe nodule.", "impression": "", "insert": str(marked["length"].id)},
        follow=True,
    )
    assert "Added to the findings: Length 13.2 mm (series 1, image 2)" in response.content.decode()
    assert chest.reports.get().findings == "Right upper lobe nodule.\nLength 13.2 mm (series 1, image 2)"


def test_insert_of_something_not_on_the_consult_names_the_field(client, specialist, chest, marked):
    client.force_login(specialist)
    response = client.post(
        f"/consults/{chest.pk}/report/save/", {"findings": "Kept.", "insert": str(uuid.uuid4())}, follow=True
    )
    assert "insert: no such measurement or key image on this consult." in response.content.decode()
    assert chest.reports.get().findings == "Kept."


def test_only_the_assignee_inserts_and_outsiders_get_404(client, physician, outsider, chest, marked):
    url = f"/consults/{chest.pk}/report/save/"
    body = {"findings": "x", "insert": str(marked["length"].id)}
    client.force_login(outsider)
    assert client.post(url, body).status_code == 404
    assert client.get(f"/consults/{chest.pk}/report/").status_code == 404
    client.force_login(physician)
    response = client.post(url, body, follow=True)
    assert response.redirect_chain[-1][0] == f"/consults/{chest.pk}/"
    assert "Only the specialist who accepted this consult" in response.content.decode()
    assert not chest.reports.filter(findings__contains="Length").exists()


# -- the PDF -------------------------------------------------------------------------------------


def sign(consult, specialist, password, django_capture_on_commit_callbacks) -> None:
    reports.save_draft(consult, by=specialist, findings="Nodule 13 mm.", impression="Indeterminate nodule.")
    with django_capture_on_commit_callbacks(execute=True):
        reports.sign_report(consult, by=specialist, password=password)


def fetch_pdf(client, consult) -> PdfReader:
    client.force_login(consult.requester)
    response = client.get(f"/consults/{consult.pk}/report.pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    return PdfReader(io.BytesIO(response.content))


def test_the_pdf_carries_key_images_credentials_and_modalities_in_words(
    client, chest, marked, specialist, password, django_capture_on_commit_callbacks
):
    sign(chest, specialist, password, django_capture_on_commit_callbacks)
    pdf = fetch_pdf(client, chest)
    text = " ".join(" ".join(page.extract_text().split()) for page in pdf.pages)
    # Signing stored the PDF in the study as a DOC series: the study is now CT\DOC.
    chest.study.refresh_from_db()
    assert chest.study.modality_list == ["CT", "DOC"]
    assert "(CT, Document (PDF))" in text and "CT\\DOC" not in text
    assert "Electronically signed by Dr Specialist, Neuroradiology, General radiology; licensed in US, DE" in text
    assert "Key images" in text and "Key image: Nodule (series 1, image 1)" in text
    assert sum(len(page.images) for page in pdf.pages) == 1


def test_the_signer_credentials_are_kept_as_they_were_at_signing(
    client, chest, marked, specialist, password, django_capture_on_commit_callbacks
):
    sign(chest, specialist, password, django_capture_on_commit_callbacks)
    report = chest.reports.get()
    assert report.signer_credentials == {
        "name": "Dr Specialist",
        "specialties": ["Neuroradiology", "General radiology"],
        "jurisdictions": ["US", "DE"],
    }
    assert report.verify_hash()
    specialist.specialist_profile.jurisdictions = ["FR"]
    specialist.specialist_profile.save()
    text = " ".join(fetch_pdf(client, chest).pages[0].extract_text().split())
    assert "licensed in US, DE" in text


def test_a_key_image_that_cannot_be_rendered_leaves_its_caption(
    client, chest, marked, specialist, password, django_capture_on_commit_callbacks
):
    sign(chest, specialist, password, django_capture_on_commit_callbacks)
    instance = Instance.objects.get(series__study=chest.study, series__modality="CT", instance_number=1)
    instance.file.storage.delete(instance.file.name)
    pdf = fetch_pdf(client, chest)
    text = " ".join(" ".join(page.extract_text().split()) for page in pdf.pages)
    assert "Key image: Nodule (series 1, image 1): the image cannot be shown." in text

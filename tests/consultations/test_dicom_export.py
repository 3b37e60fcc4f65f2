"""Export: a consult's measurements as a TID 1500 SR and its signed report as an Encapsulated PDF,
both stored as new series of the study and read back here with highdicom, pydicom and pypdf."""

from __future__ import annotations

import io
import uuid

import highdicom as hd
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pypdf import PdfReader

from consultations import actions, dicom_export, reports
from consultations.models import Annotation
from studies.ingest import ingest_file
from studies.models import Instance, Series
from tests.factories import ConsultFactory, make_study
from tests.viewer.dicom import BAR, CT_SPACING, DISC, ct_slices, xa_multiframe

BASE = "/api/v1/consults/"

# What the viewer computed for the bar and the disc of the synthetic CT (tests.viewer.dicom).
BAR_MM = (BAR["x1"] - BAR["x0"]) * CT_SPACING  # 100 mm
DISC_STATS = {"area": 1256.6, "area_unit": "mm²", "mean": 60.0, "sd": 0.0, "min": 60.0, "max": 60.0, "n": 5024}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def study(physician, patient_user, django_capture_on_commit_callbacks):
    """The synthetic CT, ingested by the physician, linked to the patient's account."""
    study_uid = pydicom.uid.generate_uid()
    with django_capture_on_commit_callbacks(execute=True):
        results = []
        for ds in ct_slices(study_uid, count=2, size=256):
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            results.append(ingest_file(buffer, filename="ct.dcm", user=physician))
    assert all(r.status == "stored" for r in results), results
    study = Instance.objects.get(sop_instance_uid=results[0].sop_instance_uid).series.study
    study.patient.account = patient_user
    study.patient.save(update_fields=["account"])
    return study


@pytest.fixture
def ct_uids(study) -> list[str]:
    return list(
        Instance.objects.filter(series__study=study)
        .order_by("instance_number")
        .values_list("sop_instance_uid", flat=True)
    )


def annotate(consult, author, sop_uid: str, tool: str, points, values, label: str = "") -> Annotation:
    return Annotation.objects.create(
        id=uuid.uuid4(),
        consult=consult,
        sop_instance_uid=sop_uid,
        frame=1,
        tool=tool,
        geometry={"points": points} if points is not None else {},
        values=values,
        label=label,
        author=author,
    )


@pytest.fixture
def measured(accepted, specialist, ct_uids):
    """A length along the bar on slice 1, an ellipse on the disc of slice 2, an angle, and marks."""
    annotate(
        accepted,
        specialist,
        ct_uids[0],
        "length",
        [[BAR["x0"], BAR["y"]], [BAR["x1"], BAR["y"]]],
        {"length": BAR_MM, "unit": "mm"},
        label="Bar",
    )
    r = DISC["r"]
    annotate(
        accepted,
        specialist,
        ct_uids[1],
        "ellipse",
        [[DISC["cx"] - r, DISC["cy"] - r], [DISC["cx"] + r, DISC["cy"] + r]],
        {**DISC_STATS, "unit": "HU"},
        label="Disc",
    )
    annotate(accepted, specialist, ct_uids[0], "angle", [[10, 10], [20, 20], [30, 10]], {"angle": 90.0, "unit": "°"})
    annotate(accepted, specialist, ct_uids[0], "arrow", [[1, 1], [5, 5]], {})
    annotate(accepted, specialist, ct_uids[0], "text", [[1, 1]], {}, label="note")
    annotate(accepted, specialist, ct_uids[0], "key_image", None, {})
    return accepted


def stored_dataset(sop_uid: str) -> pydicom.Dataset:
    instance = Instance.objects.get(sop_instance_uid=sop_uid)
    with instance.file.open("rb") as fp:
        return pydicom.dcmread(fp)


def read_sr(sop_uid: str) -> hd.sr.Comprehensive3DSR:
    instance = Instance.objects.get(sop_instance_uid=sop_uid)
    with instance.file.open("rb") as fp:
        return hd.sr.srread(fp)


def groups_by_label(sr: hd.sr.Comprehensive3DSR) -> dict:
    return {g.tracking_identifier: g for g in sr.content.get_planar_roi_measurement_groups()}


def measurement(group, name) -> tuple[float, str]:
    found = group.get_measurements(name=name)
    assert len(found) == 1, [m.name for m in group.get_measurements()]
    return found[0].value, found[0].unit.value


# -- measurements -------------------------------------------------------------------------------


def test_sr_export_holds_the_length_and_ellipse_values_with_units_and_sources(
    measured, specialist, auth_client, ct_uids, study
):
    r = auth_client(specialist).post(f"{BASE}{measured.pk}/export-sr/")
    assert r.status_code == 201, r.content
    body = r.json()

    sr = read_sr(body["sop_instance_uid"])
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.StudyInstanceUID == study.study_instance_uid
    assert sr.SeriesInstanceUID == body["series_instance_uid"]
    assert sr.SeriesInstanceUID not in {
        s.series_instance_uid
        for s in Series.objects.filter(study=study).exclude(series_instance_uid=body["series_instance_uid"])
    }
    assert sr.PatientID == "VIEWER-1"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"

    groups = groups_by_label(sr)
    assert set(groups) == {"Bar", "Disc", f"Angle {str(measured.annotations.get(tool='angle').pk)[:8]}"}

    bar = groups["Bar"]
    value, unit = measurement(bar, codes.SCT.Length)
    assert value == pytest.approx(100.0, rel=0.01) and unit == "mm"
    region = bar.roi
    assert region.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    assert region.value.tolist() == [[BAR["x0"], BAR["y"]], [BAR["x1"], BAR["y"]]]
    assert region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ct_uids[0]

    disc = groups["Disc"]
    assert measurement(disc, codes.SCT.Area) == (pytest.approx(1256.6), "mm2")
    assert measurement(disc, codes.SCT.Mean) == (pytest.approx(60.0), "[hnsf'U]")
    assert measurement(disc, codes.SCT.StandardDeviation) == (pytest.approx(0.0), "[hnsf'U]")
    assert measurement(disc, codes.SCT.Minimum) == (pytest.approx(60.0), "[hnsf'U]")
    assert measurement(disc, codes.SCT.Maximum) == (pytest.approx(60.0), "[hnsf'U]")
    assert disc.roi.graphic_type == hd.sr.GraphicTypeValues.ELLIPSE
    r = DISC["r"]
    assert disc.roi.value.tolist() == [
        [DISC["cx"] - r, DISC["cy"]],
        [DISC["cx"] + r, DISC["cy"]],
        [DISC["cx"], DISC["cy"] - r],
        [DISC["cx"], DISC["cy"] + r],
    ]
    assert disc.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ct_uids[1]

    angle = next(g for label, g in groups.items() if label.startswith("Angle"))
    assert measurement(angle, codes.SCT.Angle) == (pytest.approx(90.0), "deg")

    evidence = {
        item.ReferencedSOPInstanceUID
        for series in sr.CurrentRequestedProcedureEvidenceSequence
        for item in series.ReferencedSeriesSequence[0].ReferencedSOPSequence
    }
    assert evidence == set(ct_uids)

    assert body["retrieve_url"] == (
        f"/dicomweb/studies/{study.study_instance_uid}/series/{body['series_instance_uid']}"
        f"/instances/{body['sop_instance_uid']}"
    )


def test_tracking_uids_follow_the_annotation_ids(measured, specialist):
    stored = dicom_export.export_measurements(measured, by=specialist)
    groups = groups_by_label(read_sr(stored.sop_instance_uid))
    bar = measured.annotations.get(label="Bar")
    assert groups["Bar"].tracking_uid == f"2.25.{bar.pk.int}"


def test_the_export_gives_its_author_no_access_of_their_own(measured, specialist):
    from studies.models import AccessGrant

    before = AccessGrant.objects.filter(user=specialist).count()
    stored = dicom_export.export_measurements(measured, by=specialist)
    assert AccessGrant.objects.filter(user=specialist).count() == before
    assert Instance.objects.get(sop_instance_uid=stored.sop_instance_uid).uploaded_by == specialist


def test_pixel_measurements_are_exported_in_pixels_not_millimetres(accepted, specialist, ct_uids):
    annotate(accepted, specialist, ct_uids[0], "length", [[0, 0], [30, 40]], {"length": 50.0, "unit": "px"}, "Px")
    annotate(
        accepted,
        specialist,
        ct_uids[0],
        "ellipse",
        [[0, 0], [10, 20]],
        {"area": 157.1, "area_unit": "px²", "mean": 12.5, "sd": 1.0, "min": 10, "max": 15, "n": 150, "unit": ""},
        "Läsion ø",
    )
    stored = dicom_export.export_measurements(accepted, by=specialist)
    groups = groups_by_label(read_sr(stored.sop_instance_uid))
    assert measurement(groups["Px"], codes.SCT.Length) == (pytest.approx(50.0), "{pixels}")
    assert measurement(groups["Läsion ø"], codes.SCT.Area) == (pytest.approx(157.1), "{pixels^2}")
    assert measurement(groups["Läsion ø"], codes.SCT.Mean) == (pytest.approx(12.5), "1")
    # A tall box: the major axis is vertical and comes first.
    assert groups["Läsion ø"].roi.value.tolist() == [[5, 0], [5, 20], [0, 10], [10, 10]]


def test_measurement_on_a_multiframe_image_names_its_frame(accepted, specialist, physician, study):
    buffer = io.BytesIO()
    xa_multiframe(study.study_instance_uid, frames=3).save_as(buffer, enforce_file_format=True)
    xa = ingest_file(buffer, filename="xa.dcm", user=physician)
    assert xa.status == "stored", xa
    length = annotate(
        accepted, specialist, xa.sop_instance_uid, "length", [[1, 1], [4, 5]], {"length": 5, "unit": "px"}
    )
    Annotation.objects.filter(pk=length.pk).update(frame=2, label="Frame two")

    stored = dicom_export.export_measurements(accepted, by=specialist)
    region = groups_by_label(read_sr(stored.sop_instance_uid))["Frame two"].roi
    image = region.ContentSequence[0].ReferencedSOPSequence[0]
    assert image.ReferencedSOPInstanceUID == xa.sop_instance_uid
    assert image.ReferencedFrameNumber == 2


def test_requester_may_export_and_dicomweb_lists_the_new_series(measured, physician, auth_client, client, study):
    r = auth_client(physician).post(f"{BASE}{measured.pk}/export-sr/")
    assert r.status_code == 201, r.content
    series_uid = r.json()["series_instance_uid"]

    client.force_login(physician)
    qido = client.get(f"/dicomweb/studies/{study.study_instance_uid}/series", HTTP_ACCEPT="application/dicom+json")
    assert qido.status_code == 200, qido.content
    found = {s["0020000E"]["Value"][0]: s for s in qido.json()}
    assert series_uid in found
    assert found[series_uid]["00080060"]["Value"] == ["SR"]
    instance = Instance.objects.get(sop_instance_uid=r.json()["sop_instance_uid"])
    assert instance.uploaded_by == physician


def test_outsider_gets_404_for_sr_export(measured, outsider, auth_client):
    r = auth_client(outsider).post(f"{BASE}{measured.pk}/export-sr/")
    assert r.status_code == 404
    assert not Instance.objects.filter(sop_class_uid="1.2.840.10008.5.1.4.1.1.88.34").exists()


def test_patient_may_see_the_consult_but_not_export(measured, patient_user, auth_client):
    r = auth_client(patient_user).post(f"{BASE}{measured.pk}/export-sr/")
    assert r.status_code == 403
    assert r.json()["code"] == "not_allowed"


def test_nothing_to_export_is_409(accepted, specialist, auth_client, ct_uids):
    annotate(accepted, specialist, ct_uids[0], "arrow", [[1, 1], [5, 5]], {})
    annotate(accepted, specialist, ct_uids[0], "length", [[1, 1]], {"length": 3.0, "unit": "mm"})  # broken geometry
    annotate(accepted, specialist, "1.2.3.4.5", "length", [[1, 1], [2, 2]], {"length": 1.0, "unit": "mm"})
    r = auth_client(specialist).post(f"{BASE}{accepted.pk}/export-sr/")
    assert r.status_code == 409
    assert r.json()["code"] == "nothing_to_export"


def test_export_button_on_the_consult_page_stores_the_sr(measured, specialist, client, study):
    client.force_login(specialist)
    page = client.get(f"/consults/{measured.pk}/")
    assert b"Export measurements as DICOM SR" in page.content
    r = client.post(f"/consults/{measured.pk}/do/export-sr/")
    assert r.status_code == 302
    assert Series.objects.filter(study=study, modality="SR").count() == 1


# -- signed report ------------------------------------------------------------------------------


def sign(consult, specialist, password, django_capture_on_commit_callbacks, **text):
    reports.save_draft(
        consult,
        by=specialist,
        findings=text.get("findings", "A 2 cm disc of soft tissue density."),
        impression=text.get("impression", "Benign-looking round lesion, no haemorrhage."),
    )
    with django_capture_on_commit_callbacks(execute=True):
        return reports.sign_report(consult, by=specialist, password=password)


def test_signed_report_is_stored_in_the_study_as_encapsulated_pdf(
    accepted, specialist, password, django_capture_on_commit_callbacks, study
):
    report = sign(accepted, specialist, password, django_capture_on_commit_callbacks)

    series_uid, sop_uid = dicom_export.report_pdf_uids(report)
    ds = stored_dataset(sop_uid)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert ds.Modality == "DOC"
    assert ds.SeriesInstanceUID == series_uid
    assert ds.StudyInstanceUID == study.study_instance_uid
    assert (ds.PatientID, str(ds.PatientName), ds.AccessionNumber) == ("VIEWER-1", "Viewer^Test", "V1")
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    pdf = ds.EncapsulatedDocument[: ds.EncapsulatedDocumentLength]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Benign-looking round lesion" in text
    series = Series.objects.get(series_instance_uid=series_uid)
    assert series.study == study and series.modality == "DOC"


def test_storing_a_report_pdf_twice_keeps_one(accepted, specialist, password, django_capture_on_commit_callbacks):
    report = sign(accepted, specialist, password, django_capture_on_commit_callbacks)
    assert dicom_export.store_report_pdf(report) is None
    _, sop_uid = dicom_export.report_pdf_uids(report)
    assert Instance.objects.filter(sop_instance_uid=sop_uid).count() == 1


def test_report_pdf_on_a_study_without_stored_files_takes_patient_and_study_from_the_records(
    physician, specialist, password, django_capture_on_commit_callbacks
):
    consult = ConsultFactory(requester=physician, study=make_study(uploader=physician))
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(consult, by=physician)
        actions.accept_consult(consult, by=specialist)
    consult.refresh_from_db()
    report = sign(consult, specialist, password, django_capture_on_commit_callbacks)

    ds = stored_dataset(dicom_export.report_pdf_uids(report)[1])
    study = consult.study
    assert ds.StudyInstanceUID == study.study_instance_uid
    assert (ds.PatientID, str(ds.PatientName)) == (study.patient.patient_id, "Doe^Jane")
    assert ds.StudyDescription == "CT head"

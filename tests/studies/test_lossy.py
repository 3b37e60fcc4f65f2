"""Lossy pixels are known and said: the server's tables (studies/lossy.py) match the viewer's
(static/js/viewer/lossy.js), stored instances are judged by syntax and header, and a measurement
made on lossy pixels says so in the report's lines and in the SR export."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path

import pydicom
import pytest

from consultations import actions, reports
from consultations.dicom_export import MEASURED_ON_LOSSY, _measurement_group
from consultations.models import Annotation
from studies import lossy
from studies.ingest import ingest_file
from studies.models import Instance
from tests.factories import ConsultFactory
from tests.viewer.dicom import ct_slices

JS = Path(__file__).resolve().parents[2] / "static" / "js" / "viewer" / "lossy.js"


def js_table(name: str) -> dict[str, str]:
    body = re.search(rf"export const {name} = \{{(.*?)\n\}};", JS.read_text(), re.S).group(1)
    return dict(re.findall(r'"?([\w.]+)"?: "([^"]*)"', body))


@pytest.mark.parametrize(
    ("python", "js"),
    [
        (lossy.LOSSY_SYNTAXES, "LOSSY_SYNTAXES"),
        (lossy.MAYBE_LOSSY_SYNTAXES, "MAYBE_LOSSY_SYNTAXES"),
        (lossy.METHODS, "METHODS"),
    ],
)
def test_the_viewer_and_the_server_share_one_table(python, js):
    assert js_table(js) == python


@pytest.mark.parametrize(
    ("syntax", "flag", "methods", "ratios", "text"),
    [
        ("1.2.840.10008.1.2.4.50", "", [], [], "LOSSY · JPEG"),
        ("1.2.840.10008.1.2.4.91", "", [], [], "LOSSY · JPEG 2000"),
        ("1.2.840.10008.1.2.4.91", "00", [], [], None),
        ("1.2.840.10008.1.2.4.90", "", [], [], None),
        ("1.2.840.10008.1.2.4.70", "", [], [], None),
        ("1.2.840.10008.1.2.1", "", [], [], None),
        ("1.2.840.10008.1.2.1", "01", ["ISO_10918_1"], ["9.53"], "LOSSY · JPEG · 9.5:1"),
        ("1.2.840.10008.1.2.4.91", "01", ["ISO_10918_1", "ISO_15444_1"], ["4", "5"], "LOSSY · JPEG + JPEG 2000 · 20:1"),
        ("1.2.840.10008.1.2.1", "01", ["SOMETHING_ELSE"], ["bad"], "LOSSY · SOMETHING_ELSE"),
    ],
)
def test_lossy_compression_reads_syntax_and_header(syntax, flag, methods, ratios, text):
    found = lossy.lossy_compression(syntax, flag, methods, ratios)
    assert (found.text if found else None) == text


@pytest.fixture
def consult(physician, specialist, settings, tmp_path, django_capture_on_commit_callbacks):
    """A CT of two slices, the second stored uncompressed after JPEG compression (its header says so)."""
    settings.MEDIA_ROOT = tmp_path
    study_uid = pydicom.uid.generate_uid()
    with django_capture_on_commit_callbacks(execute=True):
        for n, ds in enumerate(ct_slices(study_uid, count=2, size=64), start=1):
            if n == 2:
                ds.LossyImageCompression = "01"
                ds.LossyImageCompressionMethod = "ISO_10918_1"
                ds.LossyImageCompressionRatio = "9.53"
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            assert ingest_file(buffer, filename="ct.dcm", user=physician).status == "stored"
    study = Instance.objects.filter(series__study__study_instance_uid=study_uid).first().series.study
    made = ConsultFactory(requester=physician, study=study, specialty="general_radiology")
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(made, by=physician)
        actions.accept_consult(made, by=specialist)
    return made


def length_on(consult, specialist, image: int) -> Annotation:
    instance = Instance.objects.get(series__study=consult.study, instance_number=image)
    return Annotation.objects.create(
        id=uuid.uuid4(),
        consult=consult,
        sop_instance_uid=instance.sop_instance_uid,
        frame=1,
        tool="length",
        geometry={"points": [[1, 1], [20, 20]]},
        values={"length": 13.24, "unit": "mm"},
        author=specialist,
    )


def test_stored_instances_are_judged_by_their_header(consult):
    first, second = Instance.objects.filter(series__study=consult.study).order_by("instance_number")
    assert lossy.instance_lossy(first) is None
    assert lossy.instance_lossy(second).text == "LOSSY · JPEG · 9.5:1"


def test_a_measurement_on_lossy_pixels_says_so_in_the_report_line(consult, specialist):
    length_on(consult, specialist, 1)
    length_on(consult, specialist, 2)
    lines = [e.line for e in reports.evidence_for(consult)]
    assert lines == [
        "Length 13.2 mm (series 1, image 1)",
        "Length 13.2 mm (series 1, image 2; on lossy JPEG, 9.5:1 pixels)",
    ]


def test_the_sr_export_marks_measurements_made_on_lossy_pixels(consult, specialist):
    for image, expected in ((1, False), (2, True)):
        annotation = length_on(consult, specialist, image)
        instance = Instance.objects.get(sop_instance_uid=annotation.sop_instance_uid)
        with instance.file.open("rb") as fp:
            source = pydicom.dcmread(fp, stop_before_pixels=True)
        group = _measurement_group(annotation, source)
        names = [item.ConceptNameCodeSequence[0].CodeValue for item in group[0].ContentSequence]
        assert (MEASURED_ON_LOSSY.value in names) is expected, image


def test_wado_metadata_names_the_stored_transfer_syntax(consult, physician):
    from django.test import Client

    client = Client()
    client.force_login(physician)
    study_uid = consult.study.study_instance_uid
    answer = client.get(f"/dicomweb/studies/{study_uid}/metadata", HTTP_ACCEPT="application/dicom+json")
    assert answer.status_code == 200
    stored = {i.sop_instance_uid: i.transfer_syntax_uid for i in Instance.objects.filter(series__study=consult.study)}
    for dataset in answer.json():
        uid = dataset["00080018"]["Value"][0]
        assert dataset["00083002"] == {"vr": "UI", "Value": [stored[uid]]}

"""Photos and documents added to one study at the same moment (real PostgreSQL)."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.uid import generate_uid

from studies import photos
from studies.ingest import ingest_file
from studies.models import Instance, Series, Study
from tests.concurrency import run_together
from tests.studies import dicom_factory as f
from tests.studies.test_photos import MINIMAL_PDF, jpeg_with_exif


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def study(physician) -> Study:
    data = f.make_ct(StudyInstanceUID=generate_uid())
    result = ingest_file(io.BytesIO(data), filename="ct.dcm", user=physician)
    assert result.status == "stored", result.reason
    return Study.objects.select_related("patient").get(study_instance_uid=result.study_instance_uid)


def instance_numbers(series: Series) -> list[int]:
    numbers = []
    for instance in Instance.objects.filter(series=series):
        with instance.file.open("rb") as fp:
            numbers.append(pydicom.dcmread(fp, stop_before_pixels=True).InstanceNumber)
    return sorted(numbers)


@pytest.mark.django_db(transaction=True)
def test_simultaneous_first_photos_and_documents_go_into_one_series_per_kind_numbered_in_turn(
    postgres, physician, study
):
    files = [("photo.jpg", jpeg_with_exif())] * 5 + [("letter.pdf", MINIMAL_PDF)] * 3

    def add(name: str, data: bytes):
        return photos.add_to_study(study, io.BytesIO(data), size=len(data), filename=name, user=physician)

    added = run_together([lambda name=name, data=data: add(name, data) for name, data in files])

    assert len({instance.pk for instance in added}) == 8
    assert sorted(Series.objects.filter(study=study).values_list("modality", flat=True)) == ["CT", "DOC", "XC"]
    photo_series = Series.objects.get(study=study, modality="XC")
    document_series = Series.objects.get(study=study, modality="DOC")
    assert instance_numbers(photo_series) == [1, 2, 3, 4, 5]
    assert instance_numbers(document_series) == [1, 2, 3]
    assert (photo_series.num_instances, document_series.num_instances) == (5, 3)
    study.refresh_from_db()
    assert (study.num_series, study.num_instances, study.modalities) == (3, 9, "CT\\DOC\\XC")

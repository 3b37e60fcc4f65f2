"""Fixtures for the viewer pages: a study made directly in the database (no DICOM files)."""

from __future__ import annotations

import uuid

import pytest

from studies.models import Instance, Patient, Series, Study
from tests.factories import practice_of


def create_study(*, uploader, patient_account=None, description="CT chest") -> Study:
    suffix = uuid.uuid4().int % 10**12
    practice = practice_of(uploader)
    patient = Patient.objects.create(
        practice=practice, patient_id=f"V{suffix}", name="Doe^Jane", account=patient_account
    )
    study = Study.objects.create(
        study_instance_uid=f"1.2.826.0.1.3680043.10.{suffix}",
        practice=practice,
        patient=patient,
        description=description,
        modalities="CT",
        uploaded_by=uploader,
    )
    Series.objects.create(series_instance_uid=f"{study.study_instance_uid}.1", study=study, modality="CT")
    return study


@pytest.fixture
def study(physician, patient_user) -> Study:
    return create_study(uploader=physician, patient_account=patient_user)


def add_instance(series: Series, uid: str, *, number: int = 1, pixels: bool = True, sop_class: str = "") -> Instance:
    """An instance row (no file): an image when ``pixels``, else an object such as an RT plan."""
    metadata = {"00080018": {"vr": "UI", "Value": [uid]}}
    if pixels:
        metadata.update({"00280010": {"vr": "US", "Value": [64]}, "00280011": {"vr": "US", "Value": [64]}})
    return Instance.objects.create(
        sop_instance_uid=uid,
        series=series,
        sop_class_uid=sop_class or ("1.2.840.10008.5.1.4.1.1.2" if pixels else "1.2.840.10008.5.1.4.1.1.481.5"),
        instance_number=number,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        has_pixel_data=pixels,
        sha256="0" * 64,
        metadata=metadata,
    )


@pytest.fixture
def image_study(physician, patient_user) -> Study:
    """A study whose one series holds one image."""
    study = create_study(uploader=physician, patient_account=patient_user)
    add_instance(study.series.get(), f"{study.study_instance_uid}.1.1")
    return study

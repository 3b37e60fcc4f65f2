"""Fixtures for the viewer pages: a study made directly in the database (no DICOM files)."""

from __future__ import annotations

import uuid

import pytest

from studies.models import Patient, Series, Study
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

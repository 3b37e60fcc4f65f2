"""Demo data: a small study built from pydicom's own test images, for ``manage.py seed_demo``."""

from __future__ import annotations

import io
import uuid

import pydicom
from pydicom.data import get_testdata_file

from .ingest import REFUSED, ingest_file
from .models import Patient, Study

DEMO_PATIENT_ID = "DEMO-0001"
DEMO_ISSUER = "teleconsult-demo"
DEMO_PATIENT_NAME = "Demo^Patient"
_NAMESPACE = uuid.UUID("6f1d2c1e-5b0a-4c4e-9a51-1d6c7e9b2f30")


def demo_uid(name: str) -> str:
    """A fixed UID for a demo object, so seeding again finds the same study."""
    return f"2.25.{uuid.uuid5(_NAMESPACE, name).int}"


DEMO_STUDY_UID = demo_uid("study")
# (pydicom test file, series description, series number)
DEMO_FILES = [
    ("CT_small.dcm", "Head CT", 1),
    ("MR_small.dcm", "Head MR T1", 2),
    ("emri_small.dcm", "MR cine (10 frames)", 3),
]


def demo_file(name: str, description: str, number: int) -> bytes:
    """One demo instance: the test image under the demo patient and fixed UIDs."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.PatientID = DEMO_PATIENT_ID
    ds.IssuerOfPatientID = DEMO_ISSUER
    ds.PatientName = DEMO_PATIENT_NAME
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = DEMO_STUDY_UID
    ds.StudyDescription = "Demo: head CT and MR"
    ds.StudyDate = "20260102"
    ds.StudyTime = "093000"
    ds.AccessionNumber = "DEMO-ACC-1"
    ds.SeriesInstanceUID = demo_uid(f"series:{name}")
    ds.SeriesDescription = description
    ds.SeriesNumber = number
    ds.SOPInstanceUID = demo_uid(f"instance:{name}")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def seed_demo_study(physician, patient_user) -> Study:
    """Ingest the demo study as ``physician`` and link its patient to ``patient_user``. Idempotent."""
    for name, description, number in DEMO_FILES:
        result = ingest_file(io.BytesIO(demo_file(name, description, number)), filename=name, user=physician)
        # A conflict means the demo instance is already there (written by another pydicom version).
        if result.status == REFUSED and result.code != "conflict":
            raise RuntimeError(f"The demo file {name} was refused: {result.reason}")
    study = Study.objects.select_related("patient").get(study_instance_uid=DEMO_STUDY_UID)
    # The demo patient's consent is taken as given: the demo account is theirs.
    Patient.objects.filter(pk=study.patient_id, account__isnull=True).update(account=patient_user)
    study.refresh_from_db()
    return study

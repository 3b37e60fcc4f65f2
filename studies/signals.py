"""Grants keep copies of their study's sort keys and search text (studies.models.AccessGrant):
when a study or a patient record is saved with other values, its grants take them again, so a
search never skips a study it should find. Bulk updates call ``copy_study_keys`` themselves
(studies.admin.merge_patient)."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import AccessGrant, Patient, Study

STUDY_COPIED = {"patient", "patient_id", "accession_number", "study_date", "study_time"}
PATIENT_COPIED = {"name", "patient_id"}


def _touches(update_fields, copied: set[str]) -> bool:
    return update_fields is None or bool(copied & set(update_fields))


@receiver(post_save, sender=Study, dispatch_uid="study-grant-copies")
def study_saved(sender, instance: Study, created: bool, update_fields=None, raw=False, **kwargs) -> None:
    if not created and not raw and _touches(update_fields, STUDY_COPIED):
        AccessGrant.objects.filter(study=instance).copy_study_keys()


@receiver(post_save, sender=Patient, dispatch_uid="patient-grant-copies")
def patient_saved(sender, instance: Patient, created: bool, update_fields=None, raw=False, **kwargs) -> None:
    if not created and not raw and _touches(update_fields, PATIENT_COPIED):
        AccessGrant.objects.filter(study__patient=instance).copy_study_keys()

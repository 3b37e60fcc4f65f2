"""Grants keep copies of their study's sort keys and search text (studies.models.AccessGrant):
when a study or a patient record is saved with other values, its grants take them again, so a
search never skips a study it should find. Bulk updates call ``copy_study_keys`` themselves
(studies.admin.merge_patient).

``study_received`` tells higher apps (webhooks) that the ingest stored the first files of new
studies: sent inside the transaction that created them, with ``study_pks``, so a listener that acts
on it outside registers ``transaction.on_commit`` itself (and only when it has something to do).
The ingest writes studies in bulk, so ``post_save`` never fires for them."""

from __future__ import annotations

import logging

from django.db.models.signals import post_save
from django.dispatch import Signal, receiver

from .models import AccessGrant, Patient, Study

STUDY_COPIED = {"patient", "patient_id", "accession_number", "study_date", "study_time"}
PATIENT_COPIED = {"name", "patient_id"}

logger = logging.getLogger(__name__)

study_received = Signal()  # sender=Study, study_pks=[...]


def announce_received(study_pks) -> None:
    """``study_received`` for the studies the ingest created in this transaction. A listener that
    fails is logged: the studies are stored whatever a listener does with the news."""
    pks = sorted(study_pks)
    if not pks:
        return
    for listener, result in study_received.send_robust(sender=Study, study_pks=pks):
        if isinstance(result, Exception):
            logger.error("study_received listener %r failed for studies %s", listener, pks, exc_info=result)


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

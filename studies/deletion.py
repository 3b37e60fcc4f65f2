"""Deleting a study, a series or an instance: who may, when it is refused, and what it removes.

This is how images are corrected. Re-sending a SOP Instance UID with other content (a
demographics fix, another transfer syntax) is refused as a conflict (``studies.ingest``), so a
correction deletes what was wrong and sends it again (docs/dicomweb-conformance.md,
"Corrections"). DICOMweb's ``DELETE``, the REST API and the study page all call :func:`delete`.

- **Who**: administrators; members of the study's practice who uploaded it or are its practice
  admins. Anyone who may not see the study gets a 404 (``get_study_for_user``); someone who sees
  it (a colleague, a consulting specialist, the patient) but may not delete it a 403.
- **Refused (409)**: a study that rows of another app hold (a foreign key with ``on_delete``
  PROTECT or RESTRICT: a consult, whatever its state), in whole or in part. A consult keeps the
  images it was asked about, with its report and annotations on them, so neither the study nor any
  of its series or instances goes while one refers to it. The rule is read from the models, as
  ``studies.sweep`` reads file fields, so ``studies`` names no model of a higher app.
- **What goes**: the rows, at once and in one transaction (series, instances, access grants,
  share links). A series or study left without instances goes with its last one, so that the
  corrected images can be sent again under another patient. What stays has its counts,
  ModalitiesInStudy and identities (``studies.identity``) recounted. The access history keeps every
  event (their study column is emptied when the study row goes; the UID stays) and gains a
  ``deleted`` event, which names the patient record when the whole study went, so that the
  practice's admins still read it.
- **Files**: nothing refers to them any more, and the sweep (``studies.sweep``, the daily
  ``sweep_files`` task) removes them once older than ``TELECONSULT_SWEEP_GRACE_HOURS``. The sweep
  goes by a file's modification time, which is when it was stored, so files on local disk are
  touched once the deletion commits: the grace period runs from the deletion.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from django.core.files.storage import FileSystemStorage, default_storage
from django.db import models, transaction
from django.db.models import F
from django.http import Http404, HttpRequest

from accounts.practices import may_manage
from teleconsult.errors import PortalError

from . import audit, identity
from .models import Instance, Series, Study
from .permissions import ShareAccess, get_study_for_user

# Deletion rules that refuse when a related row exists.
HOLDING_RULES = (models.PROTECT, models.RESTRICT)
# How many of the holding rows a refusal names.
NAMED_HOLDERS = 3


class DeletionError(PortalError):
    """A deletion refused: 409 when the study is held by other rows, 403 for a user who sees it
    but may not delete it."""

    status = 409
    code = "study_in_use"


@dataclass(frozen=True)
class Deleted:
    """What one deletion removed."""

    study_uid: str
    series: int
    instances: int
    study_removed: bool


def may_delete(user, study: Study) -> bool:
    """Administrators; members of the study's practice who uploaded it or administer the practice."""
    if not user or isinstance(user, ShareAccess) or not user.is_authenticated or not user.is_active:
        return False
    if user.is_admin:
        return True
    if user.is_patient or study.practice_id not in user.practice_ids():
        return False
    return study.uploaded_by_id == user.pk or may_manage(user, study.practice)


def study_to_delete(user, study_uid: str) -> Study:
    """The study, when ``user`` may delete it: 404 when they may not see it, 403 when they may only see it."""
    study = get_study_for_user(user, study_uid)
    if not may_delete(user, study):
        raise DeletionError(
            "Only the clinician who uploaded this study, the admins of its practice and administrators may delete it.",
            status=403,
            code="may_not_delete",
        )
    return study


def refusal(study: Study) -> str | None:
    """Why the study cannot be deleted, in whole or in part, or None when it can."""
    holders: list[str] = []
    count = 0
    for relation in Study._meta.related_objects:
        if relation.on_delete not in HOLDING_RULES:
            continue
        rows = relation.related_model._base_manager.filter(**{relation.field.name: study}).order_by("pk")
        found = rows.count()
        if found:
            count += found
            holders += [str(row) for row in rows[:NAMED_HOLDERS]]
    if not count:
        return None
    named = "; ".join(f"“{holder}”" for holder in holders[:NAMED_HOLDERS])
    more = f" and {count - NAMED_HOLDERS} more" if count > NAMED_HOLDERS else ""
    return (
        f"This study cannot be deleted, in whole or in part: {named}{more} refer{'s' if count == 1 else ''} to it. "
        "A consult keeps the images it was asked about, with its report and annotations, whatever its state. "
        "Send corrected images under new SOP Instance UIDs instead."
    )


def delete(
    request: HttpRequest, user, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
) -> Deleted:
    """Delete the study, or one of its series, or one instance, for ``user``; recorded in the access history."""
    study = study_to_delete(user, study_uid)
    with transaction.atomic():
        # Locked: an upload adding to the study waits, and two deletions of it do not interleave.
        study = Study.objects.select_for_update(of=("self",)).select_related("patient").get(pk=study.pk)
        reason = refusal(study)
        if reason:
            raise DeletionError(reason)
        instances = Instance.objects.filter(series__study=study)
        series = None
        if series_uid is not None:
            series = _series(study, series_uid)
            instances = instances.filter(series=series)
        if sop_uid is not None:
            instances = instances.filter(sop_instance_uid=sop_uid)
            if not instances.exists():
                raise Http404("No such instance.")
        files = [name for pair in instances.values_list("file", "thumbnail") for name in pair if name]
        removed = _remove(study, series, instances, whole=series_uid is None)
        audit.record_deletion(
            request, user=user, study=study, obj=sop_uid or series_uid or study_uid, study_removed=removed.study_removed
        )
        transaction.on_commit(lambda: start_grace(files))
    return removed


def _series(study: Study, series_uid: str) -> Series:
    try:
        return study.series.get(series_instance_uid=series_uid)
    except Series.DoesNotExist:
        raise Http404("No such series.") from None


def _remove(study: Study, series: Series | None, instances, *, whole: bool) -> Deleted:
    """Remove the instances (and the series or study they leave empty); update the counts of what stays."""
    uid = study.study_instance_uid
    if whole:
        removed = Deleted(uid, study.series.count(), instances.count(), study_removed=True)
        study.delete()
        return removed
    in_series = Instance.objects.filter(series=series)
    count = instances.count()
    emptied = count == in_series.count()
    instances.delete()
    if emptied:
        series.delete()
    else:
        Series.objects.filter(pk=series.pk).update(num_instances=F("num_instances") - count)
    if not study.series.exists():
        study.delete()
        return Deleted(uid, int(emptied), count, study_removed=True)
    modalities = sorted({m for m in study.series.values_list("modality", flat=True) if m})
    Study.objects.filter(pk=study.pk).update(
        num_instances=F("num_instances") - count,
        num_series=F("num_series") - int(emptied),
        modalities="\\".join(modalities)[:128],
    )
    # Deleting the image that named another patient is how a mixed study is corrected.
    identity.refresh([study.pk])
    return Deleted(uid, int(emptied), count, study_removed=False)


def start_grace(names: list[str]) -> None:
    """Give the deleted files a fresh modification time, so the sweep keeps them for its grace period
    counted from now. Only local files can be touched: on other storages (S3) the grace period runs
    from when the file was stored, and an old file goes at the next sweep."""
    if not isinstance(default_storage, FileSystemStorage):
        return
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.utime(default_storage.path(name))

"""Priors: a clinician searches a registered DICOM node for a patient's earlier studies and pulls
the ones chosen into the portal.

A search and a retrieval are always *for* something, a ``Target``: a patient record (studies'
own) or a consult (registered by consultations through ``register_target``, so ``studies`` never
imports it). The target says who may search (a clinician member of its practice), which practice
the study is filed under, and who else gets access once it is in (a consult's care team).

- Search: C-FIND at study level (Study Root) by PatientID, name, date range and modality, or
  QIDO-RS for a node that is a DICOMweb server.
- Retrieve: one ``PriorRetrieval`` row and one Celery task per study (``studies.tasks.retrieve_prior``):
  C-MOVE to the portal's own receiver (which files what arrives by the row: ``filing_for``), C-GET
  on the association, or WADO-RS. The row holds the sub-operation counts as the answers arrive;
  the page polls them (static/js/priors.js).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.http import Http404
from django.utils import timezone
from pydicom.dataset import Dataset

from accounts.models import Organization
from teleconsult.errors import PortalError

from . import ingest
from .dimse import client
from .ingest import dimse as ingest_dimse
from .models import AccessGrant, DicomNode, NodeStudy, Patient, PriorRetrieval, Study
from .permissions import grant_access

logger = logging.getLogger(__name__)

_MODALITY = re.compile(r"^[A-Z0-9_]{1,16}$")
# Studies one request may pull at once.
MAX_RETRIEVE = 20
# Retrievals listed for a target.
RECENT = 20


class PriorsError(PortalError):
    """A search or retrieval that cannot be made as asked; the message names the problem."""

    code = "invalid_prior_search"


class NothingFoundError(PriorsError):
    status = 404
    code = "nothing_found"


# -- targets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What priors are pulled for: where they are filed, and who gets access besides the practice."""

    kind: str
    pk: int
    label: str
    practice: Organization
    patient_id: str = ""
    patient_name: str = ""
    grant_user_ids: tuple[int, ...] = ()
    grant_reason: str = ""
    grant_source: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.pk}"


Resolver = Callable[[object, int], "Target | None"]
_resolvers: dict[str, Resolver] = {}


def register_target(kind: str, resolver: Resolver) -> None:
    """``resolver(user, pk)``: the Target when ``user`` may pull priors for it, else None."""
    _resolvers[kind] = resolver


def target_for(user, kind: str, pk) -> Target:
    """The target when ``user`` may pull priors for it; Http404 otherwise (existence does not leak)."""
    resolver = _resolvers.get(kind)
    try:
        target = resolver(user, int(pk)) if resolver is not None and _is_clinician(user) else None
    except (ValueError, TypeError):
        target = None
    if target is None:
        raise Http404("No such page.")
    return target


def _is_clinician(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and (user.is_physician or user.is_specialist))


def patient_target(user, pk: int) -> Target | None:
    """A patient record, for a clinician member of its practice."""
    patient = Patient.objects.filter(pk=pk, practice_id__in=user.practice_ids()).select_related("practice").first()
    if patient is None:
        return None
    return Target(
        kind="patient",
        pk=patient.pk,
        label=f"patient {patient.display_name}",
        practice=patient.practice,
        patient_id=patient.patient_id,
        patient_name=str(patient.name or ""),
    )


register_target("patient", patient_target)


def nodes_for_target(target: Target):
    """The enabled nodes of the target's practice, which priors may come from."""
    return DicomNode.objects.filter(practice=target.practice, enabled=True).order_by("ae_title", "pk")


def node_for_target(target: Target, pk) -> DicomNode:
    try:
        return nodes_for_target(target).get(pk=int(pk))
    except (DicomNode.DoesNotExist, ValueError, TypeError):
        raise PriorsError("Choose one of your practice's DICOM nodes to search.") from None


# -- searching ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    patient_id: str = ""
    name: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    modality: str = ""

    def describe(self) -> str:
        parts = [f"PatientID {self.patient_id}" if self.patient_id else "", f"name {self.name}" if self.name else ""]
        if self.date_from or self.date_to:
            parts.append(f"dates {self.date_from or '…'} to {self.date_to or '…'}")
        parts.append(f"modality {self.modality}" if self.modality else "")
        return ", ".join(p for p in parts if p)


def _date(value, label: str) -> dt.date | None:
    text = str(value or "").strip()
    if not text:
        return None
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise PriorsError(f"{label} {text[:20]!r} is not a date: write it as YYYY-MM-DD.")


def _text(value, label: str, limit: int) -> str:
    text = str(value or "").strip()
    if len(text) > limit:
        raise PriorsError(f"{label} is {len(text)} characters long; the limit is {limit}.")
    if any(char in text for char in "\\\r\n\t") or not text.isprintable():
        raise PriorsError(f"{label} may not contain a backslash or control characters.")
    return text


def clean_query(data) -> Query:
    """The search from a form or JSON body; PriorsError naming what is wrong."""
    query = Query(
        patient_id=_text(data.get("patient_id"), "Patient ID", 64),
        name=_text(data.get("name"), "Name", 64),
        date_from=_date(data.get("date_from"), "From"),
        date_to=_date(data.get("date_to"), "To"),
        modality=_text(data.get("modality"), "Modality", 16).upper(),
    )
    if not (query.patient_id or query.name):
        raise PriorsError("Give a patient ID or a name to search for: a whole archive is not searched.")
    if query.date_from and query.date_to and query.date_from > query.date_to:
        raise PriorsError(f"From ({query.date_from}) is after To ({query.date_to}).")
    if query.modality and not _MODALITY.match(query.modality):
        raise PriorsError(f"Modality {query.modality!r} is not a modality code such as CT, MR or CR.")
    return query


def _dicom_date_range(query: Query) -> str:
    if not (query.date_from or query.date_to):
        return ""
    start = query.date_from.strftime("%Y%m%d") if query.date_from else ""
    end = query.date_to.strftime("%Y%m%d") if query.date_to else ""
    return start if start == end else f"{start}-{end}"


def _name_pattern(name: str) -> str:
    """A name as DICOM PN matching: "Doe" finds "DOE^JOHN"; the user's own wildcards are kept."""
    if not name or "*" in name or "?" in name:
        return name
    return name.replace(" ", "*") + "*"


@dataclass
class Found:
    """One study the node has."""

    study_instance_uid: str
    date: dt.date | None
    description: str
    modalities: str
    accession_number: str
    patient_name: str
    patient_id: str
    instances: int | None
    here: bool = False
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "study_instance_uid": self.study_instance_uid,
            "date": self.date.isoformat() if self.date else None,
            "description": self.description,
            "modalities": self.modalities,
            "accession_number": self.accession_number,
            "patient_name": self.patient_name,
            "patient_id": self.patient_id,
            "instances": self.instances,
            "here": self.here,
        }


def _found(ds: Dataset) -> Found | None:
    uid = str(ds.get("StudyInstanceUID", "") or "").strip()
    if not uid:
        return None
    try:
        date = dt.datetime.strptime(str(ds.get("StudyDate", "") or ""), "%Y%m%d").date()
    except ValueError:
        date = None
    modalities = ds.get("ModalitiesInStudy", "") or ""
    if not isinstance(modalities, str):
        modalities = "\\".join(str(m) for m in modalities)
    count = ds.get("NumberOfStudyRelatedInstances", None)
    try:
        count = int(count) if count not in (None, "") else None
    except (TypeError, ValueError):
        count = None
    return Found(
        study_instance_uid=uid,
        date=date,
        description=str(ds.get("StudyDescription", "") or ""),
        modalities=modalities,
        accession_number=str(ds.get("AccessionNumber", "") or ""),
        patient_name=str(ds.get("PatientName", "") or "").replace("^", " ").strip(),
        patient_id=str(ds.get("PatientID", "") or ""),
        instances=count,
    )


def _identifier(query: Query) -> Dataset:
    ds = Dataset()
    ds.PatientID = query.patient_id
    ds.PatientName = _name_pattern(query.name)
    ds.StudyDate = _dicom_date_range(query)
    ds.ModalitiesInStudy = query.modality
    return ds


def search(node: DicomNode, query: Query, *, user=None) -> list[Found]:
    """The node's studies matching ``query``, newest first; NothingFoundError when there are none."""
    if node.kind == DicomNode.Kind.DICOMWEB:
        from . import priors_web

        datasets = priors_web.search(node, query)
    else:
        datasets = client.find_studies(node, _identifier(query))
    found = [f for f in map(_found, datasets) if f is not None]
    if not found:
        raise NothingFoundError(f"{node.ae_title} has no study matching {query.describe()}.")
    here = set(
        Study.objects.filter(study_instance_uid__in=[f.study_instance_uid for f in found]).values_list(
            "study_instance_uid", flat=True
        )
    )
    if user is not None:
        here &= set(
            Study.objects.visible_to(user)
            .filter(study_instance_uid__in=here)
            .values_list("study_instance_uid", flat=True)
        )
    for f in found:
        f.here = f.study_instance_uid in here
    found.sort(key=lambda f: f.date or dt.date.min, reverse=True)
    return found


# -- retrieving ---------------------------------------------------------------------------------


def _clean_uids(uids) -> list[str]:
    if isinstance(uids, str):
        uids = [uids]
    cleaned = []
    for uid in uids or []:
        uid = str(uid).strip()
        if not uid or len(uid) > 64 or not re.match(r"^[0-9.]+$", uid):
            raise PriorsError(f"{uid[:70]!r} is not a StudyInstanceUID.")
        if uid not in cleaned:
            cleaned.append(uid)
    if not cleaned:
        raise PriorsError("Choose at least one study to retrieve.")
    if len(cleaned) > MAX_RETRIEVE:
        raise PriorsError(f"{len(cleaned)} studies chosen; retrieve at most {MAX_RETRIEVE} at a time.")
    return cleaned


def start_retrievals(target: Target, node: DicomNode, study_uids, *, by, descriptions=None) -> list[PriorRetrieval]:
    """A retrieval row per study (one already under way for this target is reused), each queued
    after commit."""
    from . import tasks

    descriptions = descriptions or {}
    rows = []
    with transaction.atomic():
        for uid in _clean_uids(study_uids):
            running = PriorRetrieval.objects.filter(
                node=node, study_instance_uid=uid, target=target.key, status__in=PriorRetrieval.ACTIVE
            ).first()
            if running is not None:
                rows.append(running)
                continue
            row = PriorRetrieval.objects.create(
                node=node,
                practice=target.practice,
                requested_by=by,
                target=target.key,
                study_instance_uid=uid,
                description=str(descriptions.get(uid, ""))[:256],
                grant_user_ids=sorted(set(target.grant_user_ids)),
                grant_reason=target.grant_reason,
                grant_source=target.grant_source,
            )
            rows.append(row)
            transaction.on_commit(lambda pk=row.pk: tasks.retrieve_prior.delay(retrieval_pk=pk))
    return rows


def retrievals_for(target: Target):
    return PriorRetrieval.objects.filter(target=target.key).select_related("node", "study")[:RECENT]


def retrieval_as_dict(row: PriorRetrieval) -> dict:
    from django.urls import reverse

    return {
        "id": row.pk,
        "study_instance_uid": row.study_instance_uid,
        "description": row.description,
        "node": row.node.ae_title,
        "status": row.status,
        "status_text": row.get_status_display(),
        "active": row.is_active,
        "percent": row.percent,
        "remaining": row.remaining,
        "completed": row.completed,
        "failed": row.failed,
        "warning": row.warning,
        "error": row.error,
        "url": reverse("studies:detail", args=[row.study.study_instance_uid]) if row.study_id else None,
    }


def filing_for(node_pk: int) -> dict[str, tuple]:
    """For the receiver, at the start of an association from node ``node_pk``: the studies being
    pulled from it right now, StudyInstanceUID -> (uploader, practice) to file them under."""
    rows = (
        PriorRetrieval.objects.filter(node_id=node_pk, status__in=PriorRetrieval.ACTIVE)
        .select_related("requested_by", "practice")
        .order_by("created_at")
    )
    return {row.study_instance_uid: (row.requested_by, row.practice) for row in rows}


def note_origin(node_pk: int, study_uid: str) -> None:
    """Remember that ``study_uid`` came from the node (its results go back there)."""
    now = timezone.now()
    if not NodeStudy.objects.filter(node_id=node_pk, study_instance_uid=study_uid).update(last_at=now):
        NodeStudy.objects.get_or_create(
            node_id=node_pk, study_instance_uid=study_uid, defaults={"first_at": now, "last_at": now}
        )


def run(retrieval_pk: int) -> str:
    """Pull one study (the task's work); its final status. A retrieval already finished is left alone."""
    with transaction.atomic():
        row = (
            PriorRetrieval.objects.select_for_update()
            .filter(pk=retrieval_pk, status__in=PriorRetrieval.ACTIVE)
            .select_related("node", "practice", "requested_by")
            .first()
        )
        if row is None:
            return ""
        row.mark_running()
    node = row.node

    def progress(counts: client.Progress) -> None:
        row.record_progress(
            remaining=counts.remaining, completed=counts.completed, failed=counts.failed, warning=counts.warning
        )

    error = ""
    try:
        if node.kind == DicomNode.Kind.DICOMWEB:
            from . import priors_web

            final = priors_web.retrieve(node, row.study_instance_uid, on_progress=progress, on_instance=_filer(row))
        elif node.retrieve_with == DicomNode.Retrieve.GET:
            final = client.get_study(node, row.study_instance_uid, on_progress=progress, on_instance=_filer(row))
        else:
            final = client.move_study(node, row.study_instance_uid, on_progress=progress)
        row.record_progress(remaining=0, completed=final.completed, failed=final.failed, warning=final.warning)
        if final.failed:
            error = f"{final.failed} instance(s) could not be retrieved or were refused (see the receiver's log)."
    except PortalError as exc:
        error = exc.message
    study = Study.objects.filter(study_instance_uid=row.study_instance_uid).first()
    if study is None and not error:
        error = f"{node.ae_title} reported the retrieval done, but no instance of the study arrived."
    if study is not None:
        _grant(row, study)
        note_origin(node.pk, study.study_instance_uid)
    row.finish(study=study, error=error)
    logger.info("Prior %s from %s: %s %s", row.study_instance_uid, node, row.status, error)
    return row.status


def _filer(row: PriorRetrieval):
    """Ingest one instance received on the retrieval's own connection (C-GET, WADO-RS) as the
    requester's upload to the target's practice; the C-STORE status."""

    def file(path: str) -> int:
        result = ingest.ingest_file(
            path, filename=f"{row.node.ae_title}/{os.path.basename(path)}", user=row.requested_by, practice=row.practice
        )
        return ingest_dimse.answer_for(result).status

    return file


def _grant(row: PriorRetrieval, study: Study) -> None:
    if not row.grant_user_ids:
        return
    from django.contrib.auth import get_user_model

    reason = row.grant_reason or AccessGrant.Reason.SHARED
    for user in get_user_model().objects.filter(pk__in=row.grant_user_ids, is_active=True):
        grant_access(user=user, study=study, reason=reason, granted_by=row.requested_by, source=row.grant_source)


def write_temporary(data: bytes) -> str:
    """A temporary file holding ``data`` (for ingest, which stores files)."""
    fd, path = tempfile.mkstemp(suffix=".dcm")
    with os.fdopen(fd, "wb") as fp:
        fp.write(data)
    return path

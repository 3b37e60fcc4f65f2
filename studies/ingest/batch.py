"""The database side of ingest: the rows of a batch of checked files written together, in one
transaction, and their thumbnails queued after commit.

``IngestBatch`` is one piece: its transactions, the settling of every file (stored, re-sent,
repeated, conflicting, forbidden) and its retry one file at a time share its state. How rows reach
the database fast is ``rows``; this module uses the ORM's public API only.
"""

from __future__ import annotations

import functools
import logging
import operator
from dataclasses import dataclass, field

from django.db import DataError, IntegrityError, OperationalError, transaction
from django.db.models import Q

from accounts.practices import default_practice

from .. import identity, signals, storage
from ..models import Instance, Patient, PatientMerge, Series, Study
from ..permissions import visible_studies
from . import rows
from .checks import Pending
from .results import ALREADY_STORED, REFUSED, STORED, IngestResult, refusal_code

logger = logging.getLogger(__name__)


@dataclass
class _Written:
    """What one write of pending files did, applied to the batch only once its savepoint is released."""

    stored: list[tuple[Pending, Instance, Study, Series]] = field(default_factory=list)
    new_series: set[str] = field(default_factory=set)
    refused: list[tuple[Pending, str, str]] = field(default_factory=list)
    resent: list[tuple[Pending, int, str]] = field(default_factory=list)  # (file, stored pk, stored sha256)
    repeats: list[tuple[Pending, Pending]] = field(default_factory=list)  # (file, earlier file in this write)
    allowed: set[str] = field(default_factory=set)
    created: set[int] = field(default_factory=set)  # pks of the studies this write created


class _RowsChangedError(IntegrityError):
    """Rows a write depends on were stored by a simultaneous upload after the write looked them up."""


def _sort_out(
    items: list[Pending], existing: dict[str, tuple[int, str]], forbidden: set[str], written: _Written
) -> list[Pending]:
    """Settle the files of studies the user may not see, re-sends and repeats; the others."""
    firsts: dict[str, Pending] = {}
    fresh: list[Pending] = []
    for item in items:
        if item.study_instance_uid in forbidden:
            # Otherwise one instance carrying someone else's StudyInstanceUID would be a way into
            # their study (the uploader is granted access to the study it lands in).
            reason = (
                f"The file belongs to study {item.study_instance_uid}, which is stored and not shared "
                "with you: ask for access to it first."
            )
            written.refused.append((item, "forbidden_study", reason))
        elif item.sop_instance_uid in existing:
            written.resent.append((item, *existing[item.sop_instance_uid]))
        elif item.sop_instance_uid in firsts:
            written.repeats.append((item, firsts[item.sop_instance_uid]))
        else:
            firsts[item.sop_instance_uid] = item
            fresh.append(item)
    return fresh


def _in_their_series(
    items: list[Pending], studies: dict[str, Study], series: dict[str, Series], written: _Written
) -> list[Pending]:
    """The files whose series is new or already in their own study; the others are conflicts."""
    kept: list[Pending] = []
    owners: dict[str, str] = {}  # series UID -> study UID, for series new in this write
    for item in items:
        known = series.get(item.series_instance_uid)
        if known is not None:
            study = studies.get(item.study_instance_uid)
            if study is None and known.study.study_instance_uid == item.study_instance_uid:
                raise _RowsChangedError("the study was stored by a simultaneous upload after it was looked up")
            belongs = study is not None and known.study_id == study.pk
        else:
            belongs = owners.setdefault(item.series_instance_uid, item.study_instance_uid) == item.study_instance_uid
        if belongs:
            kept.append(item)
        else:
            reason = f"Series {item.series_instance_uid} is already stored in another study; the stored one is kept."
            written.refused.append((item, "conflict", reason))
    return kept


def _patient_key(item: Pending) -> tuple[str, str]:
    return item.patient["patient_id"], item.patient["issuer"]


def _describe_patient(key: tuple[str, str]) -> str:
    patient_id, issuer = key
    if not patient_id:
        return "no PatientID"
    return f"PatientID {patient_id}" + (f" (issuer {issuer})" if issuer else "")


def _of_their_patient(items: list[Pending], studies: dict[str, Study], written: _Written) -> list[Pending]:
    """The files naming their study's patient; the others are refused.

    A study has one patient: a file with another PatientID or IssuerOfPatientID is refused rather
    than filed under the study's patient record, where a search by its own PatientID would never
    find it. A stored study's patient is its record's (or a record an administrator merged into
    it: PatientMerge); a new study's is the one its first file in this write names."""
    stored = {studies[item.study_instance_uid].patient_id for item in items if item.study_instance_uid in studies}
    records = {}  # patient pk -> (PatientID, issuer) of the record
    if stored:
        rows = Patient.objects.filter(pk__in=stored).values_list("pk", "patient_id", "issuer")
        records = {pk: (patient_id, issuer) for pk, patient_id, issuer in rows}
    accepted = {pk: {key} for pk, key in records.items()}
    firsts: dict[str, tuple[str, str]] = {}  # new study UID -> the patient its first file names

    def patient_of(item: Pending) -> tuple[tuple[str, str] | None, set[tuple[str, str]]]:
        study = studies.get(item.study_instance_uid)
        if study is None:
            first = firsts.setdefault(item.study_instance_uid, _patient_key(item))
            return first, {first}
        return records.get(study.patient_id), accepted.get(study.patient_id, set())

    if any(_patient_key(item) not in patient_of(item)[1] for item in items) and stored:
        merges = PatientMerge.objects.filter(into_id__in=stored)
        for into, patient_id, issuer in merges.values_list("into_id", "merged_patient_id", "merged_issuer"):
            accepted.setdefault(into, set()).add((patient_id, issuer))
    kept = []
    for item in items:
        theirs, keys = patient_of(item)
        if _patient_key(item) in keys or theirs is None:
            kept.append(item)
            continue
        where = "stored" if item.study_instance_uid in studies else "sent in this upload"
        reason = (
            f"The file names {_describe_patient(_patient_key(item))}, but study {item.study_instance_uid} is "
            f"{where} for {_describe_patient(theirs)}: a study has one patient. Correct the file's patient or "
            "its StudyInstanceUID."
        )
        written.refused.append((item, "patient_mismatch", reason))
    return kept


class IngestBatch:
    """The database side of ingesting several files: their rows written together, in one transaction.

    ``ingest_file`` checks and stages each file and hands it to the batch; when the batch commits,
    the rows of all its files are written at once: one query for the instances already stored, one
    to lock the batch's stored studies (in UID order, so simultaneous uploads do not deadlock), one
    for their patients (a file naming another patient than its study's is refused), one for their
    series, the new rows inserted in bulk, the counts written once per study, and one
    render message for the lot. Results handed out by ``ingest_file`` inside a batch are final once
    the batch has committed.

    When a simultaneous upload creates one of the same rows first, the bulk write is rolled back (a
    savepoint) and the files are written one by one, each settling as stored, already stored or a
    conflict. Files moved into storage by a transaction that is rolled back are deleted again.
    """

    def __init__(self, user, *, practice=None) -> None:
        self.user = user
        self.uploader = user if user is not None and user.is_authenticated else None
        # The practice new studies (and their patient records) are filed under: the one named,
        # else the uploader's default practice. Files adding to a stored study go to its practice.
        self.practice = practice if practice is not None else default_practice(self.uploader)
        self._atomic: transaction.Atomic | None = None
        # Study UIDs this batch's user may add to, kept across the batch's transactions.
        self._allowed: set[str] = set()

    def __enter__(self) -> IngestBatch:
        self._begin()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit(restart=False)
        else:
            self._end(exc_type, exc, tb)

    def add(self, checked: Pending | IngestResult) -> IngestResult:
        """Take a checked file (its rows are written at commit); its result, final once committed."""
        if isinstance(checked, IngestResult):
            return checked
        self._pending.append(checked)
        return checked.result

    def _begin(self) -> None:
        self._studies: dict[str, Study] = {}  # locked in this transaction
        self._series: dict[str, Series] = {}
        self._series_added: dict[int, int] = {}  # series pk -> instances stored
        self._study_added: dict[int, list] = {}  # study pk -> [instances, new series, new modalities, study]
        self._stored: set[str] = set()
        self._pending: list[Pending] = []
        self._created: set[int] = set()  # pks of the studies created in this transaction
        self._atomic = transaction.atomic()
        self._atomic.__enter__()

    def _end(self, exc_type=None, exc=None, tb=None) -> None:
        atomic, self._atomic = self._atomic, None
        if atomic is None:
            return  # a failed commit already ended this transaction
        try:
            if exc_type is None:
                self._flush()
                self._write_counts()
                # Names may still differ under one PatientID: recounted for the studies written to,
                # in one query, while they are locked.
                identity.refresh(self._study_added)
                signals.announce_received(self._created)
        except BaseException as error:
            atomic.__exit__(type(error), error, error.__traceback__)
            self._abandon()
            raise
        try:
            atomic.__exit__(exc_type, exc, tb)
        except BaseException:
            self._abandon()
            raise
        if exc_type is not None:
            self._abandon()

    def commit(self, *, restart: bool = True) -> None:
        """Write the pending files' rows and the counts, commit, and (``restart``) begin the
        next transaction."""
        self._end()
        if restart:
            self._begin()

    def _abandon(self) -> None:
        for name in self._stored:
            storage.delete(name)
        for pending in self._pending:
            pending.staged.discard()

    # -- writing the rows ---------------------------------------------------------------------

    def _flush(self) -> None:
        # The files stay in self._pending until written, so an error here lets _abandon remove them.
        pending = self._pending
        if not pending:
            return
        rendered: list[int] = []
        try:
            rendered += self._write(pending)
        except (IntegrityError, OperationalError, DataError) as exc:
            # A simultaneous upload wrote one of the same rows first (or the database broke a lock
            # conflict with it): the bulk write is rolled back and each file is written on its own.
            logger.info("ingest: writing %d files one by one after %s", len(pending), type(exc).__name__)
            for item in pending:
                rendered += self._write_alone(item)
        self._pending = []
        if rendered:
            _queue_renders(rendered)

    def _write_alone(self, item: Pending) -> list[int]:
        for _attempt in range(3):
            try:
                return self._write([item])
            except IntegrityError:
                # The instance, its patient, study or series was stored meanwhile and is visible
                # now: writing again settles the file with every check (a re-send, a conflict, a
                # study the user may not see) made anew.
                continue
            except OperationalError:
                break
            except DataError as exc:
                reason = f"The header holds a value the database cannot store: {exc}".strip()
                self._apply(_Written(refused=[(item, "corrupt", reason)]))
                return []
        reason = "The instance could not be recorded because of a simultaneous change to its study; send it again."
        self._apply(_Written(refused=[(item, "conflict", reason)]))
        return []

    def _write(self, items: list[Pending]) -> list[int]:
        """Write the rows of ``items`` in a savepoint; returns the pks of the instances stored."""
        written = _Written()
        with transaction.atomic():
            # Instances first, then studies: the study of any instance found here is committed
            # already, so it is among the locked studies and the visibility check covers it.
            existing = rows.stored_instances(item.sop_instance_uid for item in items)
            studies = self._lock_studies({item.study_instance_uid for item in items})
            forbidden = self._forbidden(studies)
            written.allowed = set(studies) - forbidden
            fresh = _sort_out(items, existing, forbidden, written)
            series = self._stored_series({item.series_instance_uid for item in fresh})
            placed = _in_their_series(fresh, studies, series, written)
            placed = self._filed(_of_their_patient(placed, studies, written), studies, written)
            placed = [item for item in placed if self._placed(item, written)]
            created = _create_studies(
                [item for item in placed if item.study_instance_uid not in studies], self.uploader, self.practice
            )
            studies.update(created)
            written.allowed |= created.keys()
            written.created = {study.pk for study in created.values()}
            new_series = []
            for item in placed:
                if item.series_instance_uid not in series:
                    row = Series(
                        series_instance_uid=item.series_instance_uid,
                        study=studies[item.study_instance_uid],
                        **item.series,
                    )
                    series[item.series_instance_uid] = row
                    new_series.append(row)
            rows.insert(Series, new_series)
            written.new_series = {row.series_instance_uid for row in new_series}
            for item in placed:
                instance = Instance(
                    sop_instance_uid=item.sop_instance_uid,
                    sop_class_uid=item.uids["sop_class_uid"],
                    series=series[item.series_instance_uid],
                    file=item.stored.name,
                    size=item.stored.size,
                    sha256=item.stored.sha256,
                    metadata=rows.json_value(item.metadata),
                    uploaded_by=self.uploader,
                    **item.fields,
                )
                written.stored.append((item, instance, studies[item.study_instance_uid], instance.series))
            rows.insert(Instance, [instance for _item, instance, _study, _series in written.stored])
        self._apply(written)
        return [instance.pk for _item, instance, _study, _series in written.stored]

    def _filed(self, items: list[Pending], studies: dict[str, Study], written: _Written) -> list[Pending]:
        """The files that have a practice to go to: their stored study's, or the batch's for a new
        study; the others are refused."""
        if self.practice is not None:
            return items
        kept = []
        for item in items:
            if item.study_instance_uid in studies:
                kept.append(item)
            else:
                reason = (
                    "Name the practice to file a new study under (practice=<number>)."
                    if self.uploader is not None and self.uploader.is_admin
                    else "You are not a member of a practice yet, so a new study has nowhere to be filed: "
                    "ask a practice admin to admit you."
                )
                written.refused.append((item, "no_practice", reason))
        return kept

    def _placed(self, item: Pending, written: _Written) -> bool:
        """Move the file into storage (once: a write rolled back and retried reuses it); False,
        with the file refused, when storage fails."""
        if item.stored is None:
            try:
                item.stored = storage.store(item.staged)
            except OSError as exc:
                written.refused.append((item, "unreadable", f"The file could not be stored: {exc}"))
                return False
            self._stored.add(item.stored.name)
        return True

    def _lock_studies(self, study_uids: set[str]) -> dict[str, Study]:
        """The stored studies among ``study_uids``, locked until commit (one ingest at a time per
        study, so their counts stay exact under simultaneous uploads)."""
        studies = {uid: self._studies[uid] for uid in study_uids if uid in self._studies}
        missing = sorted(study_uids - studies.keys())
        if missing:
            locked = Study.objects.select_for_update().filter(study_instance_uid__in=missing)
            studies.update((study.study_instance_uid, study) for study in locked.order_by("study_instance_uid"))
        return studies

    def _forbidden(self, studies: dict[str, Study]) -> set[str]:
        """Stored studies this batch's user may not add to: those they may not see. Ingest without
        a user (the system's own objects) may add to any study."""
        if self.user is None:
            return set()
        unknown = [uid for uid in studies if uid not in self._allowed]
        if not unknown:
            return set()
        visible = visible_studies(self.user).filter(study_instance_uid__in=unknown)
        return set(unknown) - set(visible.values_list("study_instance_uid", flat=True))

    def _stored_series(self, series_uids: set[str]) -> dict[str, Series]:
        series = {uid: self._series[uid] for uid in series_uids if uid in self._series}
        missing = series_uids - series.keys()
        if missing:
            series.update(
                (row.series_instance_uid, row)
                for row in Series.objects.filter(series_instance_uid__in=missing).select_related("study")
            )
        return series

    def _drop(self, item: Pending) -> None:
        if item.stored is not None:
            self._stored.discard(item.stored.name)
            storage.delete(item.stored.name)
            item.stored = None
        item.staged.discard()

    def _apply(self, written: _Written) -> None:
        """Settle each file's result and join the written rows to the batch's caches and counts."""
        self._allowed |= written.allowed
        self._created |= written.created
        for item, instance, study, series in written.stored:
            item.result.status = STORED
            item.result.instance_id = instance.pk
            self._studies[study.study_instance_uid] = study
            self._series[series.series_instance_uid] = series
            self._series_added[series.pk] = self._series_added.get(series.pk, 0) + 1
            added = self._study_added.setdefault(study.pk, [0, 0, set(), study])
            added[0] += 1
            if series.series_instance_uid in written.new_series:
                written.new_series.discard(series.series_instance_uid)
                added[1] += 1
                if series.modality:
                    added[2].add(series.modality)
        for item, code, reason in written.refused:
            self._settle(item, REFUSED, code=code, reason=reason)
        for item, pk, sha256 in written.resent:
            self._settle_resend(item, pk, sha256)
        for item, first in written.repeats:
            if first.result.status == STORED:
                self._settle_resend(item, first.result.instance_id, first.sha256)
            else:
                self._settle(item, first.result.status, code=first.result.code, reason=first.result.reason)

    def _settle_resend(self, item: Pending, pk: int, sha256: str) -> None:
        if sha256 == item.sha256:
            self._settle(item, ALREADY_STORED, instance_id=pk)
        else:
            reason = (
                f"An instance with SOPInstanceUID {item.sop_instance_uid} is already stored with different "
                "content; the stored one is kept."
            )
            self._settle(item, REFUSED, code="conflict", reason=reason)

    def _settle(self, item: Pending, status: str, *, code: str = "", reason: str = "", instance_id=None) -> None:
        if status == REFUSED:
            refusal_code(code)
        self._drop(item)
        item.result.status, item.result.code, item.result.reason = status, code, reason
        item.result.instance_id, item.result.coerced = instance_id, False

    def _write_counts(self) -> None:
        """Add the transaction's instances, series and modalities to the counts, in one statement per
        table. (The uploader sees the study through its practice: no grant of its own is needed.)"""
        studies = {pk: (added, series) for pk, (added, series, _modalities, _study) in self._study_added.items()}
        rows.add_counts(self._series_added, studies, self._new_modalities() if studies else {})

    def _new_modalities(self) -> dict[int, str]:
        """ModalitiesInStudy of the studies this transaction adds a modality to, by study pk."""
        changed = {}
        for study_pk, (_added, _series, new_modalities, study) in self._study_added.items():
            if new_modalities - set(study.modality_list):
                changed[study_pk] = "\\".join(sorted({*study.modality_list, *new_modalities}))[:128]
        return changed


def _create_studies(items: list[Pending], uploader, practice) -> dict[str, Study]:
    """Insert the studies of ``items`` (and their patients where new) under ``practice``, in UID
    order; by study UID. Patient records are the practice's own: the same PatientID and issuer in
    another practice is another record.

    Inserted in the caller's savepoint: a simultaneous upload creating the same patient or study
    makes the insert fail, the savepoint is rolled back and the files written again one by one.
    """
    firsts: dict[str, Pending] = {}
    for item in sorted(items, key=lambda item: item.study_instance_uid):
        firsts.setdefault(item.study_instance_uid, item)
    if not firsts:
        return {}
    keys = {(item.patient["patient_id"], item.patient["issuer"]): item for item in firsts.values()}
    match = functools.reduce(operator.or_, (Q(patient_id=pid, issuer=issuer) for pid, issuer in keys))
    patients = {(row.patient_id, row.issuer): row for row in Patient.objects.filter(match, practice=practice)}
    new_patients = [
        Patient(**item.patient, practice=practice, uploaded_by=uploader)
        for key, item in sorted(keys.items())
        if key not in patients
    ]
    rows.insert(Patient, new_patients)
    patients.update(((row.patient_id, row.issuer), row) for row in new_patients)
    studies = {
        uid: Study(
            study_instance_uid=uid,
            patient=patients[(item.patient["patient_id"], item.patient["issuer"])],
            practice=practice,
            uploaded_by=uploader,
            **item.study,
        )
        for uid, item in firsts.items()
    }
    rows.insert(Study, list(studies.values()))
    return studies


def _queue_renders(instance_pks: list[int]) -> None:
    """After commit, one message for the thumbnails of the instances a batch stored."""

    def queue() -> None:
        from studies import tasks

        try:
            if len(instance_pks) == 1:
                tasks.render_instance.delay(instance_pk=instance_pks[0])
            else:
                tasks.render_instances.delay(instance_pks=instance_pks)
        except Exception:
            # The instances are stored: a broker that is down (or, without one, a render run in
            # place that fails) must not turn the upload into an error. They stay pending, and
            # beat's safety net (render_pending) queues them again.
            logger.exception("ingest: thumbnails of %d stored instances not queued now", len(instance_pks))

    transaction.on_commit(queue)

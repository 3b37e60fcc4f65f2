"""Studies whose images name more than one patient.

Ingest refuses a new instance naming another PatientID than its study's (``patient_mismatch``),
but a study may still mix people: a patient name spelt otherwise under the same PatientID, or data
stored before the refusal existed. A reader who takes such a study for one patient's may report on
someone else's images, so every page that shows the study says so, and signing a consult on it
asks for an explicit confirmation (``consultations.identity``).

The rule is here, once: the distinct PatientIDs and the distinct patient names (compared without
case and spacing, the first ``=`` group only, ``^`` as a space) in the headers of the study's
instances; blanks do not count. ``Study.identities`` keeps the larger of the two counts, so lists
read a column instead of the headers: ingest refreshes it for the studies each batch touched
(``refresh``, one query), and migration 0013 computed it for the studies stored before.

Objects the portal files into a study itself (report PDFs, measurement SRs, key image notes,
presentation states) copy the record's facts as they are when filed, not the images' own: they do
not count (the same rule as ``consultations.identity.in_headers``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import F, Func, TextField

PATIENT_ID_TAG = "00100020"
PATIENT_NAME_TAG = "00100010"
PORTAL_FILED_MODALITIES = ("DOC", "SR", "KO", "PR")


class HeaderValue(Func):
    """The first value of one header attribute of ``Instance.metadata`` (DICOM JSON), as text.

    Django's JSON key lookups read a key of digits only ("00100020") as an array index, so the
    path is written here for the two databases the portal runs on. A person name comes back as the
    JSON text of its ``{"Alphabetic": ...}`` object (``person_key`` reads either form)."""

    output_field = TextField()

    def __init__(self, tag: str, expression="metadata") -> None:
        if len(tag) != 8 or not all(c in "0123456789ABCDEFabcdef" for c in tag):
            raise ValueError(f"{tag!r} is not a DICOM tag (eight hex digits)")
        self.tag = tag.upper()
        super().__init__(F(expression) if isinstance(expression, str) else expression)

    def as_sql(self, compiler, connection, **extra):  # SQLite (JSON1)
        column, params = compiler.compile(self.source_expressions[0])
        return f"json_extract({column}, %s)", (*params, f'$."{self.tag}".Value[0]')

    def as_postgresql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        return f"({column} -> %s -> 'Value' ->> 0)", (*params, self.tag)


def person_words(value) -> str:
    """A patient name as shown: its first (alphabetic) group, "Doe^Jane" as "Doe Jane", case kept.
    ``value`` is a DICOM JSON PN value, the JSON text of one, or a plain string."""
    if isinstance(value, str) and value.startswith("{"):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if isinstance(value, dict):
        value = value.get("Alphabetic", "")
    return " ".join(str(value or "").split("=")[0].replace("^", " ").split())


def person_key(value) -> str:
    """A patient name as compared: ``person_words`` without case."""
    return person_words(value).lower()


@dataclass
class Patients:
    """Who a study's images name: distinct PatientIDs and names (as first seen, by their key)."""

    ids: set[str] = field(default_factory=set)
    names: dict[str, str] = field(default_factory=dict)  # person_key -> the name as shown

    def add(self, patient_id, name) -> None:
        patient_id = (patient_id or "").strip()
        if patient_id:
            self.ids.add(patient_id)
        key = person_key(name)
        if key:
            self.names.setdefault(key, person_words(name))

    @property
    def count(self) -> int:
        """How many patients the images name: the larger of the distinct IDs and names, at least 1."""
        return max(len(self.ids), len(self.names), 1)

    @property
    def mixed(self) -> bool:
        return self.count > 1

    def describe(self) -> str:
        """ "2 patients: Doe Jane; Roe Richard; PatientID P1" in a stable order, for clinicians."""
        parts = sorted(self.names.values(), key=str.lower)
        ids = sorted(self.ids)
        if ids:
            parts.append(f"PatientID {', '.join(ids)}")
        return f"{self.count} patients: " + "; ".join(parts)


def shows_names_to(user) -> bool:
    """Clinicians read whose names the images carry; a patient or a share link's visitor is told
    only that the images name more than one patient (another patient's name is not theirs to read)."""
    return user is not None and user.is_authenticated and not user.is_patient


def warning(study, *, names: bool = False) -> str:
    """The sentence shown over a mixed study ("" for a study of one patient); ``names``: say whose."""
    if not study.mixed_identity:
        return ""
    who = patients_of(study).describe() if names else f"{study.identities} different patients"
    return f"More than one patient in these images ({who}): check whose images you are reading."


def _model(name: str):
    """The app's own model (a migration passes its historical ones instead)."""
    from django.apps import apps

    return apps.get_model("studies", name)


def _header_rows(study_pks: Iterable[int], instance_model):
    return (
        instance_model.objects.filter(series__study_id__in=list(study_pks))
        .exclude(series__modality__in=PORTAL_FILED_MODALITIES)
        .annotate(found_id=HeaderValue(PATIENT_ID_TAG), found_name=HeaderValue(PATIENT_NAME_TAG))
        .order_by()
        .values_list("series__study_id", "found_id", "found_name")
        .distinct()
    )


def patients_in(study_pks: Iterable[int], *, instance_model=None) -> dict[int, Patients]:
    """Who each study's images name, by study pk (one query; studies without images are left out)."""
    instance_model = instance_model or _model("Instance")
    found: dict[int, Patients] = {}
    for study_pk, patient_id, name in _header_rows(study_pks, instance_model):
        found.setdefault(study_pk, Patients()).add(patient_id, name)
    return found


def patients_of(study) -> Patients:
    """Who one study's images name."""
    return patients_in([study.pk]).get(study.pk, Patients())


def refresh(study_pks: Iterable[int], *, study_model=None, instance_model=None) -> dict[int, int]:
    """Recount ``Study.identities`` of ``study_pks`` from their images (one query to read, one
    update per count that changed); the counts by study pk. The models can be a migration's."""
    study_model = study_model or _model("Study")
    pks = sorted(set(study_pks))
    if not pks:
        return {}
    counts = {pk: 1 for pk in pks}
    counts.update((pk, patients.count) for pk, patients in patients_in(pks, instance_model=instance_model).items())
    held = dict(study_model.objects.filter(pk__in=pks).values_list("pk", "identities"))
    changed: dict[int, list[int]] = {}
    for pk, count in counts.items():
        if pk in held and held[pk] != count:
            changed.setdefault(count, []).append(pk)
    for count, group in changed.items():
        # update(): a recount is not an edit of the study (updated_at stays as it was).
        study_model.objects.filter(pk__in=group).update(identities=count)
    return counts


def refresh_all(*, study_model=None, instance_model=None, batch_size: int = 500) -> int:
    """Recount every study, ``batch_size`` at a time, in pk order; how many are mixed."""
    study_model = study_model or _model("Study")
    mixed, last = 0, 0
    while True:
        pks = list(study_model.objects.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not pks:
            return mixed
        counts = refresh(pks, study_model=study_model, instance_model=instance_model)
        mixed += sum(1 for count in counts.values() if count > 1)
        last = pks[-1]

"""Whose images, which study: the identity a consult's reader and signer must be sure of.

One set of facts (name, birth date, sex, PatientID with its practice, accession number, study date,
modality) shown the same way on the report editor, the signing form and the PDF. A consult keeps
them as they were when it was asked for (``ConsultRequest.identity``); signing compares that with
the study now, and with the headers of the study's latest stored image, and asks the signer to
confirm explicitly when anything differs (a study corrected after the consult was made, a record
merged, an image that names someone else).
"""

from __future__ import annotations

from dataclasses import dataclass

from studies import identity as study_identity
from studies.models import Instance, Study
from studies.vocabulary import modalities_in_words

# (key, label) in the order people read them.
FIELDS = (
    ("name", "Patient"),
    ("birth_date", "Born"),
    ("sex", "Sex"),
    ("patient_id", "Patient ID"),
    ("practice", "Practice"),
    ("accession", "Accession number"),
    ("study_date", "Study date"),
    ("modalities", "Modality"),
)
LABELS = dict(FIELDS)
SEXES = {"F": "Female", "M": "Male", "O": "Other"}
# Header attributes (DICOM JSON tags) -> the facts they give.
HEADER_TAGS = {
    "name": "00100010",
    "patient_id": "00100020",
    "birth_date": "00100030",
    "sex": "00100040",
    "accession": "00080050",
    "study_date": "00080020",
}


def _date(value) -> str:
    return value.isoformat() if value else ""


def _da(text: str) -> str:
    """A DICOM DA (20260107) as an ISO date; other text as it is."""
    text = (text or "").strip()
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def of_study(study: Study) -> dict[str, str]:
    """The facts as the portal holds them now (the study's row and its patient record)."""
    patient = study.patient
    return {
        "name": patient.display_name,
        "birth_date": _date(patient.birth_date),
        "sex": SEXES.get(patient.sex, patient.sex or ""),
        "patient_id": patient.patient_id + (f" ({patient.issuer})" if patient.issuer else ""),
        "practice": study.practice.name if study.practice_id else "",
        "accession": study.accession_number,
        "study_date": _date(study.study_date),
        "modalities": modalities_in_words(study.modalities),
    }


def in_headers(study: Study) -> dict[str, str]:
    """The facts the study's most recently stored image carries in its header (those present)."""
    # The latest image the study was sent with: not the objects the portal filed into it itself
    # (report PDFs, measurement SRs, key image notes), which copy the record's own facts.
    latest = (
        Instance.objects.filter(series__study=study)
        .exclude(series__modality__in=study_identity.PORTAL_FILED_MODALITIES)
        .order_by("-created_at", "-pk")
        .only("metadata")
        .first()
    )
    if latest is None:
        return {}
    found = {}
    for key, tag in HEADER_TAGS.items():
        values = ((latest.metadata or {}).get(tag) or {}).get("Value") or []
        if not values:
            continue
        value = values[0]
        if key == "name":
            found[key] = study_identity.person_words(value)
        elif key in ("birth_date", "study_date"):
            found[key] = _da(str(value))
        elif key == "sex":
            found[key] = SEXES.get(str(value).strip(), str(value).strip())
        else:
            found[key] = str(value).strip()
    return found


@dataclass(frozen=True)
class Difference:
    label: str
    then: str
    now: str
    where: str  # "since the consult was made" or "in the images"

    def __str__(self) -> str:
        return f"{self.label} {self.where}: {self.then or 'none'} → {self.now or 'none'}"


MORE_THAN_ONE = "More than one patient"

# Facts that may change without the study becoming another: the modalities grow when the portal
# files the signed report's PDF, the measurements' SR or key images into the study.
GROWS = {"modalities"}


def differences(consult) -> list[Difference]:
    """What a signer must look at twice: facts changed since the consult was made, facts the
    latest image's header gives otherwise than the portal's record, and images that name more than
    one patient (``Study.identities``, counted by ``studies.identity``)."""
    now = of_study(consult.study)
    found = []
    for key, label in FIELDS:
        if key in GROWS:
            continue
        if consult.identity and key in consult.identity and consult.identity[key] != now[key]:
            found.append(Difference(label, consult.identity[key], now[key], "since the consult was made"))
    headers = in_headers(consult.study)
    for key, value in headers.items():
        held = now[key].split(" (")[0] if key == "patient_id" else now[key]
        if value and held and _same(key, value) != _same(key, held):
            found.append(Difference(LABELS[key], held, value, "in the images"))
    if consult.study.mixed_identity:
        record = f"{now['name']} ({now['patient_id']})" if now["patient_id"] else now["name"]
        found.append(
            Difference(MORE_THAN_ONE, record, study_identity.patients_of(consult.study).describe(), "in the images")
        )
    return found


def _same(key: str, value: str) -> str:
    """Names compare without case and spacing; other facts as they are."""
    return " ".join(value.lower().split()) if key == "name" else value.strip()


def rows(facts: dict[str, str]) -> list[tuple[str, str]]:
    """``(label, value)`` pairs to show, in reading order."""
    return [(label, facts.get(key) or "—") for key, label in FIELDS]


def keep_identity(sender, instance, raw=False, **kwargs) -> None:
    """pre_save of a consult: one made without its identity takes the study's as it is now."""
    if not raw and not instance.identity and instance.study_id:
        instance.identity = of_study(instance.study)

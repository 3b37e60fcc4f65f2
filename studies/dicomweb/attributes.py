"""DICOM JSON (PS3.18 F.2) of the portal's rows: one attribute, and the standard attributes of a
study, series and instance as QIDO-RS answers them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..models import Instance, Series, Study

PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def person_name(value: str) -> dict[str, str]:
    """A stored person name (``Yamada^Tarou=山田^太郎=やまだ^たろう``) as DICOM JSON's object of
    component groups (PS3.18 F.2.2): each non-empty group under its name."""
    if "=" not in value:
        return {"Alphabetic": value}
    return {name: group for name, group in zip(PN_GROUPS, value.split("=")[:3], strict=False) if group}


def attr(vr: str, *values: Any) -> dict[str, Any]:
    """One DICOM JSON attribute; empty or ``None`` values give an attribute without ``Value``."""
    if len(values) == 1:  # the common case, kept cheap: QIDO builds thousands of these per answer
        single = values[0]
        if single is None or single == "":
            return {"vr": vr}
        return {"vr": vr, "Value": [person_name(single) if vr == "PN" else single]}
    kept = [v for v in values if v is not None and v != ""]
    if not kept:
        return {"vr": vr}
    if vr == "PN":
        kept = [person_name(str(v)) for v in kept]
    return {"vr": vr, "Value": kept}


def tag_key(tag: int) -> str:
    return f"{tag:08X}"


def da(value: dt.date | None) -> str | None:
    return f"{value.year:04d}{value.month:02d}{value.day:02d}" if value else None


def tm(value: dt.time | None) -> str | None:
    if value is None:
        return None
    text = f"{value.hour:02d}{value.minute:02d}{value.second:02d}"
    return f"{text}.{value.microsecond:06d}" if value.microsecond else text


# Shared by every answer: encoded as JSON, never changed.
CHARACTER_SET = {"vr": "CS", "Value": ["ISO_IR 192"]}


# Study columns a QIDO study answer reads, fetched as plain rows (no model instances).
STUDY_FIELDS = (
    "pk",
    "study_instance_uid",
    "study_date",
    "study_time",
    "accession_number",
    "modalities",
    "referring_physician",
    "description",
    "study_id",
    "num_series",
    "num_instances",
    "patient__name",
    "patient__patient_id",
    "patient__issuer",
    "patient__birth_date",
    "patient__sex",
)


def study_row(study: Study) -> dict[str, Any]:
    """A Study (with its patient loaded) as the row ``study_attributes`` reads."""
    row = {name: getattr(study, name) for name in STUDY_FIELDS if "__" not in name}
    row.update({f"patient__{name}": getattr(study.patient, name) for name in ("name", "patient_id", "issuer")})
    row.update({"patient__birth_date": study.patient.birth_date, "patient__sex": study.patient.sex})
    return row


def study_attributes(row: dict[str, Any], study_url: str | None) -> dict[str, Any]:
    dataset = {
        "00080005": CHARACTER_SET,
        "00080020": attr("DA", da(row["study_date"])),
        "00080030": attr("TM", tm(row["study_time"])),
        "00080050": attr("SH", row["accession_number"]),
        "00080061": attr("CS", *[m for m in row["modalities"].split("\\") if m]),
        "00080090": attr("PN", row["referring_physician"]),
        "00081030": attr("LO", row["description"]),
        "00100010": attr("PN", row["patient__name"]),
        "00100020": attr("LO", row["patient__patient_id"]),
        "00100021": attr("LO", row["patient__issuer"]),
        "00100030": attr("DA", da(row["patient__birth_date"])),
        "00100040": attr("CS", row["patient__sex"]),
        "0020000D": attr("UI", row["study_instance_uid"]),
        "00200010": attr("SH", row["study_id"]),
        "00201206": attr("IS", row["num_series"]),
        "00201208": attr("IS", row["num_instances"]),
    }
    if study_url is not None:
        dataset["00081190"] = attr("UR", study_url)
    return dataset


def series_attributes(series: Series, series_url: str) -> dict[str, Any]:
    return {
        "00080005": attr("CS", "ISO_IR 192"),
        "00080060": attr("CS", series.modality),
        "0008103E": attr("LO", series.description),
        "00081190": attr("UR", series_url),
        "00180015": attr("CS", series.body_part),
        "0020000D": attr("UI", series.study.study_instance_uid),
        "0020000E": attr("UI", series.series_instance_uid),
        "00200011": attr("IS", series.series_number),
        "00201209": attr("IS", series.num_instances),
    }


def instance_attributes(instance: Instance, instance_url: str) -> dict[str, Any]:
    series = instance.series
    return {
        "00080005": attr("CS", "ISO_IR 192"),
        "00080016": attr("UI", instance.sop_class_uid),
        "00080018": attr("UI", instance.sop_instance_uid),
        "00080060": attr("CS", series.modality),
        "00081190": attr("UR", instance_url),
        "00083002": attr("UI", instance.transfer_syntax_uid),
        "0020000D": attr("UI", series.study.study_instance_uid),
        "0020000E": attr("UI", series.series_instance_uid),
        "00200013": attr("IS", instance.instance_number),
        "00280008": attr("IS", instance.number_of_frames),
        "00280010": attr("US", instance.rows),
        "00280011": attr("US", instance.columns),
        "00280100": attr("US", instance.bits_allocated),
    }

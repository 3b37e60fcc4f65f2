"""What a file's header holds, read once pydicom has parsed it: its UIDs, the values of its Patient,
Study, Series and Instance rows, and its DICOM JSON metadata (``studies.dicomjson``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import BinaryIO

import pydicom
from pydicom.charset import default_encoding
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from .. import dicomjson
from .results import IngestRefusedError
from .structure import Layout, tag_name

UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# Non-conforming UIDs seen in the wild (hex digests, letters) are kept if they are safe in a URL path.
LENIENT_UID_PATTERN = re.compile(r"^[0-9A-Za-z._-]+$")
_ASCII_TEXT_VRS = {"AE", "AS", "CS", "DA", "DT", "TM", "UI"}
_CHARSET_TEXT_VRS = {"SH", "LO", "UC", "LT", "ST", "UT", "PN"}


def read_header(fp: BinaryIO) -> Dataset:
    """The header (all but the pixel data, large values deferred), or a refusal."""
    # pydicom's warnings are not captured here: warnings.catch_warnings swaps process-wide state
    # and is not safe with uploads read in several threads. Non-conformance is noted by our own
    # checks instead (encoding, UIDs, invalid values).
    fp.seek(0)
    try:
        return pydicom.dcmread(fp, stop_before_pixels=True, defer_size=dicomjson.BULK_DATA_THRESHOLD)
    except RecursionError:
        raise IngestRefusedError("too_deep", "Sequences are nested too deeply to read; this is refused.") from None
    except Exception as exc:
        raise IngestRefusedError("corrupt", f"The DICOM header could not be read: {exc}") from None


def _text(ds: Dataset, keyword: str, max_length: int) -> str:
    """A header value as one string (values joined by backslashes), NULs removed, stripped."""
    plain = _plain_text(ds, keyword)
    if plain is not None:
        return plain.replace("\x00", "").strip()[:max_length]
    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        value = "\\".join(str(v) for v in value)
    return str(value).replace("\x00", "").strip()[:max_length]


def _plain_text(ds: Dataset, keyword: str) -> str | None:
    """The value of a text element as pydicom's ``str`` gives it, decoded straight from its bytes
    (this is read a dozen times per file); None when pydicom must decode it (another character
    set, escape sequences, a value read already, bytes the character set cannot decode)."""
    tag = tag_for_keyword(keyword)
    raw = ds.get_item(tag, keep_deferred=True)
    if not isinstance(raw, RawDataElement) or raw.value is None or b"\x1b" in raw.value:
        return None
    vr = raw.VR or dicomjson.dictionary_vr(tag)
    if vr in _ASCII_TEXT_VRS:
        encoding = default_encoding
    elif vr in _CHARSET_TEXT_VRS:
        encoding = dicomjson.text_encoding(ds.get("SpecificCharacterSet"))
        if encoding is None:
            return None
    else:
        return None
    try:
        text = raw.value.decode(encoding)
    except UnicodeDecodeError:
        return None
    if vr == "PN" and "=" in text:
        return None  # component groups: pydicom drops empty trailing ones
    text = text.rstrip("\x00 ")
    if vr in ("LT", "ST", "UT", "PN"):
        return text  # one value (PN: pydicom strips the whole, not each value)
    parts = text.split("\\")
    if len(parts) > 1 and any(part != part.strip(" \x00") for part in parts):
        return None  # blanks around one of several values: pydicom keeps some of them
    return text


def read_uids(ds: Dataset, meta_sop_class: str) -> dict[str, str]:
    """The Study, Series and SOP Instance UIDs and the SOP Class UID; refused when one is missing or
    unsafe in a URL."""
    uids = {
        "study_instance_uid": _text(ds, "StudyInstanceUID", 200),
        "series_instance_uid": _text(ds, "SeriesInstanceUID", 200),
        "sop_instance_uid": _text(ds, "SOPInstanceUID", 200),
    }
    names = {
        "study_instance_uid": "StudyInstanceUID",
        "series_instance_uid": "SeriesInstanceUID",
        "sop_instance_uid": "SOPInstanceUID",
    }
    sop_class = _text(ds, "SOPClassUID", 200) or meta_sop_class
    missing = [names[key] for key, value in uids.items() if not value]
    if missing:
        raise IngestRefusedError(
            "missing_uid",
            f"The file has no {' and no '.join(missing)}; every instance needs Study, Series and SOP Instance UIDs.",
            **{key: value for key, value in uids.items() if value and len(value) <= 64},
        )
    for key, value in uids.items():
        if len(value) > 64 or not LENIENT_UID_PATTERN.match(value):
            raise IngestRefusedError(
                "invalid_uid", f"{names[key]} {value[:80]!r} is not a valid UID (digits and dots, at most 64)."
            )
    uids["sop_class_uid"] = sop_class[:64]
    return uids


def int_value(ds: Dataset, keyword: str, default: int | None, low: int = 0, high: int = 2**31 - 1) -> int | None:
    try:
        value = ds.get(keyword)
        if isinstance(value, MultiValue | list):
            value = value[0] if value else None
        number = int(float(value)) if value not in (None, "") else None
    except Exception:
        return default
    if number is None or not low <= number <= high:
        return default
    return number


def instance_fields(ds: Dataset, layout: Layout, transfer_syntax: str) -> dict:
    return {
        "transfer_syntax_uid": transfer_syntax[:64],
        "instance_number": int_value(ds, "InstanceNumber", None, low=-(2**31)),
        "rows": int_value(ds, "Rows", None),
        "columns": int_value(ds, "Columns", None),
        "number_of_frames": int_value(ds, "NumberOfFrames", 1, low=1) or 1,
        "bits_allocated": int_value(ds, "BitsAllocated", None, high=32767),
        "photometric_interpretation": _text(ds, "PhotometricInterpretation", 32),
        "has_pixel_data": layout.pixel_tag is not None,
    }


def _date(value: str) -> dt.date | None:
    digits = value.replace(".", "").replace("-", "").strip()[:8]
    try:
        return dt.datetime.strptime(digits, "%Y%m%d").date()
    except ValueError:
        return None


def _time(value: str) -> dt.time | None:
    text = value.replace(":", "").strip().split(".")[0]
    if not text.isdigit() or len(text) < 2:
        return None
    parts = [int(text[i : i + 2]) for i in range(0, min(len(text), 6), 2)]
    hour, minute, second = (parts + [0, 0])[:3]
    try:
        return dt.time(hour, minute, min(second, 59))
    except ValueError:
        return None


def _patient_key(ds: Dataset, study_uid: str) -> tuple[str, str]:
    patient_id = _text(ds, "PatientID", 64)
    issuer = _text(ds, "IssuerOfPatientID", 64)
    if not patient_id:
        # Without an ID, studies are never merged into one "unknown" patient: one record per study.
        issuer = "teleconsult:no-id:" + hashlib.sha256(study_uid.encode()).hexdigest()[:32]
    return patient_id, issuer


def row_values(ds: Dataset, uids: dict[str, str]) -> tuple[dict, dict, dict]:
    """What the Patient, Study and Series rows of a file would hold, read while the header is open."""
    patient_id, issuer = _patient_key(ds, uids["study_instance_uid"])
    patient = {
        "patient_id": patient_id,
        "issuer": issuer,
        "name": _text(ds, "PatientName", 324),
        "birth_date": _date(_text(ds, "PatientBirthDate", 16)),
        "sex": _text(ds, "PatientSex", 16),
    }
    study = {
        "study_date": _date(_text(ds, "StudyDate", 16)),
        "study_time": _time(_text(ds, "StudyTime", 32)),
        "description": _text(ds, "StudyDescription", 256),
        "accession_number": _text(ds, "AccessionNumber", 64),
        "study_id": _text(ds, "StudyID", 32),
        "referring_physician": _text(ds, "ReferringPhysicianName", 324),
    }
    series = {
        "modality": _text(ds, "Modality", 16),
        "series_number": int_value(ds, "SeriesNumber", None, low=-(2**31)),
        "description": _text(ds, "SeriesDescription", 256),
        "body_part": _text(ds, "BodyPartExamined", 64),
    }
    return patient, study, series


def metadata(ds: Dataset, layout: Layout, uids: dict[str, str]) -> tuple[dict, list[str]]:
    """The header as DICOM JSON (``dicomjson.header_json``) with the pixel data's VR where the walk
    found it, and a note naming the elements left out because their values are invalid."""
    try:
        document, left_out = dicomjson.header_json(ds)
    except RecursionError:
        raise IngestRefusedError(
            "too_deep", "Sequences are nested too deeply to read; this is refused.", **uids
        ) from None
    if layout.pixel_tag is not None:
        document[f"{layout.pixel_tag:08X}"] = {"vr": layout.pixel_vr or "OW"}
    names = [tag_name(tag) for tag in left_out[:10]]
    notes = [f"invalid values left out of the metadata: {', '.join(names)}"] if left_out else []
    return dict(sorted(document.items())), notes

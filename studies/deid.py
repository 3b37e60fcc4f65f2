"""De-identified copies of a study: DICOM PS3.15 Annex E, Basic Application Confidentiality Profile.

The action for each attribute comes from PS3.15 Table E.1-1 (basic profile column) of the 2026c
edition of the standard, as the ``dicom-anonymizer`` package (KitwareMedical) ships it: its
``dicomfields_2026c`` database lists every row of the table (655: 652 attributes and the three
repeating-group rows for curve data, overlay data and overlay comments) under the row's action.
``PROFILE_TABLE`` is that data; ``LOCAL_ADDITIONS`` holds the attributes acted on beyond it and
``LOCAL_OVERRIDES`` the rows acted on more strictly, each with its reason.
The package's own engine is not used: it keeps one UID map for the whole process (two copies
would share replacements), applies the table to the top level of a data set only, not inside
sequence items, and writes a dummy date where the table says remove one.

Actions: ``X`` remove, ``Z`` empty, ``D`` replace with a non-empty dummy value of the same VR,
``U`` replace the UID. The table's compound actions are resolved without knowing each IOD's
attribute types: anything with ``U`` is ``U``, else anything with ``Z`` is ``Z``, else ``D``;
``X`` alone stays ``X``. The 2026c rows need nothing else: their compound actions are ``Z/D``,
``X/Z``, ``X/D``, ``X/Z/D`` and ``X/Z/U*``, the last only on the two image reference sequences
(Referenced Image, Source Image), which are kept with their Referenced SOP Instance UIDs replaced.
A sequence whose action is ``D`` or ``U`` keeps its items, cleaned by the same rules. Beyond the
table, as the profile requires:

- every UID that is not a registered DICOM UID (so every instance, series, study, frame of
  reference and referenced UID, wherever it is) is replaced, the same original always by the same
  replacement within one copy, so references between the copy's files still hold;
- private attributes are removed, and command elements (group 0000) altogether, since a stored
  file may not hold them: the table's ``U`` for Requested SOP Instance UID becomes removal;
- the file meta information is written anew, its Media Storage SOP Instance UID (``U`` in the
  table) being the replaced SOP Instance UID;
- the rules reach into every sequence item;
- PatientIdentityRemoved = YES, DeidentificationMethod and DeidentificationMethodCodeSequence
  (DCM 113100) and LongitudinalTemporalInformationModified = REMOVED are written.

Image pixels are not cleaned: an instance whose BurnedInAnnotation or RecognizableVisualFeatures
is YES, or that encapsulates a document, is flagged and left out of a copy unless the person asking
insists (``include_flagged``).
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import pydicom
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from django.utils import timezone
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from accounts.timeformat import format_instant
from teleconsult.responses import StreamingResponse

from .dicomjson import dictionary_vr
from .downloads import CHUNK, _Sink, series_folder, study_instances
from .models import Instance, Study

logger = logging.getLogger(__name__)

PROFILE_CODE = "113100"
PROFILE_MEANING = "Basic Application Confidentiality Profile"
METHOD_TEXT = "Basic Application Confidentiality Profile (PS3.15 Annex E)"

TABLE_EDITION = "2026c"

# The package's categories, named by the action codes of the table.
CATEGORY_ACTIONS: dict[str, str] = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}

# Attributes Table E.1-1 does not list that a copy still acts on, each with the reason.
LOCAL_ADDITIONS: dict[int, str] = {
    # Text Value: the free text of SR TEXT content items and other name-value items, where a name
    # or an ID is easily typed. The table keeps the Content Sequence (D) and replaces the other
    # value attributes of its items (Date, Time, DateTime, Person Name: D; UID: U); the text is
    # replaced the same way, so the items stay valid.
    0x0040A160: "D",
    # Retrieve URL and Retrieve URI: an address of the original study at its source, holding the
    # original Study Instance UID in text (UID replacement only reaches UI values).
    0x00081190: "X",
    0x0040E010: "X",
    # Study Update DateTime: a date, where the copy says its dates are removed; Updated Metadata
    # Sequence: earlier values of updated attributes (a corrected name, say); HL7 Instance
    # Identifier: the ID of the HL7 message the object came from.
    0x0008041F: "X",
    0x0008041E: "X",
    0x0040E001: "X",
}
# Rows of the table acted on more strictly than it asks, each with the reason.
LOCAL_OVERRIDES: dict[int, str] = {
    # Person Identification Code Sequence: a person's ID as a code (an employee number, a name as
    # the meaning). The table lists it D, but a code's value and meaning are no table rows, so
    # keeping its items cleaned would keep the ID: removed.
    0x00401101: "X",
}
# Not added: Context Group Extension Creator UID and Creator-Version UID, which earlier editions
# listed, are replaced anyway as unregistered UIDs; Modifying Device Manufacturer (retired) names a
# manufacturer, which the profile keeps.

# "D": a dummy value of the element's VR, never empty (the table's "Z" is the empty choice).
DUMMY_BY_VR: dict[str, object] = {
    "PN": "ANONYMOUS",
    "LO": "ANONYMOUS",
    "SH": "ANONYMOUS",
    "LT": "ANONYMOUS",
    "ST": "ANONYMOUS",
    "UT": "ANONYMOUS",
    "UC": "ANONYMOUS",
    "UR": "ANONYMOUS",
    "CS": "ANONYMOUS",
    "AE": "ANONYMOUS",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    **dict.fromkeys(("US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"), 0),
    # Eight zero bytes: a whole number of values for every binary VR.
    **dict.fromkeys(("OB", "OD", "OF", "OL", "OV", "OW", "UN"), b"\0" * 8),
}


def resolve(action: str, vr: str = "") -> str:
    """One action for a table entry: compound actions as the module docstring says, except that a
    sequence the table allows to remove (X) is removed: its items may hold codes and text that
    no table row reaches."""
    # "U*": replace the UIDs inside the sequence (the sequence itself is kept).
    choices = {part.rstrip("*") for part in action.split("/")}
    if vr == "SQ" and "X" in choices and "U" not in choices:
        return "X"
    for single in ("U", "Z", "D", "X"):
        if single in choices:
            return single
    raise ValueError(f"Unknown de-identification action {action!r}")


def _profile_table() -> dict[tuple[int, ...], str]:
    """Table E.1-1: (group, element), or (group, element, group mask, element mask) for a repeating
    group, -> the action as the table writes it."""
    database = dicom_anonymization_database_selector(f"dicomfields_{TABLE_EDITION}")
    table: dict[tuple[int, ...], str] = {}
    for category, action in CATEGORY_ACTIONS.items():
        for row in database[category]:
            if table.setdefault(tuple(row), action) != action:
                raise ValueError(f"Table E.1-1 row {row} is listed under two actions")
    return table


PROFILE_TABLE = _profile_table()
TAG_ACTIONS: dict[int, str] = {
    (row[0] << 16) | row[1]: resolve(action, dictionary_vr((row[0] << 16) | row[1]))
    for row, action in PROFILE_TABLE.items()
    if len(row) == 2
}
TAG_ACTIONS.update(LOCAL_ADDITIONS)
TAG_ACTIONS.update(LOCAL_OVERRIDES)
# Repeating groups, where the low byte of the group varies: curve data, overlay data and comments.
MASKED_ACTIONS: list[tuple[tuple[int, ...], str]] = [
    (row, resolve(action)) for row, action in PROFILE_TABLE.items() if len(row) == 4
]


def action_for(tag: BaseTag) -> str | None:
    """The resolved action for ``tag``, or None for an attribute the table does not list."""
    action = TAG_ACTIONS.get(int(tag))
    if action is not None:
        return action
    for (group, element, group_mask, element_mask), masked in MASKED_ACTIONS:
        if tag.group & group_mask == group & group_mask and tag.element & element_mask == element & element_mask:
            return masked
    return None


def is_registered_uid(value: str) -> bool:
    """A UID the standard defines (SOP classes, transfer syntaxes, coding schemes): never replaced."""
    uid = UID(value)
    return uid.name != str(uid)


class UIDMap:
    """Original UID -> replacement, the same for every file of one copy."""

    def __init__(self) -> None:
        self.replacements: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        value = str(value).strip("\0 ")
        if not value or is_registered_uid(value):
            return value
        if value not in self.replacements:
            self.replacements[value] = generate_uid()
        return self.replacements[value]


def _replace_uids(element: DataElement, uids: UIDMap) -> None:
    if element.VM > 1:
        element.value = [uids(v) for v in element.value]
    elif element.value:
        element.value = uids(element.value)


def _dummy(element: DataElement, uids: UIDMap) -> None:
    if element.VR == "UI":
        _replace_uids(element, uids)
    elif element.VR in DUMMY_BY_VR:
        element.value = DUMMY_BY_VR[element.VR]
    else:
        element.value = None  # a VR without a sensible dummy (AT): emptied rather than kept


# Coding schemes whose codes may be made up on site (PS3.16 8.2: "99" prefixed and "L" are local):
# their values and meanings inside a structured report can be anything, a name included.
def _is_local_scheme(designator: str) -> bool:
    designator = str(designator or "").strip().upper()
    return not designator or designator == "L" or designator.startswith("99")


def _clean_local_code(ds: Dataset) -> None:
    if "CodeMeaning" in ds and _is_local_scheme(ds.get("CodingSchemeDesignator", "")):
        for keyword in ("CodeValue", "LongCodeValue", "URNCodeValue"):
            if keyword in ds:
                setattr(ds, keyword, "ANONYMOUS" if keyword != "URNCodeValue" else "urn:anonymous")
        ds.CodeMeaning = "ANONYMOUS"


def clean(ds: Dataset, uids: UIDMap, *, in_content: bool = False) -> None:
    """Apply the basic profile to ``ds`` in place, sequence items included.

    Beyond the table: attributes the data dictionary does not know and every URL (UR) are removed,
    since nothing says what they hold; inside a structured report's Content Sequence, codes of
    local coding schemes get dummy values and meanings."""
    if in_content:
        _clean_local_code(ds)
    for tag in list(ds.keys()):
        element = ds[tag]
        if tag.is_private or tag.group == 0x0000:
            # Command elements (Affected/Requested SOP Instance UID) have no place in a stored file.
            del ds[tag]
            continue
        action = action_for(tag)
        if action is None and (element.VR == "UR" or not dictionary_vr(int(tag))):
            del ds[tag]
            continue
        if action == "X":
            del ds[tag]
        elif action == "Z":
            element.value = Sequence() if element.VR == "SQ" else None
        elif element.VR == "SQ":
            # A "D" or "U" sequence keeps its structure with cleaned contents, as does any other.
            inside = in_content or int(tag) == CONTENT_SEQUENCE
            for item in element.value:
                clean(item, uids, in_content=inside)
        elif action == "D":
            _dummy(element, uids)
        elif action == "U" or element.VR == "UI":
            _replace_uids(element, uids)


def mark_deidentified(ds: Dataset) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD_TEXT
    code = Dataset()
    code.CodeValue = PROFILE_CODE
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = PROFILE_MEANING
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    ds.LongitudinalTemporalInformationModified = "REMOVED"


def deidentify(ds: Dataset, uids: UIDMap) -> Dataset:
    """``ds`` de-identified in place, with file meta information to match."""
    transfer_syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None) or ExplicitVRLittleEndian
    clean(ds, uids)
    mark_deidentified(ds)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = transfer_syntax
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    return ds


CONTENT_SEQUENCE = 0x0040A730


def flag_reason(ds: Dataset) -> str:
    """Why the pixels or content of ``ds`` may identify the patient, or "" when nothing says so."""
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        return "BurnedInAnnotation is YES: identifying text may be written into the pixels"
    if str(ds.get("RecognizableVisualFeatures", "")).upper() == "YES":
        return "RecognizableVisualFeatures is YES: the image may show the patient's face or features"
    if "EncapsulatedDocument" in ds:
        return "an encapsulated document, whose content cannot be de-identified"
    return ""


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@dataclass
class CopyReport:
    included: int = 0
    flagged: list[tuple[str, str, bool]] = field(default_factory=list)  # (name, reason, included)
    unreadable: list[str] = field(default_factory=list)


def _read(instance: Instance) -> Dataset | None:
    try:
        with instance.file.storage.open(instance.file.name, "rb") as source:
            return pydicom.dcmread(source)
    except (FileNotFoundError, InvalidDicomError):
        return None


def deidentified_files(study: Study, *, include_flagged: bool, report: CopyReport) -> Iterator[tuple[str, bytes]]:
    """(name in the copy, file bytes) for each instance of ``study`` that goes into the copy."""
    uids = UIDMap()
    series_folders: dict[int, str] = {}
    for position, instance in enumerate(study_instances(study), start=1):
        folder = series_folders.setdefault(
            instance.series_id, series_folder(f"{len(series_folders) + 1:03d}", instance.series.modality)
        )
        name = f"DICOM/{folder}/{position:05d}.dcm"
        ds = _read(instance)
        if ds is None:
            report.unreadable.append(name)
            continue
        reason = flag_reason(ds)
        if reason:
            report.flagged.append((name, reason, include_flagged))
            if not include_flagged:
                continue
        try:
            data = to_bytes(deidentify(ds, uids))
        except Exception:
            # The archive is already streaming: one file pydicom cannot rewrite is left out and
            # listed, rather than cutting the download short.
            logger.exception("Instance %s could not be de-identified", instance.pk)
            report.unreadable.append(name)
            continue
        report.included += 1
        yield name, data


def readme(report: CopyReport, *, include_flagged: bool) -> str:
    made = format_instant(timezone.now())
    lines = [
        "De-identified copy",
        "",
        f"Made {made} following the {PROFILE_MEANING} (DICOM PS3.15 Annex E, code DCM {PROFILE_CODE}).",
        "Identifying attributes were removed, emptied or replaced, in sequences too; every UID was replaced",
        "consistently within this copy; private attributes were removed. Pixel data was not changed:",
        "images that do not say they carry burned-in text (BurnedInAnnotation) may still show it, as",
        "screenshots, scanned documents and ultrasound images often do. Look at them before sharing.",
        "",
        f"Files in this copy: {report.included}",
    ]
    if report.flagged:
        lines += ["", "Files that may show identifying information in their pixels or content:"]
        for name, reason, included in report.flagged:
            state = "INCLUDED at the requester's insistence" if included else "left out"
            lines.append(f"- {name}: {reason} ({state})")
        if not include_flagged:
            lines.append("Ask for the copy with include_burned_in=1 to include them; check them before sharing.")
    if report.unreadable:
        lines += [
            "",
            "Files that could not be de-identified and were left out:",
            *(f"- {n}" for n in report.unreadable),
        ]
    return "\n".join(lines) + "\n"


def zip_stream(study: Study, *, include_flagged: bool) -> Iterator[bytes]:
    """The copy as a zip, written as it is produced; README.txt at the end lists what was left out."""
    report = CopyReport()
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in deidentified_files(study, include_flagged=include_flagged, report=report):
            with archive.open(name, "w", force_zip64=True) as target:
                for start in range(0, len(data), CHUNK):
                    target.write(data[start : start + CHUNK])
                    yield sink.take()
        archive.writestr("README.txt", readme(report, include_flagged=include_flagged))
    yield sink.take()


def copy_response(study: Study, *, include_flagged: bool) -> StreamingResponse:
    response = StreamingResponse(zip_stream(study, include_flagged=include_flagged), content_type="application/zip")
    response["Content-Disposition"] = 'attachment; filename="deidentified-study.zip"'
    response["Cache-Control"] = "private, no-store"
    return response

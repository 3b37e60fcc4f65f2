"""STOW-RS (PS3.18 10.5): the request's headers checked before its body is read, parts fixed up
before ingest, and the response dataset with its status."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any

from .attributes import attr
from .errors import DicomwebError
from .media_types import parse_media_type
from .multipart import check_boundary

# FailureReason for each IngestResult.code; anything else is a processing failure.
FAILURE_REASONS = {
    "not_dicom": 0xC000,
    "bad_file_meta": 0xC000,
    "truncated": 0xC000,
    "corrupt": 0xC000,
    "too_deep": 0xC000,
    "missing_uid": 0xC000,
    "invalid_uid": 0xC000,
    "empty": 0xC000,
    "unsupported_media_type": 0xC000,
    "unsupported": 0xC122,
    "unsupported_transfer_syntax": 0xC122,
    "dicomdir": 0x0122,
    "too_large": 0xA700,
    "dimensions_mismatch": 0xA900,
    "wrong_study": 0xA900,
    "patient_mismatch": 0xA900,  # as wrong_study: the data set does not fit the study it names
    "conflict": 0x0110,
    "forbidden_study": 0x0110,
    "unreadable": 0x0110,
}
PROCESSING_FAILURE = 0x0110
COERCION_WARNING = 0xB000
STORED = ("stored", "already_stored")


@dataclass
class RefusedPart:
    """A part refused before ingest (its media type), shaped like an IngestResult."""

    filename: str
    reason: str
    code: str = "unsupported_media_type"
    status: str = "refused"
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    coerced: bool = False


def failure_reason(code: str | None) -> int:
    return FAILURE_REASONS.get(code or "", PROCESSING_FAILURE)


def add_missing_preamble(path: str) -> bool:
    """Give a part that starts with its file meta group the PS3.10 preamble and "DICM" marker.

    dicomweb-client writes data sets built in memory without a preamble; the bytes are otherwise
    a complete file, so the part is stored rather than refused as "not DICOM".
    """
    with open(path, "rb") as handle:
        head = handle.read(132)
    if head[128:132] == b"DICM" or not head.startswith(b"\x02\x00") or not head[4:6].isalpha():
        return False
    fixed = f"{path}.p10"
    with open(path, "rb") as source, open(fixed, "wb") as out:
        out.write(b"\0" * 128 + b"DICM")
        shutil.copyfileobj(source, out, 1 << 20)
    os.replace(fixed, path)
    return True


def stow_boundary(content_type: str, content_length: str | None, limit: int) -> str:
    """The multipart boundary of a STOW-RS request with these headers; DicomwebError when STOW-RS
    refuses the request without reading its body (another media type, no boundary or one longer than
    ``multipart.MAX_BOUNDARY``, a declared length over ``limit``)."""
    media_type, params = parse_media_type(content_type)
    if media_type != "multipart/related":
        raise DicomwebError(
            f'STOW-RS takes multipart/related; type="application/dicom", not {media_type or "no media type"}.',
            status=415,
        )
    part_type = params.get("type", "application/dicom").lower()
    if part_type != "application/dicom":
        raise DicomwebError(f'Only type="application/dicom" parts are accepted, not {part_type}.', status=415)
    check_boundary(params.get("boundary"))
    try:
        declared = int(content_length or 0)
    except ValueError:
        raise DicomwebError("Content-Length is not a number.") from None
    if declared > limit:
        raise DicomwebError(f"The request is larger than the limit of {limit} bytes.", status=413)
    return params["boundary"]


def stow_response(results: list, instance_url, study_url) -> tuple[int, dict[str, Any]]:
    """The STOW-RS answer: HTTP status and the response dataset as DICOM JSON."""
    referenced, failed, studies, warned = [], [], set(), False
    for result in results:
        if result.status in STORED:
            item = {
                "00081150": attr("UI", result.sop_class_uid),
                "00081155": attr("UI", result.sop_instance_uid),
                "00081190": attr(
                    "UR",
                    instance_url(result.study_instance_uid, result.series_instance_uid, result.sop_instance_uid),
                ),
            }
            if getattr(result, "coerced", False):
                warned = True
                item["00081196"] = attr("US", COERCION_WARNING)
                if result.reason:
                    item["00000902"] = attr("LO", result.reason[:64])
            referenced.append(item)
            studies.add(result.study_instance_uid)
        else:
            failed.append(
                {
                    "00081150": attr("UI", result.sop_class_uid),
                    "00081155": attr("UI", result.sop_instance_uid),
                    "00081197": attr("US", failure_reason(result.code)),
                    "00000902": attr("LO", f"{result.filename}: {result.reason}"[:64]),
                    # ErrorComment is limited to 64 characters; TextValue carries the whole reason.
                    "0040A160": attr("UT", f"{result.filename}: {result.reason}"),
                }
            )
    dataset: dict[str, Any] = {}
    if len(studies) == 1:
        dataset["00081190"] = attr("UR", study_url(next(iter(studies))))
    if referenced:
        dataset["00081199"] = {"vr": "SQ", "Value": referenced}
    if failed:
        dataset["00081198"] = {"vr": "SQ", "Value": failed}
    if not referenced:
        return 409, dataset
    return (202 if failed or warned else 200), dataset

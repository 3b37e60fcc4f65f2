"""What ingesting a file comes to: stored, already stored, or refused with a code and a reason.

``REFUSAL_CODES`` is the one table of refusal codes: the API documents it, and a refusal can only
be made with a code it holds (``refusal_code``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from teleconsult.errors import PortalError

STORED = "stored"
ALREADY_STORED = "already_stored"
REFUSED = "refused"

# Every code a refused file can carry, and what it means (API docs and clients read this table).
REFUSAL_CODES = {
    "empty": "the file (or archive) holds no bytes or no files",
    "too_large": "over the per-file or per-request size limit, or a deflated data set expanding too far",
    "not_dicom": "no 'DICM' marker after the 128-byte preamble (not a DICOM PS3.10 file)",
    "bad_file_meta": "no valid file meta information (group 0002) after the 'DICM' marker",
    "truncated": "the file ends before an element, sequence or the pixel data it declares",
    "corrupt": "malformed structure or a header pydicom cannot read",
    "too_deep": "sequences nested deeper than the server reads",
    "missing_uid": "no Study, Series or SOP Instance UID",
    "invalid_uid": "a UID too long or with characters unsafe in a URL",
    "dimensions_mismatch": "pixel data smaller than rows x columns x frames x samples declare",
    "dicomdir": "a DICOMDIR media index, skipped (the files it lists are imported)",
    "wrong_study": "sent to a study (STOW-RS .../studies/{uid}) it does not belong to",
    "forbidden_study": "belongs to a stored study the uploader may not see (ask for it to be shared)",
    "patient_mismatch": "names another patient (PatientID or IssuerOfPatientID) than the study it belongs to",
    "no_practice": "starts a new study, and the uploader belongs to no practice to file it under",
    "conflict": "the SOP Instance UID (or series) is already stored with other content; the stored one is kept",
    "unreadable": "the upload could not be read from disk",
    "zip_unsafe": "an archive entry with an absolute or '..' path",
    "zip_too_many_entries": "an archive with more entries than allowed",
    "zip_too_large": "an archive expanding beyond the allowed total size",
    "zip_bomb": "an archive whose compression ratio is beyond the allowed one",
    "zip_encrypted": "an encrypted archive entry",
    "zip_unsupported": "an archive entry compressed with an unsupported method",
    "zip_corrupt": "an archive that cannot be read",
}


def refusal_code(code: str) -> str:
    """``code``, which ``REFUSAL_CODES`` must document: a refusal whose code clients cannot look up
    is a mistake in this package, raised where it is made."""
    if code not in REFUSAL_CODES:
        raise ValueError(f"refusal code {code!r} is not in REFUSAL_CODES")
    return code


@dataclass
class IngestResult:
    filename: str
    status: str  # "stored" | "already_stored" | "refused"
    code: str = ""
    reason: str = ""
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    instance_id: int | None = None
    coerced: bool = False

    def __post_init__(self) -> None:
        if self.status == REFUSED:
            refusal_code(self.code)

    def as_dict(self) -> dict:
        return asdict(self)


class IngestRefusedError(PortalError):
    """A file that will not be stored, with a code for programs and a reason for people.

    Ingest answers it per file (an ``IngestResult`` with status "refused"), not as the request's
    answer; where one file is the whole request it renders like any other refusal (422)."""

    status = 422

    def __init__(self, code: str, reason: str, **uids: str):
        super().__init__(reason, code=refusal_code(code))
        self.reason = reason
        self.uids = uids


def human(size: int) -> str:
    """A size in bytes as refusals word it ("12.3 MB")."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"

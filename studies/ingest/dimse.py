"""Instances received over DIMSE (C-STORE) into ingest, and the C-STORE status saying what happened.

The receiver (``studies.dimse``) writes each received data set to a PS3.10 file of its own and
hands it here; it goes through the same checks, refusals, idempotence, thumbnails and access as an
upload by the node's owner, filed under the node's practice.

One transaction per instance, not a batch per association: a C-STORE is answered before the
sender sends the next one (dcmtk and most PACS negotiate one outstanding operation), and its status
must say what ingest made of it; some refusals (a study the owner may not see, a conflicting
instance) are only known once the rows are written. Holding the answers for a batch would stall
the sender; answering early would report success for instances not yet written.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from .batch import IngestBatch
from .entry import ingest_paths
from .results import ALREADY_STORED, STORED, IngestResult

SUCCESS = 0x0000
# PS3.4 B.2.3: Warning, coercion of data elements (ingest stored a file that does not fully conform).
COERCED = 0xB000
# Refused: out of resources, for a database that does not answer (send again later).
UNAVAILABLE = 0xA7FE
# Error: cannot understand, for a refusal code this table does not name.
CANNOT_UNDERSTAND = 0xC0FF

# Each ingest refusal code and its status: out of resources (A7xx), a data set that may not be
# stored here (A9xx), or one that cannot be understood (C0xx). The low byte tells the reasons apart.
REFUSAL_STATUS = {
    "too_large": 0xA700,
    "unreadable": 0xA701,
    "forbidden_study": 0xA900,
    "conflict": 0xA901,
    "no_practice": 0xA902,
    "wrong_study": 0xA903,
    "dicomdir": 0xA904,
    "dimensions_mismatch": 0xA905,
    "empty": 0xC000,
    "not_dicom": 0xC001,
    "bad_file_meta": 0xC002,
    "truncated": 0xC003,
    "corrupt": 0xC004,
    "too_deep": 0xC005,
    "missing_uid": 0xC006,
    "invalid_uid": 0xC007,
}
# ErrorComment is an LO: 64 characters of the default repertoire.
COMMENT_LENGTH = 64


@dataclass(frozen=True)
class Answer:
    """The C-STORE answer for one instance: its status, an ErrorComment, and the ingest result."""

    status: int
    comment: str
    result: IngestResult | None = None

    def as_dataset(self) -> Dataset:
        ds = Dataset()
        ds.Status = self.status
        if self.comment:
            ds.ErrorComment = self.comment
        return ds


def comment(text: str) -> str:
    """``text`` as an ErrorComment: printable ASCII, at most 64 characters."""
    cleaned = "".join(char if " " <= char <= "~" and char != "\\" else "?" for char in text)
    return cleaned if len(cleaned) <= COMMENT_LENGTH else cleaned[: COMMENT_LENGTH - 3] + "..."


def answer_for(result: IngestResult) -> Answer:
    if result.status in (STORED, ALREADY_STORED):
        if result.coerced:
            return Answer(COERCED, comment("coerced: " + result.reason.removeprefix("Stored; ")), result)
        return Answer(SUCCESS, "", result)
    status = REFUSAL_STATUS.get(result.code, CANNOT_UNDERSTAND)
    return Answer(status, comment(f"{result.code}: {result.reason}"), result)


def store_received(path: str, *, filename: str, user, practice) -> Answer:
    """Ingest the received instance at ``path`` (a temporary file of the receiver's own, stored
    itself rather than copied) as ``user``'s upload to ``practice``; the C-STORE answer.

    Database errors propagate: the caller answers them as a transient refusal."""
    with IngestBatch(user, practice=practice) as batch:
        [result] = ingest_paths([(filename, path)], batch=batch, owned=True)
    return answer_for(result)

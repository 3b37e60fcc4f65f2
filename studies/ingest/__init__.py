"""Ingest DICOM files: validate, store, and record Patient/Study/Series/Instance.

Every way in (browser page, REST upload, STOW-RS, ``import_dicom``) calls ``ingest_file`` or
``ingest_files``. A file is checked in this order, each failure refused with a code and a reason
that names the problem: size, the PS3.10 "DICM" prefix, the file meta information, the structure
of the whole file (walked element by element without reading values, so truncation, absurd
nesting and pixel data shorter than declared are caught without loading the file), then pydicom
reads the header (``stop_before_pixels``, large values deferred). Files pydicom reads with
warnings are kept and marked ``coerced``.

Storage: the file is staged with its preamble zeroed and hashed; when its batch commits it is moved
into the default storage and the rows of all the batch's files are written together in one
transaction (``IngestBatch``), and the thumbnails are queued after commit. Re-sending an instance
with the same bytes is "already_stored"; different bytes under a stored SOPInstanceUID are a
"conflict" and the original is kept.

One concern per module:

- ``entry``: the entry points (one file, files on disk side by side, a stream in batches)
- ``results``: ``IngestResult``, ``IngestRefusedError`` and the table of refusal codes
- ``checks``: the checks of one file, in order, up to a staged ``Pending`` file or a refusal
- ``structure``: the byte-level walk of a PS3.10 file (file meta, elements, pixel data, inflating)
- ``header``: the UIDs, row values and DICOM JSON metadata read from the parsed header
- ``batch``: ``IngestBatch``, the rows of a batch's files written in one transaction
- ``rows``: fast inserts and count updates (the only module past the ORM's public API)
- ``pool``: the checking processes
- ``zips``: zip archives

This module only re-exports the public names. Tests that patch a name patch it in the module that
uses it (``studies.ingest.entry.BATCH_SIZE``, ``studies.ingest.rows.stored_instances``).
"""

from ..dicomjson import BULK_DATA_THRESHOLD
from .batch import IngestBatch
from .entry import BATCH_SIZE, ingest_file, ingest_files, ingest_paths, iter_ingest
from .pool import start_checking_processes
from .results import ALREADY_STORED, REFUSAL_CODES, REFUSED, STORED, IngestRefusedError, IngestResult
from .structure import MAX_SEQUENCE_DEPTH

__all__ = [
    "ALREADY_STORED",
    "BATCH_SIZE",
    "BULK_DATA_THRESHOLD",
    "MAX_SEQUENCE_DEPTH",
    "REFUSAL_CODES",
    "REFUSED",
    "STORED",
    "IngestBatch",
    "IngestRefusedError",
    "IngestResult",
    "ingest_file",
    "ingest_files",
    "ingest_paths",
    "iter_ingest",
    "start_checking_processes",
]

"""C-FIND SCP at study level: a registered node searches its own practice's studies.

Keys are matched by the portal's QIDO-RS search (``studies.dicomweb.qido``: ``parse_qido`` reads
and checks the values, ``search_studies`` filters and orders), so a key means the same over DIMSE
as over DICOMweb: PatientName with ``*``/``?`` wildcards in any component group and without regard
to case, StudyDate ranges, UID lists, ModalitiesInStudy as "one of these in the study". What the
answer holds comes from the same study row and patient record QIDO answers from, plus the few
study-wide header attributes QIDO's ``includefield`` reads from a first instance.

The node sees only studies of the node's practice (``Study.practice``), whatever its owner may see
through grants: the node is a machine of that practice, not a person with consults elsewhere.

Statuses (PS3.4 C.4.1.1.4): 0xFF00 per match, or 0xFF01 when the identifier asks for return keys
this SCP does not fill (they are sent zero-length); then 0x0000 (sent by pynetdicom). Refusals
carry an ErrorComment of at most 64 characters:

- 0xA900, the identifier does not match the SOP class: no or an unknown QueryRetrieveLevel, a
  value that is not what its key takes (a date, a UID), a key of a lower level with a value, a
  Patient Root query without the one PatientID it is about;
- 0xC000, a level other than STUDY; 0xC001, a value on a key the search cannot match on (ignoring
  it would answer studies the node did not ask for);
- 0xA700, out of resources: the database does not answer (ask again later), or more studies match
  than ``MAX_MATCHES``: the newest ``MAX_MATCHES`` have been sent, and the final status says the
  answer was cut. (PS3.4 defines no warning status for a Study Root C-FIND, 0xB001 belongs to the
  Repository Query, and pynetdicom 3.0 follows a warning with a second final response, which
  breaks the sender's association.)
- 0xFE00 once the node's C-CANCEL arrives: no further matches are sent.

A search is not recorded in the access history, as QIDO searches are not (``studies.audit``):
it returns many studies' keys and no study's data. Each one is logged at INFO by ``studies.dimse``
with the node, the keys matched on (not their values) and the number of matches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

from django.db import DatabaseError, close_old_connections, connections
from django.utils.datastructures import MultiValueDict
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from teleconsult.errors import PortalError

from ..dicomweb import qido
from ..dicomweb.attributes import STUDY_FIELDS, study_attributes, tag_key
from ..dicomweb.errors import DicomwebError
from ..ingest.dimse import comment
from ..models import Study
from .contexts import PATIENT_ROOT_FIND, STUDY_ROOT_FIND

logger = logging.getLogger("studies.dimse")

# Matches one C-FIND answers; more are cut (newest first) with a final 0xA700 saying so.
MAX_MATCHES = 1000

PENDING = 0xFF00
PENDING_KEYS_UNSUPPORTED = 0xFF01
CANCELLED = 0xFE00
OUT_OF_RESOURCES = 0xA700
IDENTIFIER_DOES_NOT_MATCH = 0xA900
LEVEL_NOT_SUPPORTED = 0xC000
KEY_NOT_SUPPORTED = 0xC001

# The levels of each information model (PS3.4 C.3), and the one answered here.
MODEL_LEVELS = {
    STUDY_ROOT_FIND: ("STUDY", "SERIES", "IMAGE"),
    PATIENT_ROOT_FIND: ("PATIENT", "STUDY", "SERIES", "IMAGE"),
}
MODEL_NAMES = {STUDY_ROOT_FIND: "Study Root", PATIENT_ROOT_FIND: "Patient Root"}
LEVEL = "STUDY"

SPECIFIC_CHARACTER_SET = Tag(0x0008, 0x0005)
QUERY_RETRIEVE_LEVEL = Tag(0x0008, 0x0052)
INSTANCE_AVAILABILITY = Tag(0x0008, 0x0056)
# Kinds of key whose values may be a list (PS3.4 C.2.2.2.2: UID lists; ModalitiesInStudy holds several).
MULTI_VALUED_KINDS = {"uid", "modalities"}


class FindRefusedError(PortalError):
    """A C-FIND this SCP does not answer with matches; ``dimse_status`` is its failure status."""

    code = "find_refused"

    def __init__(self, dimse_status: int, message: str, *, offending: int | None = None) -> None:
        super().__init__(message, dimse_status=dimse_status)
        self.dimse_status = dimse_status
        self.offending = offending

    def as_dataset(self) -> Dataset:
        ds = status_dataset(self.dimse_status, self.message)
        if self.offending is not None:
            ds.OffendingElement = [self.offending]
        return ds


@dataclass
class FindRequest:
    """A C-FIND identifier read: the QIDO query it amounts to and the return keys asked for."""

    model: str
    query: qido.QidoQuery
    return_keys: list[tuple[BaseTag, str]] = field(default_factory=list)  # (tag, VR)
    unsupported_return_keys: bool = False


def status_dataset(status: int, message: str = "") -> Dataset:
    ds = Dataset()
    ds.Status = status
    if message:
        ds.ErrorComment = comment(message)
    return ds


@cache
def answered_tags() -> frozenset[int]:
    """The attributes a match can carry: QIDO's study answer, the study-wide header attributes of
    ``includefield=all``, and the query's own level and availability."""
    row = {name: None for name in STUDY_FIELDS} | {"modalities": ""}
    tags = {int(key, 16) for key in study_attributes(row, None)}
    tags |= {tag_for_keyword(keyword) for keyword in qido.EXTRA_STUDY_KEYWORDS}
    return frozenset(tags | {QUERY_RETRIEVE_LEVEL, INSTANCE_AVAILABILITY})


def _matching_text(element) -> str | None:
    """A key's value as the QIDO parameter it stands for; None for universal matching (zero
    length or ``*``). A list (``a\\b``) becomes QIDO's backslash-separated list."""
    value = element.value
    if value is None or value == "":
        return None
    if isinstance(value, MultiValue | list):
        items = [str(item) for item in value if str(item) != ""]
        if not items:
            return None
        if len(items) > 1:
            return "\\".join(items)
        value = items[0]
    text = str(value).strip()
    return None if text in ("", "*") else text


def _sequence_is_empty(value: Sequence) -> bool:
    return all(all(_matching_text(element) is None for element in item) for item in value)


def read_request(model: str, identifier: Dataset) -> FindRequest:
    """The C-FIND ``identifier`` under ``model`` (a FIND SOP class UID) as a study search; raises
    FindRefusedError naming what is wrong."""
    name = MODEL_NAMES[model]
    if QUERY_RETRIEVE_LEVEL not in identifier or not str(identifier.QueryRetrieveLevel or "").strip():
        raise FindRefusedError(IDENTIFIER_DOES_NOT_MATCH, "QueryRetrieveLevel (0008,0052) is missing")
    level = str(identifier.QueryRetrieveLevel).strip().upper()
    if level not in MODEL_LEVELS[model]:
        raise FindRefusedError(IDENTIFIER_DOES_NOT_MATCH, f"{level[:16]} is not a level of {name}")
    if level != LEVEL:
        raise FindRefusedError(LEVEL_NOT_SUPPORTED, f"{level} level not supported: query at STUDY level")

    params: MultiValueDict = MultiValueDict()
    request = FindRequest(model, qido.QidoQuery())
    for element in identifier:
        tag = element.tag
        if tag.element == 0 or tag in (SPECIFIC_CHARACTER_SET, QUERY_RETRIEVE_LEVEL):
            continue
        keyword = element.keyword or f"({tag.group:04X},{tag.element:04X})"
        if element.VR == "SQ":
            if not _sequence_is_empty(element.value):
                raise FindRefusedError(
                    KEY_NOT_SUPPORTED, f"sequence matching on {keyword} not supported", offending=tag
                )
            value = None
        else:
            value = _matching_text(element)
        if value is None:
            if not tag.is_private:
                request.return_keys.append((tag, element.VR.split(" or ")[0]))
                request.unsupported_return_keys |= tag not in answered_tags()
            continue
        matcher = qido.MATCHERS.get(element.keyword)
        if matcher is not None and matcher.level != "study":
            hint = ": use ModalitiesInStudy" if keyword == "Modality" else ""
            raise FindRefusedError(
                IDENTIFIER_DOES_NOT_MATCH, f"{keyword} is a {matcher.level.upper()} key{hint}", offending=tag
            )
        if matcher is None:
            raise FindRefusedError(KEY_NOT_SUPPORTED, f"matching on {keyword} not supported", offending=tag)
        if "\\" in value and matcher.kind not in MULTI_VALUED_KINDS:
            raise FindRefusedError(IDENTIFIER_DOES_NOT_MATCH, f"{keyword} takes one value, not a list", offending=tag)
        params.appendlist(keyword, value)
        request.return_keys.append((tag, element.VR))
    try:
        request.query = qido.parse_qido(params, "study")
    except DicomwebError as exc:
        raise FindRefusedError(IDENTIFIER_DOES_NOT_MATCH, exc.message) from None
    if model == PATIENT_ROOT_FIND:
        patient_id = (request.query.filters.get("PatientID") or [""])[0]
        if not patient_id or "*" in patient_id or "?" in patient_id:
            raise FindRefusedError(IDENTIFIER_DOES_NOT_MATCH, "Patient Root STUDY level needs one PatientID")
    extra = {tag_for_keyword(keyword) for keyword in qido.EXTRA_STUDY_KEYWORDS}
    request.query.include_tags = [tag_key(tag) for tag, _vr in request.return_keys if tag in extra]
    return request


def search(practice_id: int, request: FindRequest) -> tuple[list[dict], bool]:
    """The practice's studies matching ``request``, newest first, as QIDO's DICOM JSON (at most
    ``MAX_MATCHES``), and whether more matched. Each becomes an identifier as it is sent."""
    request.query.limit = MAX_MATCHES + 1
    found, _ = qido.search_studies(Study.objects.filter(practice_id=practice_id), request.query, lambda _uid: None)
    return found[:MAX_MATCHES], len(found) > MAX_MATCHES


def identifier(request: FindRequest, found: dict) -> Dataset:
    """The answer for one match (QIDO's DICOM JSON of it): every key asked for (zero-length where
    this SCP has no value), and the unique key StudyInstanceUID (and PatientID under Patient Root)
    whether asked for or not."""
    match = Dataset.from_json(found)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = LEVEL
    for tag, vr in request.return_keys:
        if tag in match:
            ds[tag] = match[tag]
        elif tag == INSTANCE_AVAILABILITY:
            ds.InstanceAvailability = "ONLINE"  # every stored instance is on disk
        else:
            ds.add_new(tag, vr, [] if vr == "SQ" else None)
    ds.StudyInstanceUID = match.StudyInstanceUID
    if request.model == PATIENT_ROOT_FIND:
        ds.PatientID = match.get("PatientID", "")
    return ds


def answer(event, *, practice_id: int, calling: str) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """The C-FIND handler's responses for ``event`` from the node ``calling`` of ``practice_id``."""
    model = str(event.request.AffectedSOPClassUID)
    try:
        request = read_request(model, event.identifier)
    except FindRefusedError as refused:
        logger.warning("DIMSE: C-FIND from %s refused (0x%04X): %s", calling, refused.dimse_status, refused.message)
        yield refused.as_dataset(), None
        return
    except Exception as exc:  # an identifier pydicom cannot decode: nothing to match on
        logger.warning("DIMSE: C-FIND from %s refused: identifier not decoded: %s", calling, exc)
        yield status_dataset(IDENTIFIER_DOES_NOT_MATCH, "the identifier cannot be decoded"), None
        return
    close_old_connections()
    try:
        matches, more = search(practice_id, request)
    except DatabaseError:
        logger.exception("DIMSE: C-FIND from %s not answered: database unavailable", calling)
        yield status_dataset(OUT_OF_RESOURCES, "database unavailable: try again later"), None
        return
    finally:
        connections.close_all()  # the association's thread; its connection is not needed again
    keys = ", ".join(request.query.filters) or "no keys"
    logger.info(
        "DIMSE: C-FIND from %s (%s, STUDY) on %s: %d matches%s",
        calling,
        MODEL_NAMES[model],
        keys,
        len(matches),
        f", cut at {MAX_MATCHES}" if more else "",
    )
    status = PENDING_KEYS_UNSUPPORTED if request.unsupported_return_keys else PENDING
    for match in matches:
        pending = identifier(request, match)
        if event.is_cancelled:  # checked just before each answer goes out
            logger.info("DIMSE: C-FIND from %s cancelled", calling)
            yield CANCELLED, None
            return
        yield status, pending
    if more:
        cut = f"more than {MAX_MATCHES} studies match; the newest {MAX_MATCHES} were sent"
        yield status_dataset(OUT_OF_RESOURCES, cut), None

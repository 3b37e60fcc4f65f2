"""DICOM JSON (PS3.18 Annex F) of plain header elements straight from their bytes.

Ingest stores every header as DICOM JSON. pydicom's way there (convert the raw element to a
``DataElement``, validate it, then ``to_json_dict``) is most of the cost of ingesting a file, and
most elements are plain: a UID, a code string, a number or a short text in the default or a
single-byte/UTF-8 character set. ``element_json`` converts those itself and answers None for
anything pydicom must decide (sequences, binary and ambiguous VRs, private tags of implicit VR,
unknown tags, other character sets, escape sequences, values that are empty among others, blanks
around a UID or code, NULs inside a value, numbers that are not valid or not finite), so the
caller falls back to pydicom. ``tests/studies/test_dicomjson.py`` checks that the result is
pydicom's, element for element, on every file of the reference corpus and pydicom's character set
files.

``storable`` says whether a converted element can be kept in a JSON column: PostgreSQL's jsonb
holds neither NaN nor infinity nor a NUL character, all of which pydicom accepts.

``header_json`` is the whole header as ingest stores it (``Instance.metadata``): plain elements by
``element_json``, the items of sequences element by element the same way, anything else by pydicom,
bulk data reduced to its VR.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any

from pydicom import config
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

# Values larger than this in binary VRs are kept out of Instance.metadata (bulk data).
BULK_DATA_THRESHOLD = 1024
BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
BULK_MARK = "teleconsult:bulk"

# SpecificCharacterSet values whose text decodes with one Python codec, as pydicom decodes it.
_CHARSETS = {"": default_encoding, "ISO_IR 6": default_encoding, "ISO_IR 100": "latin_1", "ISO_IR 192": "UTF8"}
_ASCII_VRS = {"AS", "CS", "DA", "DT", "TM", "UI"}
_SPLIT_TEXT_VRS = {"SH", "LO", "UC"}
_SINGLE_TEXT_VRS = {"LT", "ST", "UT"}
_NUMBERS = {"US": "H", "UL": "L", "SS": "h", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_CONVERTED_VRS = {*_ASCII_VRS, *_SPLIT_TEXT_VRS, *_SINGLE_TEXT_VRS, *_NUMBERS, "IS", "DS", "PN"}
_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")


def dictionary_vr(tag: int) -> str:
    """The VR the data dictionary gives ``tag``, or "" for a tag it does not know."""
    try:
        return dictionary_VR(tag)
    except KeyError:
        return ""


def text_encoding(specific_character_set: Any) -> str | None:
    """The codec for the text of a data set with this SpecificCharacterSet; None when pydicom's own
    decoding (code extensions, several character sets) is needed."""
    if specific_character_set is None:
        return default_encoding
    if not isinstance(specific_character_set, str):
        values = list(specific_character_set)
        if len(values) != 1:
            return None
        specific_character_set = values[0]
    return _CHARSETS.get(str(specific_character_set).strip())


def element_json(raw: RawDataElement, encoding: str) -> dict | None:
    """The DICOM JSON of ``raw`` as pydicom would give it, or None when pydicom must convert it."""
    value = raw.value
    tag = int(raw.tag)
    if value is None or config.datetime_conversion:
        return None
    if (tag >> 16) % 2 and raw.VR in (None, "UN"):
        return None  # a private element of implicit or unknown VR: pydicom knows the private dictionaries
    vr = raw.VR or dictionary_vr(tag)
    if not vr:
        return None
    if not value:
        return {"vr": vr} if vr in _CONVERTED_VRS else None
    if vr in _NUMBERS:
        try:
            return _numbers(vr, value, raw.is_little_endian)
        except struct.error:
            return None
    if b"\x1b" in value:
        return None  # escape sequences: pydicom's decoding removes them
    try:
        if vr in _ASCII_VRS:
            parts = value.decode(default_encoding).rstrip(" \x00").split("\\")
            if any(part != part.strip() for part in parts):
                return None  # blanks around a value: pydicom strips them from a UID, not from a code
            return _strings(vr, parts)
        if vr in _SPLIT_TEXT_VRS:
            return _strings(vr, [part.rstrip("\x00 ") for part in value.decode(encoding).split("\\")])
        if vr in _SINGLE_TEXT_VRS:
            text = value.decode(encoding).rstrip("\x00 ")
            if "\x00" in text:
                return None
            return {"vr": vr, "Value": [text]} if text else {"vr": vr}
        if vr in ("IS", "DS"):
            return _decimal_strings(vr, value.decode(default_encoding))
        if vr == "PN":
            return _person_names(value.rstrip(b"\x00 ").decode(encoding))
    except UnicodeDecodeError:
        return None
    return None


def _strings(vr: str, parts: list[str]) -> dict | None:
    if any("\x00" in part for part in parts):
        return None  # a NUL inside a value: not storable as JSON text, left to pydicom and the caller
    if len(parts) == 1:
        return {"vr": vr, "Value": parts} if parts[0] else {"vr": vr}
    if "" in parts:
        return None
    return {"vr": vr, "Value": parts}


def _decimal_strings(vr: str, text: str) -> dict | None:
    parts = [part.strip(" ") for part in text.rstrip(" \x00").split("\\")]
    if parts == [""]:
        return {"vr": vr}
    pattern, number = (_INTEGER, int) if vr == "IS" else (_DECIMAL, float)
    if not all(pattern.match(part) for part in parts):
        return None
    numbers = [number(part) for part in parts]
    if not all(math.isfinite(value) for value in numbers):
        return None  # "1e400": JSON has no infinity
    return {"vr": vr, "Value": numbers}


def _numbers(vr: str, value: bytes, little_endian: bool) -> dict | None:
    code = _NUMBERS[vr]
    size = struct.calcsize(f"<{code}")  # standard sizes: natively, "l" is 8 bytes
    if len(value) % size:
        return None
    numbers = struct.unpack(f"{'<' if little_endian else '>'}{len(value) // size}{code}", value)
    if code in "fd" and not all(math.isfinite(number) for number in numbers):
        return None  # NaN and infinity have no JSON form
    return {"vr": vr, "Value": list(numbers)}


def _person_names(text: str) -> dict | None:
    if "=" in text or "\x00" in text:
        return None
    parts = text.split("\\")
    if parts == [""]:
        return {"vr": "PN"}
    if "" in parts:
        return None
    return {"vr": "PN", "Value": [{"Alphabetic": part} for part in parts]}


def storable(node: Any) -> bool:
    """Whether a DICOM JSON element (or part of one) fits a JSON column: finite numbers, no NULs."""
    if isinstance(node, str):
        return "\x00" not in node
    if isinstance(node, float):
        return math.isfinite(node)
    if isinstance(node, dict):
        return all(storable(value) for value in node.values())
    if isinstance(node, list):
        return all(storable(value) for value in node)
    return True


# ---------------------------------------------------------------------------------------------
# A whole header


def header_json(ds: Dataset) -> tuple[dict[str, dict], list[int]]:
    """The top-level elements of ``ds`` as DICOM JSON (keyed by tag, in the data set's order), and
    the tags of those left out because their values are invalid (or, like NaN or a NUL inside a
    text, valid for pydicom but not storable as JSON). A RecursionError (nesting too deep for
    pydicom) is raised, whichever element meets it.

    Bulk data (large binary values) keeps only its VR, so DICOMweb can answer with a BulkDataURI
    for it. Plain elements are converted straight from their bytes, the others by pydicom, one by
    one rather than with pydicom's ``suppress_invalid_tags``, which switches pydicom's process-wide
    validation to "raise" while it runs and so would make uploads read in other threads at that
    moment fail.
    """
    document: dict[str, dict] = {}
    left_out: list[int] = []
    marked: list[Any] = []

    def mark_bulk(element) -> str:
        marked.append(element.tag)
        return BULK_MARK

    try:
        encoding = text_encoding(ds.get("SpecificCharacterSet"))
    except Exception:
        encoding = None
    # The elements as stored (raw where pydicom has not converted them yet): no lookup per tag.
    for tag, raw in list(ds.items()):
        key = f"{int(tag):08X}"
        if isinstance(raw, RawDataElement) and raw.value is None and raw.length > BULK_DATA_THRESHOLD:
            vr = raw.VR or dictionary_vr(int(tag)) or "UN"
            if vr in BULK_VRS:
                document[key] = {"vr": vr}
                continue
        marked.clear()
        try:
            converted = dataset_element_json(ds, tag, raw, encoding, mark_bulk)
            document[key] = strip_bulk_marks(converted) if marked else converted
        except RecursionError:
            raise
        except Exception:
            left_out.append(int(tag))
    return document, left_out


def dataset_element_json(ds: Dataset, tag: BaseTag, raw, encoding: str | None, mark_bulk) -> dict:
    """One element of ``ds`` as DICOM JSON: plain elements straight from their bytes, the items of
    a sequence element by element the same way (with their own character set when they name one),
    anything else by pydicom. An element pydicom cannot convert raises, whatever its depth, so the
    caller leaves out the whole top-level element, as pydicom's own conversion would fail it. So
    does a value pydicom accepts but a JSON column cannot hold (the direct way never gives one).
    ``raw``: the element as ``ds`` holds it (``Dataset.items()``), converted or not."""
    if encoding is not None:
        if isinstance(raw, RawDataElement):
            direct = element_json(raw, encoding)  # None for a deferred value, read below
            if direct is not None:
                return direct
        # A sequence, raw or already read (by the checks before this), is converted item by item.
        private = (int(tag) >> 16) % 2
        if raw.VR == "SQ" or (not private and not raw.VR and dictionary_vr(int(tag)) == "SQ"):
            return {"vr": "SQ", "Value": [_item_json(item, encoding, mark_bulk) for item in ds[tag].value]}
    converted = ds[tag].to_json_dict(mark_bulk, BULK_DATA_THRESHOLD)
    if not storable(converted):
        raise ValueError("a value pydicom accepts but a JSON column cannot hold (NaN, infinity, a NUL)")
    return converted


def _item_json(item: Dataset, encoding: str | None, mark_bulk) -> dict:
    if 0x00080005 in item:
        # An item naming its own character set: its text is decoded with it, as pydicom does (an
        # empty value naming the default repertoire, not the enclosing data set's).
        try:
            encoding = text_encoding(item[0x00080005].value)
        except Exception:
            encoding = None
    return {
        f"{int(tag):08X}": dataset_element_json(item, tag, raw, encoding, mark_bulk) for tag, raw in list(item.items())
    }


def strip_bulk_marks(node: Any) -> Any:
    """``node`` with the values pydicom handed to ``mark_bulk`` reduced to their VR."""
    if isinstance(node, dict):
        if node.get("BulkDataURI") == BULK_MARK:
            return {"vr": node.get("vr", "UN")}
        return {key: strip_bulk_marks(value) for key, value in node.items()}
    if isinstance(node, list):
        return [strip_bulk_marks(value) for value in node]
    return node

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

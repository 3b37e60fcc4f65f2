"""DICOM JSON (PS3.18 Annex F) of plain header elements straight from their bytes.

Ingest stores every header as DICOM JSON. pydicom's way there (convert the raw element to a
``DataElement``, validate it, then ``to_json_dict``) is most of the cost of ingesting a file, and
most elements are plain: a UID, a code string, a number or a short text in the default or a
single-byte/UTF-8 character set. ``element_json`` converts those itself and answers None for
anything pydicom must decide (sequences, binary and ambiguous VRs, private and unknown tags, other
character sets, values that are empty among others or not valid numbers), so the caller falls back
to pydicom. ``tests/studies/test_dicomjson.py`` checks that the result is pydicom's, element for
element, on every file of the reference corpus.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from pydicom import config
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement

# SpecificCharacterSet values whose text decodes with one Python codec, as pydicom decodes it.
_CHARSETS = {"": default_encoding, "ISO_IR 6": default_encoding, "ISO_IR 100": "latin_1", "ISO_IR 192": "UTF8"}
_ASCII_VRS = {"CS", "DA", "DT", "TM", "UI"}
_SPLIT_TEXT_VRS = {"SH", "LO", "UC"}
_SINGLE_TEXT_VRS = {"LT", "ST", "UT"}
_NUMBERS = {"US": "H", "UL": "L", "SS": "h", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_CONVERTED_VRS = {*_ASCII_VRS, *_SPLIT_TEXT_VRS, *_SINGLE_TEXT_VRS, *_NUMBERS, "IS", "DS", "PN"}
_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")


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
    if value is None or (tag >> 16) % 2 or config.datetime_conversion:
        return None
    vr = raw.VR
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return None
    if not value:
        return {"vr": vr} if vr in _CONVERTED_VRS else None
    try:
        if vr in _NUMBERS:
            return _numbers(vr, value, raw.is_little_endian)
        if vr in _ASCII_VRS:
            return _strings(vr, value.decode(default_encoding).rstrip(" \x00").split("\\"))
        if vr in _SPLIT_TEXT_VRS:
            return _strings(vr, [part.rstrip("\x00 ") for part in value.decode(encoding).split("\\")])
        if vr in _SINGLE_TEXT_VRS:
            text = value.decode(encoding).rstrip("\x00 ")
            return {"vr": vr, "Value": [text]} if text else {"vr": vr}
        if vr in ("IS", "DS"):
            return _decimal_strings(vr, value.decode(default_encoding))
        if vr == "PN":
            return _person_names(value.rstrip(b"\x00 ").decode(encoding))
    except (UnicodeDecodeError, struct.error):
        return None
    return None


def _strings(vr: str, parts: list[str]) -> dict | None:
    if len(parts) == 1:
        return {"vr": vr, "Value": parts} if parts[0] else {"vr": vr}
    if "" in parts:
        return None
    return {"vr": vr, "Value": parts}


def _decimal_strings(vr: str, text: str) -> dict | None:
    parts = [part.strip(" \x00") for part in text.strip(" \x00").split("\\")]
    if parts == [""]:
        return {"vr": vr}
    pattern, number = (_INTEGER, int) if vr == "IS" else (_DECIMAL, float)
    if not all(pattern.match(part) for part in parts):
        return None
    return {"vr": vr, "Value": [number(part) for part in parts]}


def _numbers(vr: str, value: bytes, little_endian: bool) -> dict | None:
    code = _NUMBERS[vr]
    size = struct.calcsize(code)
    if len(value) % size:
        return None
    numbers = struct.unpack(f"{'<' if little_endian else '>'}{len(value) // size}{code}", value)
    return {"vr": vr, "Value": list(numbers)}


def _person_names(text: str) -> dict | None:
    if "=" in text:
        return None
    parts = text.split("\\")
    if parts == [""]:
        return {"vr": "PN"}
    if "" in parts:
        return None
    return {"vr": "PN", "Value": [{"Alphabetic": part} for part in parts]}

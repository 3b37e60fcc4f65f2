"""studies.dicomjson: the DICOM JSON it writes for plain elements is pydicom's, on the whole corpus."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_charset_files
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from bench import corpus
from studies.dicomjson import dictionary_vr, element_json, text_encoding


def _read(path):
    try:
        return dcmread(path, stop_before_pixels=True, defer_size=1024)
    except Exception:  # noqa: BLE001 (files pydicom cannot read are not ingested either)
        return None


def _corpus_datasets():
    """Every readable file of the corpus and pydicom's character set files, read twice: one copy for
    the direct conversion, one for pydicom's (conversion changes a data set)."""
    for path in [*corpus.source_files(), *map(Path, get_charset_files("*.dcm"))]:
        fast_ds, slow_ds = _read(path), _read(path)
        if fast_ds is not None:
            yield path, fast_ds, slow_ds


def _pydicom_json(ds, tag):
    try:
        return ds[tag].to_json_dict(None, 1024)
    except Exception:  # noqa: BLE001 (an invalid value: ingest leaves it out of the metadata)
        return "invalid"


def test_every_converted_element_of_the_corpus_matches_pydicom():
    converted = compared_files = 0
    mismatches = []
    for path, fast_ds, slow_ds in _corpus_datasets():
        encoding = text_encoding(fast_ds.get("SpecificCharacterSet"))
        if encoding is None:
            continue
        compared_files += 1
        for tag in list(fast_ds.keys()):
            raw = fast_ds.get_item(tag, keep_deferred=True)
            if not isinstance(raw, RawDataElement):
                continue
            fast = element_json(raw, encoding)
            if fast is None:
                continue
            converted += 1
            slow = _pydicom_json(slow_ds, tag)
            if fast != slow:
                mismatches.append((path.name, str(Tag(tag)), fast, slow))

    assert mismatches == []
    assert compared_files > 150
    assert converted > 9_000  # most of the corpus's elements take the direct way


def _pydicom_with_bulk(ds, tag):
    from studies.dicomjson import BULK_DATA_THRESHOLD
    from studies.dicomjson import strip_bulk_marks as _strip_bulk_marks

    try:
        return _strip_bulk_marks(ds[tag].to_json_dict(lambda element: "teleconsult:bulk", BULK_DATA_THRESHOLD))
    except Exception:  # noqa: BLE001 (an invalid value anywhere inside: the whole element is left out)
        return "invalid"


def _ours(ds, tag, encoding):
    from studies.dicomjson import dataset_element_json as _element_json
    from studies.dicomjson import strip_bulk_marks as _strip_bulk_marks

    try:
        raw = ds.get_item(tag, keep_deferred=True)
        return _strip_bulk_marks(_element_json(ds, tag, raw, encoding, lambda element: "teleconsult:bulk"))
    except Exception:  # noqa: BLE001
        return "invalid"


def test_every_sequence_of_the_corpus_converts_as_pydicom_converts_it():
    """Sequences are converted item by item, element by element, the same way as the top level."""
    sequences = items = 0
    mismatches = []
    for path, fast_ds, slow_ds in _corpus_datasets():
        encoding = text_encoding(fast_ds.get("SpecificCharacterSet"))
        for tag in list(fast_ds.keys()):
            raw_element = fast_ds.get_item(tag, keep_deferred=True)
            if not isinstance(raw_element, RawDataElement) or (raw_element.VR or dictionary_vr(tag)) != "SQ":
                continue
            fast, slow = _ours(fast_ds, tag, encoding), _pydicom_with_bulk(slow_ds, tag)
            sequences += 1
            items += len(slow["Value"]) if isinstance(slow, dict) else 0
            if fast != slow:
                mismatches.append((path.name, str(Tag(tag))))

    assert mismatches == []
    assert sequences > 100
    assert items > 400


def test_an_item_with_its_own_character_set_is_decoded_with_it():
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    item = Dataset()
    item.SpecificCharacterSet = "ISO_IR 100"
    item.add_new(0x00081030, "LO", "Caf\xe9".encode("latin_1"))
    plain = Dataset()
    plain.add_new(0x00081030, "LO", "Caf\xc3\xa9")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ReferencedStudySequence = Sequence([item, plain])
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=True)
    read = dcmread(io.BytesIO(buffer.getvalue()), force=True)

    converted = _ours(read, 0x00081110, "UTF8")

    assert converted["Value"][0]["00081030"] == {"vr": "LO", "Value": ["Caf\xe9"]}
    assert converted == _pydicom_with_bulk(dcmread(io.BytesIO(buffer.getvalue()), force=True), 0x00081110)


def raw(tag: int, vr: str | None, value: bytes, *, little_endian: bool = True) -> RawDataElement:
    return RawDataElement(Tag(tag), vr, len(value), value, 0, vr is None, little_endian)


@pytest.mark.parametrize(
    ("element", "expected"),
    [
        (raw(0x00080060, "CS", b"CT"), {"vr": "CS", "Value": ["CT"]}),
        (raw(0x00080008, "CS", b"ORIGINAL\\PRIMARY\\AXIAL "), {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY", "AXIAL"]}),
        (raw(0x00080018, "UI", b"1.2.3\x00"), {"vr": "UI", "Value": ["1.2.3"]}),
        (raw(0x00080018, None, b"1.2.3\x00"), {"vr": "UI", "Value": ["1.2.3"]}),  # implicit VR
        (raw(0x00100010, "PN", b"Doe^Jane "), {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}),
        (raw(0x00200013, "IS", b" 12 "), {"vr": "IS", "Value": [12]}),
        (raw(0x00280030, "DS", b"0.5\\0.25"), {"vr": "DS", "Value": [0.5, 0.25]}),
        (raw(0x00280010, "US", struct.pack("<H", 512)), {"vr": "US", "Value": [512]}),
        (raw(0x00280010, "US", struct.pack(">H", 512), little_endian=False), {"vr": "US", "Value": [512]}),
        (raw(0x00280010, "UL", struct.pack("<2L", 7, 2**32 - 1)), {"vr": "UL", "Value": [7, 2**32 - 1]}),
        (raw(0x00189219, "SL", struct.pack("<l", -5)), {"vr": "SL", "Value": [-5]}),
        (raw(0x00191001, "SL", struct.pack("<l", -5)), {"vr": "SL", "Value": [-5]}),  # private, explicit VR
        (raw(0x00101010, "AS", b"045Y"), {"vr": "AS", "Value": ["045Y"]}),
        (raw(0x00181050, "DS", b""), {"vr": "DS"}),
        (raw(0x00081030, "LO", b""), {"vr": "LO"}),
        (raw(0x00280010, "US", b""), {"vr": "US"}),
        (raw(0x00100010, "PN", b""), {"vr": "PN"}),
    ],
)
def test_plain_elements_are_converted(element, expected):
    assert element_json(element, "iso8859") == expected


@pytest.mark.parametrize(
    "element",
    [
        raw(0x00091001, None, b"private"),  # private, implicit VR: pydicom knows the private dictionaries
        raw(0x00091001, "UN", b"private"),
        raw(0x00200013, "IS", b"twelve"),  # invalid: pydicom decides (and ingest leaves it out)
        raw(0x00280030, "DS", b"0,5"),
        raw(0x00100010, "PN", b"Doe^Jane=\xe5\xb1\xb1\xe7\x94\xb0"),  # several component groups
        raw(0x00080008, "CS", b"ORIGINAL\\\\AXIAL"),  # an empty value among others
        raw(0x00280106, "US or SS", b"\x00\x00"),  # ambiguous VR
        raw(0x00280010, "US", b"\x00\x02\x00"),  # length not a multiple of the value size
        raw(0x7FE00010, "OW", b"\x00\x00"),
        raw(0x00081111, "SQ", b""),
        raw(0x00211234, None, b"x"),  # unknown tag, implicit VR
        raw(0x00080018, "UI", b" 1.2.3"),  # pydicom strips the blanks around a UID
        raw(0x00100010, "PN", b"Caf\x1b(B\xe9"),  # escape sequences: pydicom removes them
        raw(0x00081030, "LO", b"Caf\x1b-A\xe9"),
        raw(0x00200013, "IS", b"\x0012"),  # invalid for pydicom
        raw(0x00081030, "LO", b"A\x00B"),  # a NUL inside a value
        raw(0x00181050, "DS", b"1e400"),  # not finite
        raw(0x00189087, "FD", struct.pack("<d", float("nan"))),
        raw(0x00189087, "FD", struct.pack("<d", float("inf"))),
    ],
)
def test_elements_pydicom_must_decide_are_left_to_it(element):
    assert element_json(element, "iso8859") is None


def test_text_in_another_character_set_is_left_to_pydicom():
    assert text_encoding(None) == "iso8859"
    assert text_encoding("ISO_IR 192") == "UTF8"
    assert text_encoding(["ISO_IR 100"]) == "latin_1"
    assert text_encoding("ISO 2022 IR 87") is None
    assert text_encoding(["", "ISO 2022 IR 87"]) is None


def test_undecodable_text_is_left_to_pydicom():
    assert element_json(raw(0x00100010, "PN", b"M\xfcller"), "UTF8") is None


@pytest.mark.parametrize("name", ["chrFren.dcm", "chrGerm.dcm", "chrX1.dcm", "chrH31.dcm", "chrRuss.dcm"])
def test_ingested_names_in_other_character_sets_are_pydicoms(physician, settings, tmp_path, name):
    from pydicom.data import get_charset_files

    from studies.ingest import ingest_file
    from studies.models import Instance

    settings.MEDIA_ROOT = tmp_path / "media"
    (path,) = get_charset_files(name)
    data = open(path, "rb").read()  # noqa: SIM115 (read whole, test data)
    result = ingest_file(io.BytesIO(data), filename=name, user=physician)

    assert result.status == "stored", result.reason
    ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    metadata = Instance.objects.get(pk=result.instance_id).metadata
    assert metadata["00100010"] == ds["PatientName"].to_json_dict(None, 1024)
    assert metadata["00100010"]["Value"][0]["Alphabetic"] == str(ds.PatientName).split("=")[0]


def test_storable_refuses_what_a_json_column_cannot_hold():
    from studies.dicomjson import storable

    assert storable({"vr": "LO", "Value": ["plain"]})
    assert storable({"vr": "SQ", "Value": [{"00100010": {"vr": "PN", "Value": [{"Alphabetic": "A^B"}]}}]})
    assert not storable({"vr": "FD", "Value": [float("nan")]})
    assert not storable({"vr": "DS", "Value": [float("inf")]})
    assert not storable({"vr": "SQ", "Value": [{"00081030": {"vr": "LO", "Value": ["A\x00B"]}}]})


TEXT_KEYWORDS = [
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "PhotometricInterpretation",
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
    "Modality",
    "SeriesDescription",
    "BodyPartExamined",
]


def test_header_text_read_from_bytes_is_pydicoms_on_the_whole_corpus():
    """ingest._text reads plain text elements straight from their bytes; pydicom's ``str`` agrees."""
    from studies.ingest.header import _plain_text

    compared = 0
    mismatches = []
    for path, fast_ds, slow_ds in _corpus_datasets():
        for keyword in TEXT_KEYWORDS:
            fast = _plain_text(fast_ds, keyword)
            if fast is None:
                continue
            compared += 1
            try:
                value = slow_ds.get(keyword)
            except Exception:  # noqa: BLE001 (pydicom refuses the value: ingest used to read "")
                mismatches.append((path.name, keyword, fast, "unreadable"))
                continue
            slow = "\\".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
            if fast.replace("\x00", "").strip() != slow.replace("\x00", "").strip():
                mismatches.append((path.name, keyword, fast, slow))

    assert mismatches == []
    assert compared > 3_000


def test_an_item_with_an_empty_character_set_is_decoded_with_the_default_repertoire():
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    item = Dataset()
    item.add_new(0x00080005, "CS", "")
    item.add_new(0x00081030, "LO", "Caf\xc3\xa9".encode("latin_1"))  # UTF-8 bytes, default repertoire
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ReferencedStudySequence = Sequence([item])
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=True)

    converted = _ours(dcmread(io.BytesIO(buffer.getvalue()), force=True), 0x00081110, "UTF8")

    assert converted == _pydicom_with_bulk(dcmread(io.BytesIO(buffer.getvalue()), force=True), 0x00081110)


@pytest.mark.parametrize(
    ("keyword", "value"),
    [("Modality", b"CT \\PT "), ("StudyDescription", b"A \\B"), ("PatientSex", b"M\x00\\F")],
)
def test_several_values_with_blanks_around_them_are_read_by_pydicom(keyword, value):
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    from studies.ingest.header import _plain_text, _text

    tag = tag_for_keyword(keyword)
    ds = Dataset()
    ds[tag] = RawDataElement(Tag(tag), dictionary_VR(tag), len(value), value, 0, False, True)
    pydicom_ds = Dataset()
    pydicom_ds[tag] = RawDataElement(Tag(tag), dictionary_VR(tag), len(value), value, 0, False, True)
    expected = "\\".join(str(v) for v in pydicom_ds.get(keyword)).replace("\x00", "").strip()

    assert _plain_text(ds, keyword) is None
    assert _text(ds, keyword, 64) == expected

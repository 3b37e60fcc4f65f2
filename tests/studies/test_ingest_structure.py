"""studies.ingest.structure: the byte-level walk of a PS3.10 file, before pydicom reads anything."""

from __future__ import annotations

import io
import struct

import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian

from studies.ingest import IngestRefusedError, structure
from tests.studies import dicom_factory as f


def walked(data: bytes) -> tuple[str, structure.Layout]:
    transfer_syntax, _sop_class, layout = structure.walk_file(io.BytesIO(data), len(data))
    return transfer_syntax, layout


def walked_file(name: str) -> tuple[str, structure.Layout]:
    with open(get_testdata_file(name), "rb") as fp:
        return walked(fp.read())


def refusal(data: bytes) -> IngestRefusedError:
    with pytest.raises(IngestRefusedError) as caught:
        walked(data)
    return caught.value


def with_data_set(data_set: bytes) -> bytes:
    """A file with the file meta information of a small CT and ``data_set`` as its data set."""
    data = f.make_ct()
    _transfer_syntax, _sop_class, start = structure._read_file_meta(io.BytesIO(data), len(data))
    return data[:start] + data_set


def element(group: int, number: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", group, number, vr, len(value)) + value


def test_explicit_vr_file_has_its_native_pixel_data_found():
    transfer_syntax, layout = walked(f.make_ct(rows=16, columns=16))

    assert transfer_syntax == "1.2.840.10008.1.2.1"
    assert (layout.pixel_tag, layout.pixel_vr, layout.pixel_length) == (0x7FE00010, "OW", 16 * 16 * 2)
    assert layout.fragments == 0
    assert layout.notes == []


def test_implicit_vr_file_is_walked_with_its_pixel_data_read_as_ow():
    transfer_syntax, layout = walked_file("MR_small_implicit.dcm")

    assert transfer_syntax == ImplicitVRLittleEndian
    assert (layout.pixel_tag, layout.pixel_vr, layout.pixel_length) == (0x7FE00010, "OW", 64 * 64 * 2)
    assert layout.notes == []


def test_big_endian_file_is_walked():
    _transfer_syntax, layout = walked_file("MR_small_bigendian.dcm")

    assert (layout.pixel_tag, layout.pixel_length) == (0x7FE00010, 64 * 64 * 2)


def test_deflated_data_set_is_inflated_and_walked():
    transfer_syntax, layout = walked_file("image_dfl.dcm")

    assert transfer_syntax == DeflatedExplicitVRLittleEndian
    assert layout.pixel_tag == 0x7FE00010
    assert layout.pixel_length


def test_deflated_data_set_expanding_too_far_is_too_large(monkeypatch):
    monkeypatch.setattr(structure, "MAX_INFLATED_SIZE", 1024)
    with open(get_testdata_file("image_dfl.dcm"), "rb") as fp:
        exc = refusal(fp.read())

    assert exc.code == "too_large"
    assert "deflated" in exc.reason


def test_encapsulated_pixel_data_counts_its_fragments_without_the_offset_table():
    _transfer_syntax, layout = walked_file("SC_rgb_rle_2frame.dcm")

    assert (layout.pixel_tag, layout.pixel_vr, layout.pixel_length) == (0x7FE00010, "OB", None)
    assert layout.fragments == 2


def test_nesting_depth_is_measured_and_refused_past_the_limit():
    _transfer_syntax, layout = walked(f.make_nested(12))
    exc = refusal(f.make_nested(structure.MAX_SEQUENCE_DEPTH + 1))

    assert layout.max_depth == 12
    assert layout.pixel_tag is None
    assert exc.code == "too_deep"


def test_file_cut_short_in_its_pixel_data_is_truncated_naming_the_bytes_missing():
    exc = refusal(f.make_truncated())

    assert exc.code == "truncated"
    assert "pixel data declares 8192 bytes" in exc.reason


def test_file_cut_short_in_an_element_header_is_truncated():
    data = with_data_set(element(0x0008, 0x0060, b"CS", b"CT") + b"\x10\x00")

    assert refusal(data).code == "truncated"


def test_file_cut_short_inside_its_file_meta_is_truncated():
    data = f.make_ct()

    assert refusal(data[:140]).code == "truncated"


def test_file_meta_without_a_transfer_syntax_is_bad_file_meta():
    data = b"\0" * 128 + b"DICM" + element(0x0002, 0x0002, b"UI", b"1.2.3\x00") + element(0x0008, 0x0060, b"CS", b"CT")

    assert refusal(data).code == "bad_file_meta"


def test_sequence_without_its_end_marker_is_truncated():
    opened = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, 0)

    assert refusal(with_data_set(opened)).code == "truncated"


def test_item_outside_any_sequence_is_corrupt():
    exc = refusal(with_data_set(struct.pack("<HHI", 0xFFFE, 0xE000, 0)))

    assert exc.code == "corrupt"
    assert "outside any sequence" in exc.reason


def test_element_without_a_valid_vr_is_corrupt_naming_its_tag():
    # After a valid first element: a first element without one makes the data set implicit VR.
    exc = refusal(with_data_set(element(0x0008, 0x0020, b"DA", b"20240102") + element(0x0008, 0x0060, b"zz", b"CT")))

    assert exc.code == "corrupt"
    assert "(0008,0060)" in exc.reason


def test_data_set_in_implicit_vr_under_an_explicit_transfer_syntax_is_noted_not_refused():
    implicit = struct.pack("<HHI", 0x0008, 0x0060, 2) + b"CT"
    _transfer_syntax, layout = walked(with_data_set(implicit))

    assert layout.notes == [
        "the data set is encoded in implicit VR, not as its transfer syntax 1.2.840.10008.1.2.1 says"
    ]

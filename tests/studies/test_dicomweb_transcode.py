"""WADO-RS in the transfer syntax the client asks for (PS3.18 8.7.3.5): instances transcoded to
Explicit VR Little Endian by default and to the cheap lossless encoders on request, frames encoded
on request, YBR_FULL_422 frames as stored, lossy data never relabelled as lossless, byte ranges on
single-part answers, and dcmtk reading what it gets."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tracemalloc

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.pixels import get_encoder
from pydicom.uid import JPEG2000Lossless, generate_uid

from tests.conftest import require_service
from tests.studies.test_dicomweb_helpers import (
    make_dataset,
    store,
    store_dataset,
    to_bytes,
    token_client,
    with_fresh_uid,
)

pytestmark = pytest.mark.django_db

EXPLICIT = "1.2.840.10008.1.2.1"
RLE = "1.2.840.10008.1.2.5"
JPEG_LS = "1.2.840.10008.1.2.4.80"
DICOM_MULTIPART = 'multipart/related; type="application/dicom"'


def stored(user, name: str, **attrs):
    """A corpus file stored under a fresh UID; returns (the original dataset, its instance URL)."""
    data = with_fresh_uid(get_testdata_file(name))
    ds = dcmread(io.BytesIO(data))
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        if keyword not in ds:  # some corpus files lack them
            attrs.setdefault(keyword, generate_uid())
    if attrs:
        for keyword, value in attrs.items():
            setattr(ds, keyword, value)
        data = to_bytes(ds)
    result = store(user, data)
    url = (
        f"/dicomweb/studies/{result.study_instance_uid}/series/{result.series_instance_uid}"
        f"/instances/{result.sop_instance_uid}"
    )
    return dcmread(io.BytesIO(data)), url


def parts(answer) -> list[tuple[str, bytes]]:
    """The (Content-Type, body) of each part of a multipart answer."""
    body = b"".join(answer.streaming_content) if answer.streaming else answer.content
    boundary = re.search(r"boundary=([^;]+)", answer["Content-Type"]).group(1).strip('"')
    found = []
    for chunk in body.split(f"--{boundary}".encode())[1:-1]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        content_type = re.search(rb"Content-Type: ([^\r\n]+)", head).group(1).decode()
        found.append((content_type, data[:-2]))
    return found


def instances_of(answer) -> list[tuple[str, object]]:
    return [(content_type, dcmread(io.BytesIO(data))) for content_type, data in parts(answer)]


# --- instances -----------------------------------------------------------------------------------


def test_instance_without_transfer_syntax_comes_as_explicit_vr_little_endian_and_star_as_stored(physician):
    original, url = stored(physician, "MR_small_jp2klossless.dcm")
    answer = token_client(physician).get(url, headers={"Accept": DICOM_MULTIPART})
    assert answer.status_code == 200
    [(content_type, ds)] = instances_of(answer)
    assert content_type == f"application/dicom; transfer-syntax={EXPLICIT}"
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT
    assert np.array_equal(ds.pixel_array, original.pixel_array)
    # transfer-syntax=* keeps the stored file
    answer = token_client(physician).get(url, headers={"Accept": f"{DICOM_MULTIPART}; transfer-syntax=*"})
    [(content_type, ds)] = instances_of(answer)
    assert content_type.endswith("transfer-syntax=1.2.840.10008.1.2.4.90")
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"


def test_explicit_vr_little_endian_asked_by_name_is_given(physician):
    original, url = stored(physician, "US1_J2KR.dcm")  # J2K lossless, YBR_RCT colour
    answer = token_client(physician).get(url, headers={"Accept": f"{DICOM_MULTIPART}; transfer-syntax={EXPLICIT}"})
    assert answer.status_code == 200
    [(_type, ds)] = instances_of(answer)
    assert ds.PhotometricInterpretation == "RGB"  # the decoder gives RGB: the header says so
    assert np.array_equal(ds.pixel_array, original.pixel_array)


@pytest.mark.parametrize("target", [RLE, JPEG_LS])
def test_instances_are_encoded_in_the_cheap_lossless_syntaxes(physician, target):
    original = store_dataset(physician, frames=3, rows=16, columns=12)
    url = (
        f"/dicomweb/studies/{original.StudyInstanceUID}/series/{original.SeriesInstanceUID}"
        f"/instances/{original.SOPInstanceUID}"
    )
    answer = token_client(physician).get(url, headers={"Accept": f"{DICOM_MULTIPART}; transfer-syntax={target}"})
    [(content_type, ds)] = instances_of(answer)
    assert content_type.endswith(target)
    assert ds.file_meta.TransferSyntaxUID == target
    assert np.array_equal(ds.pixel_array, original.pixel_array)


def test_a_syntax_nothing_here_can_make_is_406_naming_what_can_be_given(physician):
    _original, url = stored(physician, "CT_small.dcm")
    answer = token_client(physician).get(
        url, headers={"Accept": f"{DICOM_MULTIPART}; transfer-syntax=1.2.840.10008.1.2.4.90"}
    )
    assert answer.status_code == 406
    assert EXPLICIT in answer.json()["detail"] and RLE in answer.json()["detail"]


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("SC_rgb_jpeg_dcmtk.dcm", "ISO_10918_1"),  # JPEG baseline, says it was lossy with method and ratio
        ("JPEGLSNearLossless_16.dcm", "ISO_14495_1"),  # near-lossless JPEG-LS saying nothing about it
        ("JPEG2000.dcm", "ISO_15444_1"),  # lossy J2K with a flag and ratio but no method
    ],
)
def test_decompressed_lossy_data_still_says_it_was_lossy(physician, name, method):
    original, url = stored(physician, name)
    for accept in (DICOM_MULTIPART, f"{DICOM_MULTIPART}; transfer-syntax={RLE}"):
        [(_type, ds)] = instances_of(token_client(physician).get(url, headers={"Accept": accept}))
        assert ds.LossyImageCompression == "01"
        assert ds.LossyImageCompressionMethod == original.get("LossyImageCompressionMethod", method)
        if "LossyImageCompressionRatio" in original:
            assert ds.LossyImageCompressionRatio == original.LossyImageCompressionRatio
        else:
            assert float(ds.LossyImageCompressionRatio) > 1


def corrupt_j2k(**attrs) -> bytes:
    """A JPEG 2000 lossless instance whose codestream is garbage after its first bytes."""
    ds = make_dataset(rows=16, columns=16, **attrs)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00\x01" * 40])
    ds["PixelData"].VR = "OB"
    return to_bytes(ds)


def test_a_study_retrieve_leaves_out_instances_it_cannot_transcode(physician):
    good = store_dataset(physician)
    corrupt = dcmread(io.BytesIO(corrupt_j2k(StudyInstanceUID=good.StudyInstanceUID, InstanceNumber=2)))
    store(physician, to_bytes(corrupt))
    mpeg = make_dataset(StudyInstanceUID=good.StudyInstanceUID, InstanceNumber=3)
    mpeg.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder here
    mpeg.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
    mpeg["PixelData"].VR = "OB"
    store(physician, to_bytes(mpeg))
    answer = token_client(physician).get(
        f"/dicomweb/studies/{good.StudyInstanceUID}", headers={"Accept": DICOM_MULTIPART}
    )
    assert answer.status_code == 200
    # The MPEG2 instance is refused before the answer starts: named in the Warning header. The
    # corrupt one fails while the answer streams: its part is left out, the answer stays whole.
    assert [ds.SOPInstanceUID for _type, ds in instances_of(answer)] == [good.SOPInstanceUID]
    assert answer["Warning"].startswith("299 ")
    assert mpeg.SOPInstanceUID in answer["Warning"] and "MPEG2" in answer["Warning"]


def test_an_instance_that_cannot_be_given_in_any_accepted_syntax_is_406(physician):
    data = corrupt_j2k()
    ds = dcmread(io.BytesIO(data))
    store(physician, data)
    url = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    answer = token_client(physician).get(url, headers={"Accept": DICOM_MULTIPART})
    assert answer.status_code == 406
    assert ds.SOPInstanceUID in answer.json()["detail"]
    assert (
        token_client(physician).get(url, headers={"Accept": f"{DICOM_MULTIPART}; transfer-syntax=*"}).status_code == 200
    )


def test_a_large_multi_frame_transcode_holds_about_one_frame_in_memory(tmp_path):
    from studies.dicomweb.transcode import transcode_instance

    frames, rows, columns = 32, 256, 256
    ramp = np.add.outer(np.arange(rows), np.arange(columns)).astype(np.uint16)
    pixels = np.stack([(ramp * 3 + number * 11) % 4096 for number in range(frames)]).astype(np.uint16)
    ds = make_dataset(frames=frames, rows=rows, columns=columns)
    encoder = get_encoder(JPEG2000Lossless)
    options = {"rows": rows, "columns": columns, "samples_per_pixel": 1, "bits_allocated": 16, "bits_stored": 12}
    options |= {"pixel_representation": 0, "photometric_interpretation": "MONOCHROME2", "number_of_frames": 1}
    ds.PixelData = encapsulate([encoder.encode(frame, **options) for frame in pixels])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    path = tmp_path / "large.dcm"
    path.write_bytes(to_bytes(ds))
    native_size = pixels.nbytes

    tracemalloc.start()
    try:
        with open(path, "rb") as handle:
            out = transcode_instance(handle, EXPLICIT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    with out:
        back = dcmread(out)
        assert np.array_equal(back.pixel_array, pixels)
    # The decoder's own buffers for one frame, whatever the number of frames: not the whole image.
    assert peak < native_size / 2, f"peak {peak} bytes for {native_size} bytes of frames"


# --- frames --------------------------------------------------------------------------------------


def frames_url(ds) -> str:
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames/1,2"
    )


@pytest.mark.parametrize(
    ("accept", "syntax"),
    [
        ('multipart/related; type="image/x-dicom-rle"', RLE),
        ('multipart/related; type="image/dicom-rle"', RLE),
        ('multipart/related; type="image/jls"', JPEG_LS),
        ('multipart/related; type="image/x-jls"', JPEG_LS),
        (f'multipart/related; type="application/octet-stream"; transfer-syntax={RLE}', RLE),
    ],
)
def test_native_frames_are_encoded_in_the_media_type_asked_for(physician, accept, syntax):
    from pydicom.pixels import get_decoder

    ds = store_dataset(physician, frames=2, rows=16, columns=12)
    answer = token_client(physician).get(frames_url(ds), headers={"Accept": accept})
    assert answer.status_code == 200, answer.content[:300]
    found = parts(answer)
    assert len(found) == 2
    part_type = re.search(r'type="?([^";]+)', accept).group(1)
    for number, (content_type, data) in enumerate(found):
        assert content_type == f"{part_type}; transfer-syntax={syntax}"
        meta = {"rows": 16, "columns": 12, "samples_per_pixel": 1, "bits_allocated": 16, "bits_stored": 12}
        meta |= {"pixel_representation": 0, "photometric_interpretation": "MONOCHROME2", "number_of_frames": 1}
        array, _ = get_decoder(syntax).as_array(encapsulate([data]), **meta)
        assert np.array_equal(array, ds.pixel_array[number])


def test_frames_the_server_cannot_give_are_406_listing_what_it_can(physician):
    ds = store_dataset(physician, frames=2)
    answer = token_client(physician).get(frames_url(ds), headers={"Accept": 'multipart/related; type="image/jp2"'})
    assert answer.status_code == 406
    detail = answer.json()["detail"]
    assert "octet-stream" in detail and "image/dicom-rle" in detail and "image/jls" in detail


def test_only_lossless_frames_are_encoded_under_a_lossless_syntax(physician):
    jls = {"Accept": 'multipart/related; type="image/jls"'}
    _lossless, lossless_url = stored(physician, "MR_small_jp2klossless.dcm")
    answer = token_client(physician).get(f"{lossless_url}/frames/1", headers=jls)
    assert answer.status_code == 200
    assert parts(answer)[0][0] == f"image/jls; transfer-syntax={JPEG_LS}"
    _lossy, lossy_url = stored(physician, "SC_rgb_jpeg_dcmtk.dcm")
    assert token_client(physician).get(f"{lossy_url}/frames/1", headers=jls).status_code == 406


def test_uncompressed_ybr_full_422_frames_come_as_stored(physician):
    original, url = stored(physician, "SC_ybr_full_422_uncompressed.dcm")
    size = original.Rows * original.Columns * 2  # Y Y Cb Cr for each pair of pixels
    for accept in (
        'multipart/related; type="application/octet-stream"',
        'multipart/related; type="application/octet-stream"; transfer-syntax=*',
    ):
        answer = token_client(physician).get(f"{url}/frames/1", headers={"Accept": accept})
        assert answer.status_code == 200, answer.content[:300]
        [(_type, data)] = parts(answer)
        assert data == original.PixelData[:size]


# --- byte ranges ---------------------------------------------------------------------------------


@pytest.fixture
def bulk_instance(physician):
    ds = make_dataset()
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 6)
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", bytes(range(256)) * 8)
    store(physician, to_bytes(ds))
    return ds, (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/bulkdata/60003000"
    )


def test_a_single_part_bulk_data_value_answers_a_byte_range(physician, bulk_instance):
    _ds, url = bulk_instance
    value = bytes(range(256)) * 8
    client = token_client(physician)
    whole = client.get(url, headers={"Accept": "application/octet-stream"})
    assert whole.status_code == 200
    assert whole["Accept-Ranges"] == "bytes"
    assert b"".join(whole.streaming_content) == value
    part = client.get(url, headers={"Accept": "application/octet-stream", "Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 100-199/{len(value)}"
    assert b"".join(part.streaming_content) == value[100:200]
    tail = client.get(url, headers={"Accept": "application/octet-stream", "Range": "bytes=-10"})
    assert b"".join(tail.streaming_content) == value[-10:]
    # A multipart answer ignores Range.
    multipart = client.get(
        url, headers={"Accept": 'multipart/related; type="application/octet-stream"', "Range": "bytes=0-9"}
    )
    assert multipart.status_code == 200
    assert parts(multipart)[0][1] == value


@pytest.mark.parametrize("bad", ["bytes=5000-", "bytes=20-10", "bytes=abc", "bytes=-0"])
def test_a_bad_byte_range_is_416(physician, bulk_instance, bad):
    _ds, url = bulk_instance
    answer = token_client(physician).get(url, headers={"Accept": "application/octet-stream", "Range": bad})
    assert answer.status_code == 416
    assert answer["Content-Range"] == "bytes */2048"
    assert "Range" in answer.json()["detail"]


def test_one_instance_as_application_dicom_answers_a_byte_range(physician):
    original, url = stored(physician, "MR_small_jp2klossless.dcm")
    client = token_client(physician)
    whole = client.get(url, headers={"Accept": "application/dicom"})
    assert whole.status_code == 200
    assert whole["Content-Type"] == f"application/dicom; transfer-syntax={EXPLICIT}"
    data = b"".join(whole.streaming_content)
    assert np.array_equal(dcmread(io.BytesIO(data)).pixel_array, original.pixel_array)
    rest = client.get(url, headers={"Accept": "application/dicom", "Range": "bytes=1000-"})
    assert rest.status_code == 206
    assert rest["Content-Range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    assert b"".join(rest.streaming_content) == data[1000:]


# --- dcmtk -----------------------------------------------------------------------------------------


def test_dcmtk_reads_a_jpeg_2000_instance_asked_as_explicit_vr_little_endian(physician, tmp_path):
    dcmdump = shutil.which("dcmdump")
    if dcmdump is None:
        require_service("dcmtk", "install dcmtk (apt-get install dcmtk) for dcmdump")
    original, url = stored(physician, "MR_small_jp2klossless.dcm")
    answer = token_client(physician).get(url, headers={"Accept": f"{DICOM_MULTIPART}; transfer-syntax={EXPLICIT}"})
    [(_type, data)] = parts(answer)
    path = tmp_path / "answer.dcm"
    path.write_bytes(data)
    result = subprocess.run([dcmdump, "+P", "0002,0010", "+P", "7fe0,0010", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "=LittleEndianExplicit" in result.stdout
    pixel_line = next(line for line in result.stdout.splitlines() if line.startswith("(7fe0,0010)"))
    assert f"# {original.Rows * original.Columns * 2}," in pixel_line  # native 16-bit, not encapsulated
    assert os.path.getsize(path) > original.Rows * original.Columns * 2
    with open(path, "rb") as handle:
        assert dcmread(handle).SOPInstanceUID == original.SOPInstanceUID

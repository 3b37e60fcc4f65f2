"""Limits on what WADO-RS decodes and reads for a client: frames over the renderer's pixel limit and
instances whose decoded pixel data would be too large are left out (a Warning, or a 406 alone)
instead of exhausting memory; 1-bit frames are packed one at a time; native pixel data that no
element can hold is refused; a decoder out of memory is not retried on the whole file; byte
ranges with positions of thousands of digits and a 416 on a transcoded copy are answered cleanly."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels import pack_bits
from pydicom.uid import JPEG2000Lossless, RLELossless, generate_uid

from studies.dicomweb import wado
from studies.dicomweb.errors import DicomwebError
from studies.dicomweb.transcode import TranscodeError, _write_native_frames, transcode_instance
from studies.dicomweb.views import retrieve
from studies.rendering import MAX_FRAME_PIXELS
from tests.studies.test_dicomweb_helpers import make_dataset, store, to_bytes, token_client, with_fresh_uid

pytestmark = pytest.mark.django_db

EXPLICIT = "1.2.840.10008.1.2.1"
DICOM_MULTIPART = 'multipart/related; type="application/dicom"'


def instance_url(ds) -> str:
    return f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def rle_dataset(**attrs):
    """A small RLE Lossless CT image (decoded to be sent as Explicit VR Little Endian)."""
    ds = make_dataset(rows=16, columns=16, **attrs)
    ds.compress(RLELossless, encoding_plugin="pylibjpeg")
    return ds


def oversized_frame_dataset(**attrs):
    """An RLE image whose header says 9000 x 9000 pixels (over MAX_FRAME_PIXELS), with a tiny frame."""
    ds = rle_dataset(**attrs)
    ds.Rows = ds.Columns = 9000
    return ds


def test_a_frame_over_the_pixel_limit_is_not_decoded_and_the_406_says_why(physician):
    ds = oversized_frame_dataset()
    store(physician, to_bytes(ds))
    client = token_client(physician)
    answer = client.get(instance_url(ds), headers={"Accept": DICOM_MULTIPART})
    assert answer.status_code == 406
    assert "9000 x 9000 pixels" in answer.json()["detail"]
    assert f"{MAX_FRAME_PIXELS:,} pixels" in answer.json()["detail"]
    frames = client.get(
        instance_url(ds) + "/frames/1", headers={"Accept": 'multipart/related; type="application/octet-stream"'}
    )
    assert frames.status_code == 422
    assert "too large to decode" in frames.json()["detail"]
    # As stored it is still there.
    stored = client.get(instance_url(ds), headers={"Accept": f"{DICOM_MULTIPART}; transfer-syntax=*"})
    assert stored.status_code == 200


def test_an_instance_over_the_decoded_bytes_limit_is_406_alone_and_sent_as_stored_on_request(physician, settings):
    ds = rle_dataset()
    store(physician, to_bytes(ds))
    client = token_client(physician)
    settings.TELECONSULT_MAX_DECODED_BYTES = 511  # 16 x 16 pixels of 2 bytes: 512 bytes decoded
    alone = client.get(instance_url(ds), headers={"Accept": DICOM_MULTIPART})
    assert alone.status_code == 406
    assert "decoded pixel data would be 512 bytes" in alone.json()["detail"]
    assert "over the limit of 511" in alone.json()["detail"]
    stored = client.get(instance_url(ds), headers={"Accept": f"{DICOM_MULTIPART}; transfer-syntax=*"})
    assert stored.status_code == 200
    settings.TELECONSULT_MAX_DECODED_BYTES = 512
    assert client.get(instance_url(ds), headers={"Accept": DICOM_MULTIPART}).status_code == 200


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"Rows": 9000, "Columns": 9000}, "over the limit of 67,108,864 pixels a frame"),
        ({"NumberOfFrames": 3}, "decoded pixel data would be 1,536 bytes"),
    ],
)
def test_the_transcoder_checks_the_stored_header_before_decoding(tmp_path, settings, changes, words):
    """The database's copy of the header decides first; the stored file's header, read by the
    transcoder, decides again (an instance indexed before these limits, or a header that differs)."""
    settings.TELECONSULT_MAX_DECODED_BYTES = 1000
    ds = rle_dataset()
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    path = tmp_path / "large.dcm"
    path.write_bytes(to_bytes(ds))
    with open(path, "rb") as handle, pytest.raises(TranscodeError, match=words):
        transcode_instance(handle, EXPLICIT)


def test_a_study_retrieve_skips_the_instance_over_the_limit_with_warning_299(physician, settings):
    study = generate_uid()
    small = make_dataset(StudyInstanceUID=study)  # stored native: no decoding needed
    large = rle_dataset(StudyInstanceUID=study, SeriesInstanceUID=small.SeriesInstanceUID, InstanceNumber=2)
    for ds in (small, large):
        store(physician, to_bytes(ds))
    settings.TELECONSULT_MAX_DECODED_BYTES = 100
    answer = token_client(physician).get(f"/dicomweb/studies/{study}", headers={"Accept": DICOM_MULTIPART})
    assert answer.status_code == 200
    assert answer["Warning"].startswith("299 teleconsult")
    assert large.SOPInstanceUID in answer["Warning"] and "over the limit of 100" in answer["Warning"]
    body = b"".join(answer.streaming_content)
    assert small.SOPInstanceUID.encode() in body and large.SOPInstanceUID.encode() not in body


def test_native_pixel_data_no_element_can_hold_is_refused_before_decoding(tmp_path, settings):
    settings.TELECONSULT_MAX_DECODED_BYTES = 1 << 40
    ds = rle_dataset()
    ds.Rows = ds.Columns = 4096
    ds.NumberOfFrames = 200  # 4096 x 4096 x 2 bytes x 200 frames: 6.7 GB native
    path = tmp_path / "huge.dcm"
    path.write_bytes(to_bytes(ds))
    with open(path, "rb") as handle, pytest.raises(TranscodeError, match="more than one DICOM element can hold"):
        transcode_instance(handle, EXPLICIT)


class OneBitFrames:
    """Stands in for a FrameReader of a 1-bit multi-frame image: makes each decoded frame (a byte a
    pixel, as pydicom gives them) when asked, so memory holds only the frames the writer keeps."""

    bits_allocated = 1

    def __init__(self, frames: int, rows: int, columns: int) -> None:
        self.number_of_frames, self.shape = frames, (rows, columns)

    def decoded_array(self, number: int) -> np.ndarray:
        return np.random.default_rng(number).integers(0, 2, size=self.shape, dtype=np.uint8)


def test_one_bit_frames_are_packed_one_frame_at_a_time():
    # 1023 x 1001 pixels a frame is not a multiple of 8: each frame shares a byte with the next.
    reader = OneBitFrames(frames=24, rows=1023, columns=1001)
    out = io.BytesIO()
    tracemalloc.start()
    try:
        _write_native_frames(reader, out)
        peak = tracemalloc.get_traced_memory()[1] - out.getbuffer().nbytes
    finally:
        tracemalloc.stop()
    every_frame = np.stack([reader.decoded_array(n) for n in range(1, 25)])
    expected = pack_bits(every_frame)  # padded to an even length, as the element is
    assert out.getvalue()[12:] == expected  # after the tag, VR and 32-bit length
    assert int.from_bytes(out.getvalue()[8:12], "little") == len(expected)
    # All frames decoded at once take a byte a pixel (24 MB here), and stacking them as much again.
    assert peak < every_frame.nbytes / 4, f"peak {peak} bytes for {every_frame.nbytes} bytes of decoded frames"


def test_a_decoder_out_of_memory_is_a_clear_error_not_a_whole_file_decode(monkeypatch):
    data = with_fresh_uid(get_testdata_file("MR_small_jp2klossless.dcm"))
    reader = wado.FrameReader(io.BytesIO(data), JPEG2000Lossless)
    whole_file_decodes = []

    class ExhaustedDecoder:
        def as_array(self, *args, **kwargs):
            raise MemoryError

    def whole_file_decode(*args, **kwargs):
        whole_file_decodes.append(args)
        raise MemoryError

    monkeypatch.setattr(wado, "get_decoder", lambda uid: ExhaustedDecoder())
    monkeypatch.setattr(wado, "pixel_array", whole_file_decode)
    with pytest.raises(DicomwebError, match="not enough memory") as refused:
        reader.decoded_array(1)
    assert refused.value.status == 422
    assert whole_file_decodes == []


# --- byte ranges -----------------------------------------------------------------------------------


@pytest.fixture
def bulk(physician):
    ds = make_dataset()
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 6)
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", bytes(range(256)) * 8)
    store(physician, to_bytes(ds))
    return instance_url(ds) + "/bulkdata/60003000"


@pytest.mark.parametrize("spec", ["bytes=0-" + "9" * 5000, "bytes=-" + "9" * 5000, "bytes=" + "0" * 5000 + "-"])
def test_a_range_with_a_position_of_thousands_of_digits_means_up_to_the_end(physician, bulk, spec):
    answer = token_client(physician).get(bulk, headers={"Accept": "application/octet-stream", "Range": spec})
    assert answer.status_code == 206
    assert answer["Content-Range"] == "bytes 0-2047/2048"
    assert b"".join(answer.streaming_content) == bytes(range(256)) * 8


def test_a_range_starting_thousands_of_digits_in_is_416_quoting_it_short(physician, bulk):
    spec = "bytes=" + "9" * 5000 + "-"
    answer = token_client(physician).get(bulk, headers={"Accept": "application/octet-stream", "Range": spec})
    assert answer.status_code == 416
    assert answer["Content-Range"] == "bytes */2048"
    assert "starts past the end" in answer.json()["detail"] and len(answer.json()["detail"]) < 300


def test_a_416_on_a_transcoded_instance_closes_its_copy(physician, monkeypatch):
    data = with_fresh_uid(get_testdata_file("MR_small_jp2klossless.dcm"))
    ds = dcmread(io.BytesIO(data))
    store(physician, data)
    prepared = []
    made = retrieve.Prepared.__init__

    def keep(self, *args, **kwargs):
        made(self, *args, **kwargs)
        prepared.append(self)

    monkeypatch.setattr(retrieve.Prepared, "__init__", keep)
    answer = token_client(physician).get(
        instance_url(ds), headers={"Accept": "application/dicom", "Range": "bytes=99999999-"}
    )
    assert answer.status_code == 416
    assert len(prepared) == 1 and prepared[0].copy is not None
    assert prepared[0].copy.closed

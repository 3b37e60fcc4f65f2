"""Rendering frames to 8-bit pictures: synthetic objects with known answers."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, RLELossless, generate_uid

from studies.rendering import (
    NotAnImage,
    RenderError,
    encode,
    fit_within,
    load_frame,
    middle_frame,
    read_header,
    render_frame,
    render_thumbnail,
)
from teleconsult.errors import PortalError


def image_dataset(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    transfer_syntax=ExplicitVRLittleEndian,
    **attributes,
) -> Dataset:
    """A minimal secondary-capture-like data set holding ``pixels`` (frames, rows, columns[, 3])."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OT"
    colour = pixels.shape[-1] == 3 and photometric not in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR")
    frames = pixels.shape[0] if pixels.ndim == (4 if colour else 3) else 1
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if colour else pixels.shape[-2:]
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    if transfer_syntax == ExplicitVRBigEndian:
        ds.PixelData = pixels.astype(pixels.dtype.newbyteorder(">")).tobytes()
    else:
        ds.PixelData = pixels.tobytes()
    return ds


def as_file(ds: Dataset) -> io.BytesIO:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return buffer


def ct(hu: np.ndarray, **attributes) -> Dataset:
    """A CT whose stored values are HU + 1024 (slope 1, intercept -1024)."""
    return image_dataset(
        (hu + 1024).astype(np.uint16),
        RescaleSlope=1,
        RescaleIntercept=-1024,
        Modality="CT",
        bits_stored=12,
        **attributes,
    )


def grey(image) -> np.ndarray:
    assert image.mode == "L"
    return np.asarray(image).astype(int)


# -- Grayscale ----------------------------------------------------------------------------------


def test_ct_with_a_given_window_gives_known_grey_levels():
    hu = np.array([[-1000, -160, 40, 240, 1000]], dtype=np.int16)

    values = grey(render_frame(ct(hu), window=(40, 400)))[0]

    assert values[0] == 0  # air, below the window
    assert values[1] == 0  # lower edge
    assert abs(values[2] - 128) <= 1  # centre
    assert values[3] == 255  # upper edge
    assert values[4] == 255  # bone, above


def test_window_from_the_file_is_used_when_none_is_given():
    hu = np.array([[-200, 0, 50, 100, 300]], dtype=np.int16)

    values = grey(render_frame(ct(hu, WindowCenter=50, WindowWidth=100)))[0]

    assert values[0] == 0
    assert values[1] == 0
    assert abs(values[2] - 128) <= 1
    assert values[3] == 255
    assert values[4] == 255


def test_first_of_several_windows_in_the_file_is_used():
    hu = np.array([[0, 50, 100]], dtype=np.int16)

    values = grey(render_frame(ct(hu, WindowCenter=[50, 500], WindowWidth=[100, 2000])))[0]

    assert values.tolist()[0] == 0 and values.tolist()[2] == 255


def test_without_a_window_a_robust_min_max_is_used():
    pixels = np.tile(np.arange(0, 1000, dtype=np.uint16), (100, 1))
    pixels[0, 0] = 65535  # one hot pixel does not flatten the picture

    values = grey(render_frame(image_dataset(pixels)))

    assert values[50, 0] == 0
    assert values[50, 999] == 255
    assert 100 < values[50, 500] < 155


def test_zero_window_width_in_the_file_falls_back_to_min_max():
    pixels = np.tile(np.arange(0, 256, dtype=np.uint16), (4, 1))

    values = grey(render_frame(image_dataset(pixels, WindowCenter=100, WindowWidth=0)))

    assert values[0, 0] == 0 and values[0, 255] == 255


def test_signed_pixels_with_rescale():
    pixels = np.array([[-2000, -1000, 0, 1000]], dtype=np.int16)

    values = grey(render_frame(image_dataset(pixels, RescaleSlope=1, RescaleIntercept=0), window=(0, 2000)))[0]

    assert values.tolist()[0] == 0 and values.tolist()[3] == 255
    assert abs(values[2] - 128) <= 1


def test_monochrome1_is_inverted():
    pixels = np.array([[0, 255]], dtype=np.uint8)

    normal = grey(render_frame(image_dataset(pixels, WindowCenter=128, WindowWidth=256)))
    inverted = grey(render_frame(image_dataset(pixels, photometric="MONOCHROME1", WindowCenter=128, WindowWidth=256)))

    assert normal[0].tolist() == [0, 255]
    assert inverted[0].tolist() == [255, 0]


def test_invert_option_inverts_the_output():
    pixels = np.array([[0, 255]], dtype=np.uint8)

    values = grey(render_frame(image_dataset(pixels), invert=True))

    assert values[0].tolist() == [255, 0]


def test_voi_lut_sequence_is_applied():
    pixels = np.array([[0, 1, 2, 3]], dtype=np.uint16)
    item = Dataset()
    item.LUTDescriptor = [4, 0, 16]
    item.LUTData = [4000, 0, 2000, 1000]  # a non-monotonic LUT shows it was really applied
    item["LUTData"].VR = "US"
    ds = image_dataset(pixels, VOILUTSequence=[item], WindowCenter=1, WindowWidth=1)

    values = grey(render_frame(ds))[0]

    assert values.tolist() == [255, 0, 128, 64]


def test_float_pixel_data_renders():
    ds = image_dataset(np.zeros((2, 2), dtype=np.uint8))
    del ds.PixelData
    del ds.PixelRepresentation, ds.BitsStored, ds.HighBit
    ds.BitsAllocated = 32
    ds.FloatPixelData = np.array([[-1.5, 0.0], [0.5, 1.5]], dtype=np.float32).tobytes()

    values = grey(render_frame(ds))

    assert values[0, 0] == 0 and values[1, 1] == 255


def test_one_bit_pixels_render_black_and_white():
    bits = np.zeros((8, 8), dtype=np.uint8)
    bits[:, 4:] = 1
    ds = image_dataset(np.zeros((8, 8), dtype=np.uint8))
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelData = pydicom.pixels.pack_bits(bits)

    values = grey(render_frame(ds))

    assert values[0, 0] == 0 and values[0, 7] == 255


def test_big_endian_renders_like_little_endian():
    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8) * 100

    little = grey(render_frame(as_file(image_dataset(pixels))))
    big = grey(render_frame(as_file(image_dataset(pixels, transfer_syntax=ExplicitVRBigEndian))))

    assert (little == big).all()


def test_rle_compressed_frame_renders():
    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8) * 100
    ds = image_dataset(pixels)
    ds.compress(RLELossless, pixels)

    values = grey(render_frame(as_file(ds)))

    assert values[0, 0] == 0 and values[7, 7] == 255


# -- Colour -------------------------------------------------------------------------------------


def test_palette_colour_is_mapped_through_the_luts():
    pixels = np.array([[0, 1, 2]], dtype=np.uint8)
    ds = image_dataset(pixels, photometric="PALETTE COLOR")
    for colour, values in (("Red", [255, 0, 0]), ("Green", [0, 255, 0]), ("Blue", [0, 0, 255])):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [3, 0, 8])
        # 8-bit entries are still stored one per 16-bit word
        setattr(ds, f"{colour}PaletteColorLookupTableData", np.array(values, dtype="<u2").tobytes())

    image = render_frame(as_file(ds))

    assert image.mode == "RGB"
    assert np.asarray(image)[0].tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]


def test_segmented_palette_from_pydicom_test_files():
    image = render_frame(get_testdata_file("gdcm-US-ALOKA-16.dcm"))

    assert image.mode == "RGB"
    assert np.asarray(image).std() > 10


def test_rgb_planar_configuration_1():
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    pixels[..., 0] = 200
    pixels[..., 2] = 50
    ds = image_dataset(pixels, photometric="RGB")
    ds.PlanarConfiguration = 1
    ds.PixelData = pixels.transpose(2, 0, 1).tobytes()

    image = render_frame(ds)

    assert np.asarray(image)[1, 1].tolist() == [200, 0, 50]


def test_ybr_full_is_converted_to_rgb():
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[...] = [255, 0, 0]
    ybr = pydicom.pixels.convert_color_space(rgb, "RGB", "YBR_FULL")
    ds = image_dataset(ybr, photometric="YBR_FULL")

    image = render_frame(as_file(ds))

    red, green, blue = np.asarray(image)[0, 0].tolist()
    assert red > 240 and green < 15 and blue < 15


def test_sixteen_bit_rgb_is_scaled_to_eight_bits():
    pixels = np.full((2, 2, 3), 65535, dtype=np.uint16)
    pixels[0, 0] = 0

    image = render_frame(image_dataset(pixels, photometric="RGB"))

    assert np.asarray(image)[0, 0].tolist() == [0, 0, 0]
    assert np.asarray(image)[1, 1].tolist() == [255, 255, 255]


# -- Frames, sources, sizes ---------------------------------------------------------------------


def three_frames() -> Dataset:
    frames = np.stack([np.full((4, 6), value, dtype=np.uint8) for value in (10, 20, 30)])
    frames[:, 0, 0] = 0
    frames[:, 0, 1] = 255
    return image_dataset(frames, WindowCenter=128, WindowWidth=256)


def test_load_frame_returns_the_asked_frame_from_a_file_object():
    arr, ds = load_frame(as_file(three_frames()), frame=3)

    assert arr.shape == (4, 6)
    assert arr[2, 2] == 30
    assert ds.Rows == 4


def test_multi_frame_thumbnail_takes_the_middle_frame(tmp_path):
    ds = three_frames()
    path = tmp_path / "three.dcm"
    ds.save_as(path, enforce_file_format=True)

    assert middle_frame(pydicom.dcmread(path)) == 2
    thumbnail = Image.open(io.BytesIO(render_thumbnail(path)))

    assert max(thumbnail.size) == 256
    centre = np.asarray(thumbnail.convert("L"))[128, 128]
    assert abs(int(centre) - 20) <= 3


def test_number_of_frames_as_a_string():
    ds = three_frames()
    ds.NumberOfFrames = "3"

    arr, _ = load_frame(ds, frame=2)

    assert arr[2, 2] == 20


def test_frame_out_of_range_is_a_render_error():
    with pytest.raises(RenderError, match="Frame 4 does not exist"):
        load_frame(three_frames(), frame=4)


def test_viewport_keeps_the_aspect_ratio():
    pixels = np.zeros((100, 400), dtype=np.uint8)

    image = render_frame(image_dataset(pixels), viewport=(200, 200))

    assert image.size == (200, 50)


def test_viewport_may_enlarge_a_small_image():
    image = fit_within(render_frame(image_dataset(np.zeros((10, 20), dtype=np.uint8))), (256, 256))

    assert image.size == (256, 128)


def test_object_without_pixels_is_not_an_image():
    ds = image_dataset(np.zeros((2, 2), dtype=np.uint8))
    del ds.PixelData

    with pytest.raises(NotAnImage):
        render_frame(as_file(ds))


def test_not_dicom_is_a_render_error():
    with pytest.raises(RenderError, match="Not a readable DICOM file"):
        render_frame(io.BytesIO(b"hello, this is not DICOM" * 10))


def test_truncated_native_pixel_data_renders_what_is_there():
    pixels = np.full((64, 64), 200, dtype=np.uint8)
    pixels[:, :32] = 0
    data = as_file(image_dataset(pixels)).getvalue()
    truncated = io.BytesIO(data[: len(data) - 64 * 16])  # the last 16 rows are gone

    values = grey(render_frame(truncated))

    assert values.shape == (64, 64)
    assert values[10, 40] == 255
    assert values[60, 40] == 0


def test_truncated_multi_frame_names_the_missing_frame():
    frames = np.zeros((4, 32, 32), dtype=np.uint8)
    data = as_file(image_dataset(frames)).getvalue()
    truncated = io.BytesIO(data[: len(data) - 2 * 32 * 32 - 10])

    with pytest.raises(RenderError, match="frame 4 is missing"):
        render_frame(truncated, frame=4)


def test_garbage_jpeg2000_is_a_render_error_with_the_transfer_syntax():
    ds = image_dataset(np.zeros((16, 16), dtype=np.uint16), transfer_syntax="1.2.840.10008.1.2.4.90")
    ds.PixelData = encapsulate([b"\x00\x01" * 100])

    with pytest.raises(RenderError, match="JPEG 2000"):
        render_frame(as_file(ds))


def test_huge_declared_frame_is_refused_without_allocating():
    ds = image_dataset(np.zeros((2, 2), dtype=np.uint16))
    ds.Rows = ds.Columns = 60000

    with pytest.raises(RenderError, match="too large"):
        render_frame(as_file(ds))


def test_one_frame_of_a_large_multi_frame_file_is_read_alone(tmp_path):
    frames = np.zeros((40, 512, 512), dtype=np.uint16)  # 20 MB of pixel data
    frames[20] = 1000
    path = tmp_path / "large.dcm"
    image_dataset(frames).save_as(path, enforce_file_format=True)

    tracemalloc.start()
    try:
        arr, _ = load_frame(path, frame=21)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert arr[0, 0] == 1000
    assert peak < 5 * 1024 * 1024


def test_encapsulated_pixel_data_cut_off_at_the_end_still_renders_complete_frames():
    frames = np.stack([np.full((16, 16), value, dtype=np.uint8) for value in (10, 200)])
    frames[:, 0, 0] = 0
    frames[:, 0, 1] = 255
    ds = image_dataset(frames, WindowCenter=128, WindowWidth=256)
    ds.compress(RLELossless, frames)
    data = as_file(ds).getvalue()
    cut = io.BytesIO(data[: len(data) - 8 - 20])  # no sequence delimiter, last fragment short

    values = grey(render_frame(cut, frame=1))

    assert abs(values[8, 8] - 10) <= 1


@pytest.mark.parametrize(("dtype", "bits_stored"), [(np.uint16, 12), (np.int16, 16), (np.uint8, 8)])
def test_large_jpeg2000_thumbnail_decodes_at_reduced_resolution_with_the_same_picture(dtype, bits_stored):
    from studies.rendering import frames

    y, x = np.mgrid[0:1024, 0:768]
    info = np.iinfo(dtype)
    top = min(info.max, 2 ** (bits_stored - (1 if info.min < 0 else 0)) - 1)
    bottom = max(info.min, -top - 1)
    pixels = (bottom + (x + y) * ((top - bottom) / (1024 + 768))).astype(dtype)
    pixels[100:200, 100:400] = bottom  # a dark block the thumbnail must show
    ds = image_dataset(pixels, bits_stored=bits_stored)
    ds.compress("1.2.840.10008.1.2.4.90", pixels)  # JPEG 2000 lossless
    source = as_file(ds)

    header = read_header(source)
    reduced = frames._decode_j2k_reduced(header, source, 1, (256, 256))
    assert reduced is not None and reduced.shape == (256, 192)
    assert abs(int(reduced[-1, -1]) - int(pixels[-1, -1])) <= (top - bottom) // 100

    fast = grey(render_frame(source, viewport=(256, 256)))
    slow = grey(fit_within(render_frame(source), (256, 256)))
    assert fast.shape == slow.shape == (256, 192)
    assert np.abs(fast - slow).mean() < 3


def test_palette_tables_are_reused_between_frames():
    from studies.rendering import colour as colour_stage

    frames = np.stack([np.full((4, 4), value, dtype=np.uint8) for value in (0, 1, 2)])
    ds = image_dataset(frames, photometric="PALETTE COLOR")
    for colour, values in (("Red", [255, 0, 0]), ("Green", [0, 255, 0]), ("Blue", [0, 0, 255])):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [3, 0, 8])
        setattr(ds, f"{colour}PaletteColorLookupTableData", np.array(values, dtype="<u2").tobytes())
    colour_stage._PALETTE_CACHE.clear()

    colours = [np.asarray(render_frame(ds, frame=n))[0, 0].tolist() for n in (1, 2, 3)]

    assert colours == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    assert len(colour_stage._PALETTE_CACHE) == 1


def test_double_float_pixel_data_from_a_file():
    ds = image_dataset(np.zeros((2, 3), dtype=np.uint8))
    del ds.PixelData
    del ds.PixelRepresentation, ds.BitsStored, ds.HighBit
    ds.BitsAllocated = 64
    ds.DoubleFloatPixelData = np.array([[0.0, 0.5, 1.0], [np.nan, 0.25, 0.75]], dtype=np.float64).tobytes()

    values = grey(render_frame(as_file(ds)))

    assert values[0].tolist() == [0, 128, 255]


def test_rt_dose_window_is_given_in_gray():
    dose = np.array([[[0, 1000, 2000, 4000]]], dtype=np.uint32)
    ds = image_dataset(dose[0], Modality="RTDOSE", DoseGridScaling=0.001)  # stored 1000 = 1 Gy

    # DICOM's LINEAR window: 0.5 ... 3.5 Gy maps to black ... white
    values = grey(render_frame(as_file(ds), window=(2.5, 4.0)))[0]

    assert values.tolist()[0] == 0 and values.tolist()[3] == 255
    assert abs(values[2] - 128) <= 1


def test_enhanced_multi_frame_uses_the_frame_rescale_and_window():
    frames = np.stack([np.full((4, 4), 100, dtype=np.uint16), np.full((4, 4), 100, dtype=np.uint16)])
    frames[:, 0, 0] = 0
    ds = image_dataset(frames)

    def group(slope, center, width):
        item = Dataset()
        transformation = Dataset()
        transformation.RescaleSlope, transformation.RescaleIntercept, transformation.RescaleType = slope, 0, "US"
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth = center, width
        item.PixelValueTransformationSequence = [transformation]
        item.FrameVOILUTSequence = [voi]
        return item

    ds.PerFrameFunctionalGroupsSequence = [group(1, 100.5, 21), group(2, 100.5, 21)]  # 90 ... 110

    first = grey(render_frame(ds, frame=1))
    second = grey(render_frame(ds, frame=2))

    assert abs(first[1, 1] - 128) <= 2  # 100 sits at the centre of the first frame's window
    assert second[1, 1] == 255  # rescaled to 200, above the window


def test_odd_sized_eight_bit_frame():
    pixels = np.arange(35, dtype=np.uint8).reshape(5, 7)

    image = render_frame(as_file(image_dataset(pixels)))

    assert image.size == (7, 5)


def test_deflated_file_renders():
    pixels = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (10, 1))
    ds = image_dataset(pixels, transfer_syntax="1.2.840.10008.1.2.1.99")

    values = grey(render_frame(as_file(ds)))

    assert values[0, 0] == 0 and values[0, -1] == 255


def test_document_without_image_attributes_is_not_read_a_second_time(tmp_path):
    from unittest import mock

    from studies.rendering import repair

    ds = image_dataset(np.zeros((2, 2), dtype=np.uint8))
    for keyword in ("PixelData", "Rows", "Columns"):
        delattr(ds, keyword)
    path = tmp_path / "report.dcm"
    ds.save_as(path, enforce_file_format=True)

    with mock.patch.object(repair, "read_unterminated") as reread, pytest.raises(NotAnImage):
        render_frame(path)
    reread.assert_not_called()


class PanicException(BaseException):
    """Stands in for pyo3's PanicException, which Rust decoders raise on some corrupt input."""


def test_a_panicking_decoder_plugin_does_not_stop_the_others(tmp_path):
    from unittest import mock

    from studies.rendering import pixels as decoders

    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8) * 100
    ds = image_dataset(pixels)
    ds.compress(RLELossless, pixels)
    path = tmp_path / "rle.dcm"
    ds.save_as(path, enforce_file_format=True)
    real = decoders.pixel_array

    def panicking(src, **kwargs):
        if not kwargs.get("decoding_plugin"):
            raise PanicException("index out of bounds")
        return real(src, **kwargs)

    with mock.patch.object(decoders, "pixel_array", side_effect=panicking):
        values = grey(render_frame(path))

    assert values[0, 0] == 0 and values[7, 7] == 255


def test_a_panic_in_every_plugin_is_a_render_error(tmp_path):
    from unittest import mock

    from studies.rendering import pixels as decoders

    pixels = np.zeros((8, 8), dtype=np.uint16)
    ds = image_dataset(pixels)
    ds.compress(RLELossless, pixels)
    path = tmp_path / "rle.dcm"
    ds.save_as(path, enforce_file_format=True)

    with (
        mock.patch.object(decoders, "pixel_array", side_effect=PanicException("index out of bounds")),
        pytest.raises(RenderError, match="RLE Lossless"),
    ):
        render_frame(path)


def test_a_given_sigmoid_window_follows_the_sigmoid_function():
    hu = np.array([[-160, -60, 40, 140, 240]], dtype=np.int16)

    linear = grey(render_frame(ct(hu), window=(40, 400)))[0]
    sigmoid = grey(render_frame(ct(hu), window=(40, 400, "SIGMOID")))[0]

    # PS3.3 C.11.2.1.3.1: y = 1 / (1 + exp(-4 (x - c) / w)), so the window's edges are not black and white.
    expected = [255 / (1 + np.exp(-4 * (x - 40) / 400)) for x in hu[0]]
    assert all(abs(value - want) <= 1.5 for value, want in zip(sigmoid, expected, strict=True))
    assert linear[0] == 0 and sigmoid[0] > 20
    assert linear[4] == 255 and sigmoid[4] < 235


def test_the_thumbnail_maker_takes_a_box_a_window_and_a_media_type(tmp_path):
    path = tmp_path / "three.dcm"
    three_frames().save_as(path, enforce_file_format=True)

    thumbnail = Image.open(
        io.BytesIO(render_thumbnail(path, viewport=(60, 20), window=(20, 10), media_type="image/png"))
    )

    assert thumbnail.format == "PNG"
    assert thumbnail.size == (30, 20)  # 6 x 4 pixels scaled to fit 60 x 20
    middle = render_frame(path, frame=2, window=(20, 10), viewport=(60, 20))
    assert np.array_equal(np.asarray(thumbnail), np.asarray(middle))


def test_the_encoder_gives_png_on_request_and_jpeg_from_any_picture():
    rgba = Image.new("RGBA", (4, 3), (10, 20, 30, 255))

    png = Image.open(io.BytesIO(encode(rgba, "image/png", quality=90)))
    jpeg = Image.open(io.BytesIO(encode(rgba, "image/jpeg", quality=90)))

    assert (png.format, png.mode) == ("PNG", "RGBA")
    assert (jpeg.format, jpeg.mode, jpeg.size) == ("JPEG", "RGB", (4, 3))


def test_a_render_error_is_a_portal_error_with_its_reason():
    error = RenderError("Cannot decode frame 1 (JPEG Baseline): bad Huffman table")

    assert isinstance(error, PortalError)
    assert (error.status, error.code, str(error)) == (422, "render_failed", error.message)

"""Synthetic DICOM with known geometry for the viewer's browser tests (pydicom, no files in git)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    UltrasoundMultiFrameImageStorage,
    XRayAngiographicImageStorage,
    generate_uid,
)

from tests.studies.dicom_factory import base_dataset, set_ct_pixels

BAR = {"x0": 28, "x1": 228, "y": 32}  # 200 px long
DISC = {"cx": 128, "cy": 128, "r": 40, "hu": 60}
CT_SPACING = 0.5  # mm: the bar is 100 mm, the disc 20 mm in radius
DX_IMAGER_SPACING = 0.2


def _base(sop_class: str, modality: str, study_uid: str, series_number: int, description: str) -> Dataset:
    return base_dataset(
        sop_class,
        media_storage=True,
        StudyInstanceUID=study_uid,
        PatientID="VIEWER-1",
        PatientName="Viewer^Test",
        StudyDate="20250102",
        StudyTime="101500",
        StudyDescription="Viewer geometry",
        AccessionNumber="V1",
        Modality=modality,
        SeriesNumber=series_number,
        SeriesDescription=description,
        InstanceNumber=1,
    )


def ct_slices(study_uid: str, count: int = 3, size: int = 256) -> list[Dataset]:
    """CT slices at 0.5 mm: -1000 HU air, a 60 HU disc of radius 40 px, a bright bar 200 px long."""
    y, x = np.mgrid[0:size, 0:size]
    hu = np.full((size, size), -1000, dtype=np.int16)
    disc = (x + 0.5 - DISC["cx"]) ** 2 + (y + 0.5 - DISC["cy"]) ** 2 <= DISC["r"] ** 2
    hu[disc] = DISC["hu"]
    hu[BAR["y"] - 2 : BAR["y"] + 2, BAR["x0"] : BAR["x1"]] = 1000
    series_uid = generate_uid()
    slices = []
    for i in range(count):
        ds = _base(CTImageStorage, "CT", study_uid, 1, "Geometry CT")
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0, 0, float(i)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [CT_SPACING, CT_SPACING]
        set_ct_pixels(ds, hu)
        slices.append(ds)
    return slices


def dx_monochrome1(study_uid: str, size: int = 128) -> Dataset:
    """An X-ray with only ImagerPixelSpacing, MONOCHROME1 (low values shown bright)."""
    ds = _base(DigitalXRayImageStorageForPresentation, "DX", study_uid, 2, "Chest PA")
    ds.ImagerPixelSpacing = [DX_IMAGER_SPACING, DX_IMAGER_SPACING]
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PresentationLUTShape = "INVERSE"
    pixels = np.zeros((size, size), dtype=np.uint16)
    pixels[:, size // 2 :] = 4000
    ds.PixelData = pixels.tobytes()
    return ds


def us_rgb_clip(study_uid: str, frames: int = 4, size: int = 64) -> Dataset:
    """A colour ultrasound clip: RGB, several frames, a red square moving right."""
    ds = _base(UltrasoundMultiFrameImageStorage, "US", study_uid, 3, "Cardiac clip")
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = "RGB"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = frames
    ds.FrameTime = 40
    data = np.zeros((frames, size, size, 3), dtype=np.uint8)
    for f in range(frames):
        data[f, 20:40, 5 + f * 8 : 25 + f * 8, 0] = 255
    ds.PixelData = data.tobytes()
    return ds


def xa_multiframe(study_uid: str, frames: int = 3, size: int = 32) -> Dataset:
    """An 8-bit grayscale angiography run: frame n is filled with the value 50 * n."""
    ds = _base(XRayAngiographicImageStorage, "XA", study_uid, 4, "Angio run")
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = frames
    ds.FrameTime = 100
    data = np.stack([np.full((size, size), 50 * (f + 1), dtype=np.uint8) for f in range(frames)])
    ds.PixelData = data.tobytes()
    return ds


def write(datasets: list[Dataset], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, ds in enumerate(datasets):
        path = directory / f"{n:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def rt_plan(study_uid: str) -> Dataset:
    """An RT plan: a study object without pixel data (the viewer has nothing to show of it)."""
    from pydicom.uid import RTPlanStorage

    ds = _base(RTPlanStorage, "RTPLAN", study_uid, 1, "Plan")
    ds.RTPlanLabel = "PLAN1"
    ds.RTPlanGeometry = "PATIENT"
    return ds


def ct_j2k_lossy(study_uid: str, size: int = 128, ratio: int = 12) -> Dataset:
    """A CT slice stored as JPEG 2000 compressed about ``ratio``:1 (irreversible), its header
    saying so as an encoder should (LossyImageCompression 01, method ISO_15444_1, the ratio)."""
    from pydicom.uid import JPEG2000

    ds = ct_slices(study_uid, count=1, size=size)[0]
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 5
    ds.SeriesDescription = "CT J2K lossy"
    ds.compress(JPEG2000, j2k_cr=[ratio])
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_15444_1"
    ds.LossyImageCompressionRatio = str(ratio)
    return ds


def sc_jpeg_baseline(study_uid: str, size: int = 64) -> Dataset:
    """An 8-bit grayscale secondary capture stored as JPEG baseline (Pillow's encoder), with no
    lossy attributes in its header: the transfer syntax alone says lossy."""
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage

    ds = _base(SecondaryCaptureImageStorage, "OT", study_uid, 6, "Screenshot JPEG")
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    gradient = np.tile(np.linspace(0, 255, size, dtype=np.uint8), (size, 1))
    buffer = io.BytesIO()
    Image.fromarray(gradient, mode="L").save(buffer, format="JPEG", quality=80)
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    return ds

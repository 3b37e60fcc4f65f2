"""Synthetic DICOM files for tests, built with pydicom.

Each ``make_*`` returns the bytes of a PS3.10 file (and writes them to ``path`` when given).
Keyword arguments set DICOM attributes by keyword (``PatientID="P1"``); ``None`` removes one.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def _apply(ds: Dataset, attrs: dict) -> None:
    for keyword, value in attrs.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)


def base_dataset(sop_class: str, *, media_storage: bool = False, **attrs) -> Dataset:
    """An instance of ``sop_class`` with Explicit VR Little Endian file meta and fresh SOP Instance,
    Study and Series UIDs, then ``attrs`` set in order (``PatientID="P1"``, ``StudyInstanceUID=...``).
    ``media_storage``: the file meta names the SOP class and instance now (``to_bytes`` does it
    when the file is written)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    if media_storage:
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def dataset(
    *, sop_class: str = CTImageStorage, modality: str = "CT", rows: int = 16, columns: int = 16, **attrs
) -> Dataset:
    """A small valid image instance with fresh UIDs; pass ``StudyInstanceUID=...`` to group files."""
    ds = base_dataset(
        sop_class,
        PatientID="TEST-001",
        PatientName="Test^Patient",
        PatientBirthDate="19700101",
        PatientSex="O",
        StudyDate="20240102",
        StudyTime="101500",
        StudyDescription="Synthetic study",
        AccessionNumber="ACC001",
        Modality=modality,
        SeriesNumber=1,
        SeriesDescription="Synthetic series",
        InstanceNumber=1,
    )
    if rows and columns:
        ds.Rows = rows
        ds.Columns = columns
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        pixels = (np.arange(rows * columns, dtype=np.uint16) * 7 % 4096).reshape(rows, columns)
        ds.PixelData = pixels.tobytes()
    _apply(ds, attrs)
    return ds


def set_ct_pixels(ds: Dataset, hu: np.ndarray) -> None:
    """Give ``ds`` signed 16-bit CT pixels for the Hounsfield units ``hu`` (rows x columns), stored
    with rescale intercept -1024 and a 40/400 soft-tissue window."""
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.PixelData = np.clip(np.round(hu + 1024), -32768, 32767).astype(np.int16).tobytes()


def to_bytes(ds: Dataset, path: str | os.PathLike | None = None, *, preamble: bytes | None = None) -> bytes:
    """Encode ``ds`` as a PS3.10 file (with file meta filled in from the data set)."""
    meta = ds.file_meta
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.preamble = preamble if preamble is not None else b"\0" * 128
    ds.save_as(buffer, enforce_file_format=False)
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def make_ct(path: str | os.PathLike | None = None, **attrs) -> bytes:
    return to_bytes(dataset(**attrs), path)


def make_mr(path: str | os.PathLike | None = None, **attrs) -> bytes:
    return to_bytes(dataset(sop_class=MRImageStorage, modality="MR", **attrs), path)


def make_multiframe(path: str | os.PathLike | None = None, *, frames: int = 3, **attrs) -> bytes:
    ds = dataset(sop_class=SecondaryCaptureImageStorage, modality="OT", **attrs)
    ds.NumberOfFrames = frames
    pixels = np.arange(frames * ds.Rows * ds.Columns, dtype=np.uint16) % 4096
    ds.PixelData = pixels.tobytes()
    return to_bytes(ds, path)


def make_sr(path: str | os.PathLike | None = None, **attrs) -> bytes:
    """A document without pixel data."""
    ds = dataset(sop_class=BASIC_TEXT_SR, modality="SR", rows=0, columns=0, **attrs)
    return to_bytes(ds, path)


def make_nested(depth: int, path: str | os.PathLike | None = None, **attrs) -> bytes:
    """A document whose ContentSequence nests ``depth`` levels deep (undefined lengths).

    Encoded by hand: pydicom's writer recurses once per level."""
    data = to_bytes(dataset(sop_class=BASIC_TEXT_SR, modality="SR", rows=0, columns=0, **attrs))
    body = struct.pack("<HH2sHI", 0x0040, 0xA160, b"UT", 0, 4) + b"leaf"
    for _ in range(depth):
        item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + body + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
        body = (
            struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + item + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
        )
    data += body
    if path is not None:
        Path(path).write_bytes(data)
    return data


def make_truncated(path: str | os.PathLike | None = None, *, keep: float = 0.6, **attrs) -> bytes:
    """A valid CT cut short in the middle of its pixel data."""
    data = make_ct(rows=64, columns=64, **attrs)
    data = data[: int(len(data) * keep)]
    if path is not None:
        Path(path).write_bytes(data)
    return data


def make_dimensions_mismatch(path: str | os.PathLike | None = None, **attrs) -> bytes:
    """Declares 4096 x 4096 pixels but carries 16 x 16 (a complete, well-formed element)."""
    ds = dataset(**attrs)
    ds.Rows = 4096
    ds.Columns = 4096
    return to_bytes(ds, path)


def make_random_after_dicm(path: str | os.PathLike | None = None, size: int = 4096, seed: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    data = b"\0" * 128 + b"DICM" + rng.bytes(size)
    if path is not None:
        Path(path).write_bytes(data)
    return data


def make_zip(entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive of ``{name: bytes}``; names are stored exactly as given (even '../x')."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            archive.writestr(info, data)
    return buffer.getvalue()


def make_zip_bomb(size: int = 64 * 1024 * 1024) -> bytes:
    """A small archive that expands to ``size`` bytes of zeros (ratio about 1000:1)."""
    buffer = io.BytesIO()
    chunk = b"\0" * (1024 * 1024)
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("zeros.dcm", "w", force_zip64=True) as entry,
    ):
        for _ in range(size // len(chunk)):
            entry.write(chunk)
    return buffer.getvalue()

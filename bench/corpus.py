"""The reference corpus of the benchmarks: pydicom's test files plus the pydicom-data package.

Many files are one image in several transfer syntaxes under one SOPInstanceUID, so every repeat
gets a fresh SOP Instance UID (pixel data and transfer syntax untouched) before anyone stores it.
"""

from __future__ import annotations

import io
import os
import random
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom

REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass
class CorpusFile:
    name: str
    data: bytes
    has_pixels: bool


def source_files() -> list[Path]:
    from pydicom.data import get_testdata_file

    roots = [Path(get_testdata_file("CT_small.dcm")).parent]
    try:
        import data_store  # the pydicom-data package

        roots.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    return sorted(Path(root) / name for top in roots for root, _, names in os.walk(top) for name in names)


def _header(data: bytes):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception:
        return None


def load(seed: int = 3) -> list[CorpusFile]:
    """Every corpus file that carries the three UIDs, repeats given fresh SOP Instance UIDs of the
    same length (so the bytes change nowhere else)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    files = []
    for path in source_files():
        data = path.read_bytes()
        ds = _header(data)
        if ds is None or not all(str(ds.get(k) or "") for k in REQUIRED_UIDS):
            continue
        uid = str(ds.SOPInstanceUID)
        if uid in seen and len(uid) > 8:
            fresh = "2.25." + "".join(rng.choice("123456789") for _ in range(len(uid) - 5))
            data = data.replace(uid.encode(), fresh.encode())
            uid = fresh
        seen.add(uid)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                full = pydicom.dcmread(io.BytesIO(data), defer_size="1 KB")
                has_pixels = any(k in full for k in PIXEL_KEYWORDS)
            except Exception:
                has_pixels = False
        files.append(CorpusFile(name=str(path), data=data, has_pixels=has_pixels))
    return files


def write(files: list[CorpusFile]) -> Path:
    """The corpus as files in a fresh temporary directory."""
    directory = Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    for i, f in enumerate(files):
        (directory / f"{i:04d}.dcm").write_bytes(f.data)
    return directory

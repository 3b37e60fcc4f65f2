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
from collections.abc import Iterable, Iterator
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


def sop_instance_uid(data: bytes) -> str | None:
    """The SOPInstanceUID when ``data`` is DICOM with all three UIDs, else None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        uids = [str(ds.get(k) or "") for k in REQUIRED_UIDS]
    except Exception:
        return None
    return uids[2] if all(uids) else None


def fresh_uid_like(uid: str, rng: random.Random) -> str:
    """A random UID of the same length as ``uid``."""
    return "2.25." + "".join(rng.choice("123456789") for _ in range(len(uid) - 5))


def with_unique_uids(paths: Iterable[Path], rng: random.Random) -> Iterator[tuple[Path, bytes, str | None]]:
    """``(path, data, uid)`` for every path: ``uid`` is the SOPInstanceUID (None when the file lacks
    one of the three UIDs), and a repeat of one already seen is given a fresh one of the same length
    in ``data`` (so the bytes change nowhere else)."""
    seen: set[str] = set()
    for path in paths:
        data = path.read_bytes()
        uid = sop_instance_uid(data)
        if uid and uid in seen and len(uid) > 8:
            fresh = fresh_uid_like(uid, rng)
            data = data.replace(uid.encode(), fresh.encode())
            uid = fresh
        if uid:
            seen.add(uid)
        yield path, data, uid


def load(seed: int = 3) -> list[CorpusFile]:
    """Every corpus file that carries the three UIDs, repeats given fresh SOP Instance UIDs of the
    same length (so the bytes change nowhere else)."""
    files = []
    for path, data, uid in with_unique_uids(source_files(), random.Random(seed)):
        if uid is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                full = pydicom.dcmread(io.BytesIO(data), defer_size="1 KB")
                has_pixels = any(k in full for k in PIXEL_KEYWORDS)
            except Exception:
                has_pixels = False
        files.append(CorpusFile(name=str(path), data=data, has_pixels=has_pixels))
    return files


def pixel_bearing_files(candidates: Iterable[Path] | None = None) -> list[Path]:
    """The ``candidates`` (by default every file of pydicom's get_testdata_files(), which takes in
    pydicom-data through pydicom's external data sources) with the three UIDs and pixel data."""
    if candidates is None:
        from pydicom.data import get_testdata_files

        candidates = sorted(Path(path) for path in get_testdata_files())
    selected = []
    for path in candidates:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, defer_size="1 MB")
        except Exception:
            continue
        if all(uid in ds for uid in REQUIRED_UIDS) and any(keyword in ds for keyword in PIXEL_KEYWORDS):
            selected.append(path)
    return selected


def write(files: list[CorpusFile]) -> Path:
    """The corpus as files in a fresh temporary directory."""
    directory = Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    for i, f in enumerate(files):
        (directory / f"{i:04d}.dcm").write_bytes(f.data)
    return directory

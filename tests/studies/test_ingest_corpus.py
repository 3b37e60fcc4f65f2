"""The reference corpus of issue 3: pydicom's test files plus the pydicom-data package.

212 files carry the three UIDs. Many are one image in several transfer syntaxes under one
SOPInstanceUID, so every repeat gets a fresh SOP Instance UID of the same length (the bytes are
otherwise untouched). Three of the 212 are truncated on purpose and are refused as such.
"""

from __future__ import annotations

import io
import os
import random
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from studies.ingest import ingest_files
from studies.models import Instance

EXPECTED_STORED = 209
TRUNCATED_ON_PURPOSE = {"MR_truncated.dcm", "rtplan_truncated.dcm", "emri_small_jpeg_2k_lossless_too_short.dcm"}


def corpus_files() -> list[Path]:
    pydicom_files = Path(get_testdata_file("CT_small.dcm")).parent
    roots = [pydicom_files]
    try:
        import data_store  # the pydicom-data package

        roots.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    return sorted(Path(root) / name for top in roots for root, _, names in os.walk(top) for name in names)


def carries_uids(data: bytes) -> str | None:
    """The SOPInstanceUID when the file is DICOM with all three UIDs, else None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        uids = [str(ds.get(k) or "") for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
    except Exception:
        return None
    return uids[2] if all(uids) else None


def fresh_uid_like(uid: str, rng: random.Random) -> str:
    return "2.25." + "".join(rng.choice("123456789") for _ in range(len(uid) - 5))


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.mark.timeout(120)
def test_corpus_goes_in_with_every_file_carrying_uids_stored_except_the_truncated(physician):
    rng = random.Random(3)
    seen: set[str] = set()
    upload = []
    with_uids: set[str] = set()
    for path in corpus_files():
        data = path.read_bytes()
        uid = carries_uids(data)
        if uid:
            with_uids.add(str(path))
            if uid in seen and len(uid) > 8:
                fresh = fresh_uid_like(uid, rng)
                data = data.replace(uid.encode(), fresh.encode())
                uid = fresh
            seen.add(uid)
        upload.append((str(path), io.BytesIO(data)))

    results = ingest_files(upload, user=physician)

    stored = [r for r in results if r.status == "stored"]
    lost = {
        Path(r.filename).name: f"{r.code}: {r.reason}"
        for r in results
        if r.filename in with_uids and r.status != "stored"
    }
    print(f"corpus: {len(stored)} of {len(with_uids)} files carrying the three UIDs stored ({len(results)} files sent)")
    assert len(with_uids) >= 212
    assert len(stored) >= EXPECTED_STORED, lost
    assert set(lost) <= TRUNCATED_ON_PURPOSE, lost
    assert all(reason.startswith("truncated") for reason in lost.values()), lost
    assert Instance.objects.count() == len(stored)
    assert all(r.reason for r in results if r.status == "refused")

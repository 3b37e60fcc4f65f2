"""The reference corpus of issue 3: pydicom's test files plus the pydicom-data package.

212 files carry the three UIDs. Many are one image in several transfer syntaxes under one
SOPInstanceUID, so every repeat gets a fresh SOP Instance UID of the same length (the bytes are
otherwise untouched). Three of the 212 are truncated on purpose and are refused as such.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from bench import corpus
from studies.ingest import ingest_files
from studies.models import Instance

EXPECTED_STORED = 209
TRUNCATED_ON_PURPOSE = {"MR_truncated.dcm", "rtplan_truncated.dcm", "emri_small_jpeg_2k_lossless_too_short.dcm"}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.mark.timeout(120)
def test_corpus_goes_in_with_every_file_carrying_uids_stored_except_the_truncated(physician):
    upload = []
    with_uids: set[str] = set()
    for path, data, uid in corpus.with_unique_uids(corpus.source_files(), random.Random(3)):
        if uid:
            with_uids.add(str(path))
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

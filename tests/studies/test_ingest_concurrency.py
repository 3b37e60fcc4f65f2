"""Simultaneous uploads (real PostgreSQL) and memory use on large files."""

from __future__ import annotations

import io
import struct
import tracemalloc

import pytest
from pydicom.uid import generate_uid

from studies.ingest import ingest_file
from studies.models import Instance, Series, Study
from studies.permissions import can_view_study
from tests.concurrency import run_together
from tests.studies import dicom_factory as f


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.mark.django_db(transaction=True)
def test_simultaneous_uploads_of_one_instance_store_it_once(postgres, physician, media):
    data = f.make_ct()
    results = run_together([lambda: ingest_file(io.BytesIO(data), filename="a.dcm", user=physician) for _ in range(4)])

    assert sorted(r.status for r in results) == ["already_stored"] * 3 + ["stored"], [r.as_dict() for r in results]
    assert len({r.instance_id for r in results}) == 1
    assert Instance.objects.count() == 1
    assert Study.objects.get().num_instances == 1
    assert len(list(media.rglob("*.dcm"))) == 1


@pytest.mark.django_db(transaction=True)
def test_simultaneous_uploads_into_one_study_keep_its_counts_exact(postgres, physician):
    study_uid, series_uid = generate_uid(), generate_uid()
    files = [f.make_ct(StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid) for _ in range(3)]
    files += [f.make_mr(StudyInstanceUID=study_uid) for _ in range(3)]
    results = run_together(
        [lambda data=data: ingest_file(io.BytesIO(data), filename="x.dcm", user=physician) for data in files]
    )

    assert [r.status for r in results] == ["stored"] * 6, [(r.code, r.reason) for r in results]
    study = Study.objects.get(study_instance_uid=study_uid)
    assert (study.num_series, study.num_instances, study.modalities) == (4, 6, "CT\\MR")
    assert Series.objects.get(series_instance_uid=series_uid).num_instances == 3


@pytest.mark.django_db(transaction=True)
def test_two_users_storing_one_new_instance_at_once_never_reach_each_others_study(postgres, physician, outsider):
    for _round in range(5):
        data = f.make_ct()
        users = (physician, outsider)
        results = run_together(
            [lambda user=user, data=data: ingest_file(io.BytesIO(data), filename="a.dcm", user=user) for user in users]
        )

        assert sorted((r.status, r.code) for r in results) == [("refused", "forbidden_study"), ("stored", "")]
        for user, result in zip(users, results, strict=True):
            if result.status != "stored":
                assert result.instance_id is None
                continue
            instance = Instance.objects.select_related("series__study").get(pk=result.instance_id)
            assert can_view_study(user, instance.series.study)


def write_large_multiframe(path, *, frames: int, rows: int = 512, columns: int = 512) -> int:
    """A multi-frame file of frames x rows x columns 16-bit pixels, written without holding it in memory."""
    ds = f.dataset(sop_class="1.2.840.10008.5.1.4.1.1.7", modality="OT", rows=rows, columns=columns)
    ds.NumberOfFrames = frames
    del ds.PixelData
    header = f.to_bytes(ds)
    length = frames * rows * columns * 2
    frame = bytes(range(256)) * (rows * columns * 2 // 256)
    with open(path, "wb") as out:
        out.write(header)
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length))
        for _ in range(frames):
            out.write(frame)
    return length


def test_large_multiframe_file_ingests_with_bounded_memory(physician, tmp_path):
    path = tmp_path / "large.dcm"
    size = write_large_multiframe(path, frames=400)  # about 200 MB of pixel data
    tracemalloc.start()
    try:
        result = ingest_file(path, filename="large.dcm", user=physician)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.status == "stored", result
    instance = Instance.objects.get(pk=result.instance_id)
    assert instance.number_of_frames == 400
    assert instance.size > size
    assert peak < 16 * 1024 * 1024, f"peak Python allocation {peak} bytes"

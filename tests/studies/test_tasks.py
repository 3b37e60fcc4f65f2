"""The thumbnail task: idempotent, records why an object has no thumbnail, gives up in the end."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from unittest import mock

import numpy as np
import pydicom
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from studies.models import Instance, Patient, Series, Study
from studies.tasks import MAX_RENDER_ATTEMPTS, render_instance, render_pending
from tests.factories import practice_of


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def series(db):
    suffix = uuid.uuid4().int % 10**12
    practice = practice_of(None)
    patient = Patient.objects.create(practice=practice, patient_id=f"P{suffix}", name="Doe^Jane")
    study = Study.objects.create(
        study_instance_uid=f"1.2.826.0.1.3680043.10.{suffix}", practice=practice, patient=patient
    )
    return Series.objects.create(series_instance_uid=f"{study.study_instance_uid}.1", study=study, modality="CT")


def store_instance(series, data: bytes, **fields) -> Instance:
    """An Instance row whose file is saved through the default storage, as ingest stores it."""
    uid = generate_uid()
    name = default_storage.save(f"dicom/{uid}.dcm", ContentFile(data))
    return Instance.objects.create(
        sop_instance_uid=uid,
        series=series,
        sop_class_uid=fields.pop("sop_class_uid", "1.2.840.10008.5.1.4.1.1.2"),
        transfer_syntax_uid=ExplicitVRLittleEndian,
        file=name,
        size=len(data),
        sha256="0" * 64,
        **fields,
    )


def dicom_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def file_bytes(name: str) -> bytes:
    with open(get_testdata_file(name), "rb") as handle:
        return handle.read()


def structured_report() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    return ds


def garbage_pixels() -> Dataset:
    ds = structured_report()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.Modality = "OT"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"  # JPEG 2000 lossless
    ds.Rows, ds.Columns = 64, 64
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pydicom.encaps.encapsulate([np.random.default_rng(1).bytes(500)])
    return ds


def test_render_instance_stores_a_thumbnail_and_marks_ready(series):
    instance = store_instance(series, file_bytes("CT_small.dcm"))

    render_instance(instance_pk=instance.pk)

    instance.refresh_from_db()
    assert instance.status == Instance.Status.READY
    assert instance.render_attempts == 1
    assert instance.thumbnail.name.startswith("thumbnails/")
    with default_storage.open(instance.thumbnail.name) as handle:
        image = Image.open(handle)
        image.load()
    assert image.format == "JPEG"
    assert max(image.size) == 256


def test_render_instance_is_idempotent(series):
    instance = store_instance(series, file_bytes("CT_small.dcm"))
    render_instance(instance_pk=instance.pk)
    instance.refresh_from_db()
    first = instance.thumbnail.name

    with mock.patch("studies.rendering.make_thumbnail") as make_thumbnail:
        render_instance(instance_pk=instance.pk)

    make_thumbnail.assert_not_called()
    instance.refresh_from_db()
    assert instance.thumbnail.name == first
    assert instance.render_attempts == 1


def test_structured_report_is_marked_no_image(series):
    instance = store_instance(series, dicom_bytes(structured_report()), sop_class_uid="1.2.840.10008.5.1.4.1.1.88.11")

    render_instance(instance_pk=instance.pk)

    instance.refresh_from_db()
    assert instance.status == Instance.Status.NO_IMAGE
    assert instance.failure_reason == ""
    assert not instance.thumbnail


def test_garbage_pixel_data_is_marked_failed_with_reason(series):
    instance = store_instance(series, dicom_bytes(garbage_pixels()))

    render_instance(instance_pk=instance.pk)

    instance.refresh_from_db()
    assert instance.status == Instance.Status.FAILED
    assert "JPEG 2000" in instance.failure_reason
    assert "frame 1" in instance.failure_reason


def test_missing_stored_file_is_marked_failed(series):
    instance = store_instance(series, file_bytes("CT_small.dcm"))
    default_storage.delete(instance.file.name)

    render_instance(instance_pk=instance.pk)

    instance.refresh_from_db()
    assert instance.status == Instance.Status.FAILED
    assert "missing" in instance.failure_reason


def test_unexpected_crash_in_decoder_is_recorded_not_raised(series):
    instance = store_instance(series, file_bytes("CT_small.dcm"))

    with mock.patch("studies.rendering.pixels.pixel_array", side_effect=MemoryError()):
        render_instance(instance_pk=instance.pk)

    instance.refresh_from_db()
    assert instance.status == Instance.Status.FAILED
    assert "memory" in instance.failure_reason.lower()


def test_a_crash_outside_the_renderer_is_recorded(series):
    instance = store_instance(series, file_bytes("CT_small.dcm"))

    with mock.patch("studies.rendering.make_thumbnail", side_effect=RuntimeError("storage is down")):
        render_instance(instance_pk=instance.pk)

    instance.refresh_from_db()
    assert instance.status == Instance.Status.FAILED
    assert "storage is down" in instance.failure_reason


def test_gives_up_after_three_attempts(series):
    instance = store_instance(series, file_bytes("CT_small.dcm"))
    # Three deliveries each died with the worker (status still pending, attempts counted).
    Instance.objects.filter(pk=instance.pk).update(render_attempts=MAX_RENDER_ATTEMPTS)

    with mock.patch("studies.rendering.make_thumbnail") as make_thumbnail:
        render_instance(instance_pk=instance.pk)

    make_thumbnail.assert_not_called()
    instance.refresh_from_db()
    assert instance.status == Instance.Status.FAILED
    assert "Gave up after 3 attempts" in instance.failure_reason


def test_attempts_are_counted_even_when_the_worker_dies_mid_render(series):
    instance = store_instance(series, file_bytes("CT_small.dcm"))

    class WorkerLost(BaseException):
        pass

    for _ in range(MAX_RENDER_ATTEMPTS):
        with mock.patch("studies.rendering.make_thumbnail", side_effect=WorkerLost), pytest.raises(WorkerLost):
            render_instance(instance_pk=instance.pk)
    render_instance(instance_pk=instance.pk)

    instance.refresh_from_db()
    assert instance.render_attempts == MAX_RENDER_ATTEMPTS
    assert instance.status == Instance.Status.FAILED


def test_unknown_instance_is_ignored(db):
    render_instance(instance_pk=987654)


def test_render_pending_queues_only_old_pending_instances(series):
    old = store_instance(series, file_bytes("CT_small.dcm"))
    fresh = store_instance(series, file_bytes("CT_small.dcm"))
    done = store_instance(series, file_bytes("CT_small.dcm"), status=Instance.Status.READY)
    Instance.objects.filter(pk__in=[old.pk, done.pk]).update(created_at=timezone.now() - timedelta(minutes=30))

    with mock.patch("studies.tasks.render_instance.delay") as delay:
        queued = render_pending()

    assert queued == 1
    delay.assert_called_once_with(instance_pk=old.pk)
    assert fresh.pk not in [call.kwargs["instance_pk"] for call in delay.call_args_list]


def test_render_pending_renders_in_eager_mode(series):
    old = store_instance(series, file_bytes("CT_small.dcm"))
    Instance.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=30))

    render_pending()

    old.refresh_from_db()
    assert old.status == Instance.Status.READY


def test_a_rust_decoder_panic_is_recorded_not_raised(series):
    class PanicException(BaseException):
        pass

    instance = store_instance(series, file_bytes("CT_small.dcm"))

    with mock.patch("studies.rendering.make_thumbnail", side_effect=PanicException("index out of bounds")):
        render_instance(instance_pk=instance.pk)

    instance.refresh_from_db()
    assert instance.status == Instance.Status.FAILED
    assert "index out of bounds" in instance.failure_reason

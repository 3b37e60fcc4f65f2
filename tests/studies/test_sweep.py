"""The sweep of stored files no row refers to: old orphans go, referenced and young files stay."""

from __future__ import annotations

import datetime as dt
import io
import os
import time
import uuid

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from studies import sweep
from studies.models import Instance, Patient, Series, Study
from studies.tasks import sweep_files
from tests.factories import ConsultFactory, practice_of

TWO_DAYS = 2 * 24 * 3600


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def stored(name: str, data: bytes = b"x" * 100, *, age: float = TWO_DAYS) -> str:
    """A file saved through the default storage, last written ``age`` seconds ago."""
    saved = default_storage.save(name, ContentFile(data))
    then = time.time() - age
    os.utime(default_storage.path(saved), (then, then))
    return saved


def exists(name: str) -> bool:
    return default_storage.exists(name)


@pytest.fixture
def series(db):
    suffix = uuid.uuid4().int % 10**12
    practice = practice_of(None)
    patient = Patient.objects.create(practice=practice, patient_id=f"P{suffix}", name="Doe^Jane")
    study = Study.objects.create(
        study_instance_uid=f"1.2.826.0.1.3680043.10.{suffix}", practice=practice, patient=patient
    )
    return Series.objects.create(series_instance_uid=f"{study.study_instance_uid}.1", study=study, modality="CT")


def instance_with(series, file: str, thumbnail: str = "") -> Instance:
    uid = f"{series.series_instance_uid}.{uuid.uuid4().int % 10**9}"
    return Instance.objects.create(
        sop_instance_uid=uid,
        series=series,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        file=file,
        thumbnail=thumbnail,
        size=100,
        sha256="0" * 64,
    )


def test_an_unreferenced_file_older_than_the_grace_period_is_removed(db):
    orphan = stored("dicom/ab/orphan.dcm", b"x" * 321)

    report = sweep.sweep_unreferenced_files(grace=dt.timedelta(hours=24))

    assert not exists(orphan)
    assert (report.removed, report.removed_bytes, report.dry_run) == (1, 321, False)


def test_files_rows_refer_to_are_kept_however_old_whichever_model_owns_them(series):
    dicom = stored("dicom/cd/kept.dcm")
    thumbnail = stored("thumbnails/kept.jpg")
    instance_with(series, dicom, thumbnail)
    attachment = stored("consult_attachments/2026/01/findings.pdf")
    ConsultAttachment = apps.get_model("consultations", "ConsultAttachment")
    ConsultAttachment.objects.create(
        consult=ConsultFactory(), file=attachment, name="findings.pdf", kind="pdf", size=100, sha256="0" * 64
    )
    orphans = [stored("dicom/cd/gone.dcm"), stored("thumbnails/gone.jpg"), stored("consult_attachments/2026/01/x.pdf")]

    report = sweep.sweep_unreferenced_files(grace=dt.timedelta(hours=24))

    assert [exists(name) for name in (dicom, thumbnail, attachment)] == [True, True, True]
    assert [exists(name) for name in orphans] == [False, False, False]
    assert (report.removed, report.checked) == (3, 6)


def test_the_file_kinds_rows_own_are_read_from_the_models(db):
    fields = sweep.file_fields()
    owned = {(model._meta.label, name) for model, names in fields.items() for name in names}
    assert {
        ("studies.Instance", "file"),
        ("studies.Instance", "thumbnail"),
        ("consultations.ConsultAttachment", "file"),
        ("accounts.Licence", "document"),
    } <= owned


def test_a_young_unreferenced_file_is_kept_its_rows_may_still_be_on_their_way(db):
    young = stored("dicom/ef/in-flight.dcm", age=3600)

    report = sweep.sweep_unreferenced_files(grace=dt.timedelta(hours=24))

    assert exists(young)
    assert (report.removed, report.young) == (0, 1)
    # With no grace at all, it goes.
    assert sweep.sweep_unreferenced_files(grace=dt.timedelta(0)).removed == 1
    assert not exists(young)


def test_the_staging_directory_and_hidden_files_are_left_to_their_own_rules(db, media_root):
    staged = stored(".incoming/ingest-left.dcm")
    request_part = stored(".incoming/request-1-abc/part.dcm")
    hidden = stored("dicom/.keep")
    elsewhere = stored("exports/left-over.zip")  # under the media root, but no row's

    assert sweep.sweep_unreferenced_files(grace=dt.timedelta(0)).removed == 1
    assert all(exists(name) for name in (staged, request_part, hidden))
    assert not exists(elsewhere)


def test_candidates_are_checked_in_batches(series):
    kept = [stored(f"dicom/{i:02x}/kept-{i}.dcm") for i in range(5)]
    for name in kept:
        instance_with(series, name)
    orphans = [stored(f"dicom/{i:02x}/orphan-{i}.dcm") for i in range(5)]

    report = sweep.sweep_unreferenced_files(grace=dt.timedelta(hours=1), batch_size=3)

    assert (report.removed, report.checked) == (5, 10)
    assert all(exists(name) for name in kept)
    assert not any(exists(name) for name in orphans)


def test_a_dry_run_lists_what_it_would_remove_and_the_bytes_and_removes_nothing(series):
    orphan = stored("dicom/ab/orphan.dcm", b"x" * 1000)
    kept = stored("dicom/ab/kept.dcm", b"x" * 7)
    instance_with(series, kept)
    out = io.StringIO()

    call_command("sweep_files", "--dry-run", stdout=out)

    assert exists(orphan) and exists(kept)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"would remove {orphan} (1000 bytes)"
    assert lines[-1].startswith("1 unreferenced files to remove, 1000 bytes (1000")
    assert "kept.dcm" not in out.getvalue()


def test_the_command_removes_with_the_grace_period_it_is_given(db):
    young = stored("dicom/ab/young.dcm", b"x" * 10, age=2 * 3600)
    out = io.StringIO()

    call_command("sweep_files", stdout=out)  # the setting's 24 hours
    assert exists(young)
    call_command("sweep_files", "--grace-hours", "1", stdout=out)

    assert not exists(young)
    assert out.getvalue().splitlines()[-1].startswith("1 unreferenced files removed, 10 bytes")


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
def test_a_grace_period_that_is_not_a_number_of_hours_is_refused_with_the_reason(db, value):
    orphan = stored("dicom/ab/orphan.dcm")

    with pytest.raises(CommandError, match="--grace-hours must be"):
        call_command("sweep_files", "--grace-hours", value, stdout=io.StringIO())

    assert exists(orphan)


def test_a_negative_grace_period_is_refused(db):
    with pytest.raises(ValueError, match="must not be negative"):
        sweep.sweep_unreferenced_files(grace=dt.timedelta(hours=-1))


def test_beat_runs_the_sweep_daily_with_the_settings_grace_period(db, settings):
    entry = django_settings.CELERY_BEAT_SCHEDULE["sweep-unreferenced-files"]
    assert entry == {"task": "studies.tasks.sweep_files", "schedule": 24 * 3600.0}
    assert sweep_files.name == entry["task"]
    old, young = stored("dicom/ab/old.dcm", age=3 * 3600), stored("dicom/ab/young.dcm", age=3600)
    settings.TELECONSULT_SWEEP_GRACE_HOURS = 2

    assert sweep_files.delay().get() == 1

    assert not exists(old) and exists(young)

"""``manage.py import_dicom`` and the demo study seeder."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from pydicom.uid import generate_uid

from studies.demo import DEMO_PATIENT_ID, DEMO_STUDY_UID, seed_demo_study
from studies.models import Instance, Study
from studies.permissions import can_view_study
from tests.factories import practice_of
from tests.studies import dicom_factory as f


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def run(*args) -> str:
    """The command, filed under an imaging site of its own unless the call names a user or practice."""
    if "--user" not in args and "--practice" not in args:
        args = (*args, "--practice", str(practice_of(None).pk))
    out = StringIO()
    call_command("import_dicom", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "cd"
    study_uid = generate_uid()
    (root / "series1").mkdir(parents=True)
    (root / "series2" / "deeper").mkdir(parents=True)
    f.make_ct(root / "series1" / "IM0001", StudyInstanceUID=study_uid)
    f.make_ct(root / "series1" / "IM0002", StudyInstanceUID=study_uid)
    f.make_mr(root / "series2" / "deeper" / "IM0001", StudyInstanceUID=study_uid)
    (root / "README.txt").write_text("burned by a CD writer")
    (root / "series2" / "cut.dcm").write_bytes(f.make_truncated())
    (root / "archive.zip").write_bytes(f.make_zip({"x/1.dcm": f.make_sr(StudyInstanceUID=study_uid)}))
    return root


def test_folder_is_imported_recursively_with_a_summary_naming_refusals(db, folder):
    output = run(str(folder))

    assert "6 file(s): 4 stored, 0 already stored, 2 refused." in output
    assert "Refused: " in output
    assert "cd/README.txt: Not a DICOM file" in output
    assert "cd/series2/cut.dcm: The file is truncated" in output
    study = Study.objects.get()
    assert (study.num_series, study.num_instances) == (4, 4)


def test_importing_again_reports_already_stored(db, folder):
    run(str(folder))
    output = run(str(folder))

    assert "4 already stored" in output
    assert Instance.objects.count() == 4


def test_import_as_a_user_files_under_their_practice_and_outsider_sees_nothing(physician, outsider, folder):
    run(str(folder), "--user", physician.email)

    study = Study.objects.get()
    assert study.practice == physician.default_practice
    assert can_view_study(physician, study)
    assert not can_view_study(outsider, study)


def test_import_without_a_user_files_under_the_named_practice(admin_user, physician, outsider, folder):
    run(str(folder), "--practice", str(physician.default_practice.pk))

    study = Study.objects.get()
    assert can_view_study(admin_user, study)
    assert can_view_study(physician, study)
    assert not can_view_study(outsider, study)


def test_import_needs_a_practice_it_can_name(db, folder, physician, outsider):
    with pytest.raises(CommandError, match="--practice ID"):
        call_command("import_dicom", str(folder), stdout=StringIO())
    with pytest.raises(CommandError, match="No practice"):
        call_command("import_dicom", str(folder), "--practice", "nope", stdout=StringIO())
    with pytest.raises(CommandError, match="not a member of practice"):
        call_command(
            "import_dicom", str(folder), "--user", physician.email, "--practice", str(outsider.default_practice.pk)
        )
    assert not Study.objects.exists()


def test_single_file_paths_are_imported(db, tmp_path):
    path = tmp_path / "one.dcm"
    f.make_ct(path)

    assert "1 stored" in run(str(path))


def test_unknown_user_is_an_error(db, folder):
    with pytest.raises(CommandError, match="No user with email nobody@example.com"):
        run(str(folder), "--user", "nobody@example.com")


def test_patient_user_may_not_import(patient_user, folder):
    with pytest.raises(CommandError, match="may not upload"):
        run(str(folder), "--user", patient_user.email)
    assert not Instance.objects.exists()


def test_missing_path_is_an_error(db, tmp_path):
    with pytest.raises(CommandError, match="neither a file nor a folder"):
        run(str(tmp_path / "nothing-here"))


def test_demo_study_is_seeded_once_and_linked_to_the_patient(physician, patient_user, outsider):
    study = seed_demo_study(physician, patient_user)
    again = seed_demo_study(physician, patient_user)

    assert again.pk == study.pk
    assert study.study_instance_uid == DEMO_STUDY_UID
    assert study.patient.patient_id == DEMO_PATIENT_ID
    assert study.patient.account == patient_user
    assert (study.num_series, study.num_instances) == (3, 3)
    assert set(study.modality_list) == {"CT", "MR"}
    assert Instance.objects.count() == 3
    assert can_view_study(physician, study)
    assert can_view_study(patient_user, study)
    assert not can_view_study(outsider, study)


def test_the_import_keeps_its_temporary_files_off_a_tmpfs_as_the_server_does(db, folder, monkeypatch):
    from studies import storage

    calls = []
    monkeypatch.setattr(storage, "keep_temporary_files_on_disk", lambda: calls.append("asked"))
    run(str(folder))
    assert calls == ["asked"]

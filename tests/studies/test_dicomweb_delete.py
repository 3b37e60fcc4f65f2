"""Deleting studies, series and instances (studies.deletion) through DICOMweb, the REST API and the
study page: who may, consult conflicts, counts, the access history, the files' grace period, and
the correction flow (DELETE, then STOW the corrected instance)."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from consultations.models import Report
from studies import sweep
from studies.models import AccessEvent, Instance, Series, Study
from tests.factories import ConsultFactory, UserFactory, practice_of
from tests.studies.test_dicomweb_helpers import make_dataset, store, to_bytes, token_client

pytestmark = pytest.mark.django_db

BOUNDARY = "delete-b0undary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
TWO_DAYS = 2 * 24 * 3600
GRACE = dt.timedelta(hours=24)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """A media root of this test's own, so the sweeps below see only its files."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def uploader(physician):
    """A clinician (not an admin) of ``physician``'s practice; ``physician`` administers it."""
    return UserFactory(email="uploader@example.com", practice=practice_of(physician))


@pytest.fixture
def member(physician):
    """Another clinician of the same practice: sees the study, did not upload it."""
    return UserFactory(email="member@example.com", practice=practice_of(physician))


def two_series_study(user):
    """Two instances in a CT series and one in an MR series of one study, stored by ``user``."""
    first = make_dataset()
    second = make_dataset(StudyInstanceUID=first.StudyInstanceUID, SeriesInstanceUID=first.SeriesInstanceUID)
    mr = make_dataset(StudyInstanceUID=first.StudyInstanceUID, Modality="MR", SeriesNumber=2)
    for ds in (first, second, mr):
        store(user, to_bytes(ds))
    return first, second, mr


def url(ds, level: str = "study") -> str:
    path = f"/dicomweb/studies/{ds.StudyInstanceUID}"
    if level in ("series", "instance"):
        path += f"/series/{ds.SeriesInstanceUID}"
    if level == "instance":
        path += f"/instances/{ds.SOPInstanceUID}"
    return path


def delete(user, path: str):
    return token_client(user).delete(path)


def stow(user, *datasets):
    body = b""
    for ds in datasets:
        body += f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + to_bytes(ds) + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    return token_client(user).generic("POST", "/dicomweb/studies", body, content_type=STOW_TYPE)


def failure_reasons(answer) -> list[int]:
    failed = answer.json().get("00081198", {}).get("Value", [])
    return [item["00081197"]["Value"][0] for item in failed]


def deleted_events():
    return list(AccessEvent.objects.filter(action=AccessEvent.Action.DELETED))


# -- who may ----------------------------------------------------------------------------------


def test_uploader_deletes_their_study_and_every_route_forgets_it(uploader):
    first, _second, _mr = two_series_study(uploader)
    token_client(uploader).get(url(first, "series"))  # an earlier read, kept in the history

    answer = delete(uploader, url(first))

    assert answer.status_code == 204
    assert not Study.objects.filter(study_instance_uid=first.StudyInstanceUID).exists()
    assert not Instance.objects.exists() and not Series.objects.exists()
    assert token_client(uploader).get(url(first)).status_code == 404
    assert token_client(uploader).get("/dicomweb/studies").json() == []
    assert token_client(uploader).get(f"/api/v1/studies/{first.StudyInstanceUID}/").status_code == 404
    # The history keeps the read (by UID) and says who deleted what.
    assert AccessEvent.objects.filter(
        action=AccessEvent.Action.WADO_RETRIEVE, study_uid=first.StudyInstanceUID
    ).exists()
    (event,) = deleted_events()
    assert (event.user, event.study_uid, event.object_id) == (uploader, first.StudyInstanceUID, first.StudyInstanceUID)


def test_practice_admin_deletes_a_study_a_colleague_uploaded_and_reads_the_deletion(physician, uploader):
    first, _second, _mr = two_series_study(uploader)
    assert delete(physician, url(first)).status_code == 204
    # The study row is gone; the event names the patient record, so the practice's admin still reads it.
    events = token_client(physician).get("/api/v1/access-events/").json()
    rows = events["results"] if isinstance(events, dict) else events
    assert any(row.get("action") == "deleted" and row.get("study_uid") == first.StudyInstanceUID for row in rows)


def test_administrator_deletes_any_study(uploader, admin_user):
    first, _second, _mr = two_series_study(uploader)
    assert delete(admin_user, url(first, "series")).status_code == 204
    assert Instance.objects.count() == 1


def test_outsider_gets_404_for_delete_at_every_level(uploader, outsider):
    first, _second, _mr = two_series_study(uploader)
    for level in ("study", "series", "instance"):
        answer = delete(outsider, url(first, level))
        assert answer.status_code == 404, level
        assert answer.json() == {"detail": "No such study."}
    assert Instance.objects.count() == 3
    assert deleted_events() == []


def test_colleague_who_sees_the_study_but_did_not_upload_it_gets_403(uploader, member):
    first, _second, _mr = two_series_study(uploader)
    assert token_client(member).get(url(first, "series")).status_code == 200
    answer = delete(member, url(first, "instance"))
    assert answer.status_code == 403
    assert "uploaded this study" in answer.json()["detail"]
    assert Instance.objects.count() == 3


def test_share_link_cannot_delete(uploader):
    from studies.sharing.links import create_share

    first, _second, _mr = two_series_study(uploader)
    token = create_share(study=Study.objects.get(), by=uploader).token
    client = Client()
    client.get(f"/s/{token}/")
    assert client.delete(f"/s/{token}/dicomweb/studies/{first.StudyInstanceUID}").status_code == 405
    assert Study.objects.exists()


def test_session_delete_needs_the_csrf_token(uploader):
    first, _second, _mr = two_series_study(uploader)
    client = Client(enforce_csrf_checks=True)
    client.force_login(uploader)
    answer = client.delete(url(first))
    assert answer.status_code == 403
    assert "CSRF" in answer.json()["detail"]
    assert Study.objects.exists()


def test_other_methods_name_delete_among_those_allowed(uploader):
    first, _second, _mr = two_series_study(uploader)
    answer = token_client(uploader).put(url(first, "series"))
    assert answer.status_code == 405
    assert "DELETE" in answer["Allow"] and "GET" in answer["Allow"]


def test_unknown_series_or_instance_of_a_visible_study_is_404(uploader):
    first, _second, _mr = two_series_study(uploader)
    assert delete(uploader, f"{url(first)}/series/1.2.3.4").status_code == 404
    assert delete(uploader, f"{url(first, 'series')}/instances/1.2.3.4").status_code == 404
    assert Instance.objects.count() == 3


# -- what goes ----------------------------------------------------------------------------------


def test_deleting_a_series_updates_the_study_counts_and_modalities(uploader):
    first, _second, mr = two_series_study(uploader)
    assert Study.objects.get().modalities == "CT\\MR"

    assert delete(uploader, url(mr, "series")).status_code == 204

    study = Study.objects.get()
    assert (study.num_series, study.num_instances, study.modalities) == (1, 2, "CT")
    found = token_client(uploader).get("/dicomweb/studies").json()[0]
    assert found["00201208"]["Value"] == [2] and found["00080061"]["Value"] == ["CT"]
    (event,) = deleted_events()
    assert (event.study, event.object_id) == (study, mr.SeriesInstanceUID)


def test_deleting_an_instance_keeps_its_series_and_the_last_one_takes_series_and_study(uploader):
    first, second, mr = two_series_study(uploader)
    assert delete(uploader, url(first, "instance")).status_code == 204
    assert Series.objects.get(series_instance_uid=first.SeriesInstanceUID).num_instances == 1
    assert Study.objects.get().num_instances == 2

    assert delete(uploader, url(second, "instance")).status_code == 204
    assert not Series.objects.filter(series_instance_uid=first.SeriesInstanceUID).exists()
    assert (Study.objects.get().num_series, Study.objects.get().num_instances) == (1, 1)

    assert delete(uploader, url(mr, "instance")).status_code == 204
    assert not Study.objects.exists()
    assert [e.patient is not None for e in deleted_events()] == [True, False, False]  # newest first


def test_deleting_the_image_that_names_another_patient_clears_the_mixed_identity_flag(uploader):
    first = make_dataset()
    other = make_dataset(StudyInstanceUID=first.StudyInstanceUID, PatientName="Roe^Richard")
    for ds in (first, other):
        store(uploader, to_bytes(ds))
    assert Study.objects.get().identities == 2

    assert delete(uploader, url(other, "instance")).status_code == 204

    assert Study.objects.get().identities == 1


# -- consults -------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["study", "series", "instance"])
def test_study_with_a_signed_report_cannot_be_deleted_at_any_level(uploader, specialist, level):
    first, _second, _mr = two_series_study(uploader)
    consult = ConsultFactory(requester=uploader, study=Study.objects.get(), state="reported", assignee=specialist)
    Report.objects.create(consult=consult, author=specialist, signed_by=specialist, signed_at=timezone.now())

    answer = delete(uploader, url(first, level))

    assert answer.status_code == 409
    assert f"Consult #{consult.pk}" in answer.json()["detail"]
    assert "cannot be deleted" in answer.json()["detail"]
    assert Instance.objects.count() == 3
    assert deleted_events() == []


def test_study_with_an_open_consult_cannot_be_deleted_through_the_api_either(uploader, admin_user):
    first, _second, _mr = two_series_study(uploader)
    ConsultFactory(requester=uploader, study=Study.objects.get(), state="submitted")
    answer = token_client(admin_user).delete(f"/api/v1/studies/{first.StudyInstanceUID}/")
    assert answer.status_code == 409
    assert answer.json()["code"] == "study_in_use"
    assert Study.objects.exists()


# -- REST API -------------------------------------------------------------------------------------


def test_rest_api_deletes_study_series_and_instance_by_the_same_rules(uploader, member, outsider):
    first, second, mr = two_series_study(uploader)
    api = f"/api/v1/studies/{first.StudyInstanceUID}"
    assert token_client(outsider).delete(f"{api}/").status_code == 404
    refused = token_client(member).delete(f"{api}/")
    assert (refused.status_code, refused.json()["code"]) == (403, "may_not_delete")
    instance = f"{api}/series/{first.SeriesInstanceUID}/instances/{first.SOPInstanceUID}/"
    assert token_client(uploader).delete(instance).status_code == 204
    assert token_client(uploader).delete(instance).status_code == 404
    assert token_client(uploader).delete(f"{api}/series/{mr.SeriesInstanceUID}/").status_code == 204
    assert token_client(uploader).delete(f"{api}/").status_code == 204
    assert not Study.objects.exists()


# -- files ----------------------------------------------------------------------------------------


def _age(names: list[str], seconds: float) -> None:
    then = time.time() - seconds
    for name in names:
        os.utime(default_storage.path(name), (then, then))


def test_deleted_files_are_swept_only_after_the_grace_period_counted_from_the_deletion(
    uploader, django_capture_on_commit_callbacks
):
    first, _second, _mr = two_series_study(uploader)
    names = list(Instance.objects.values_list("file", flat=True))
    _age(names, TWO_DAYS)  # stored long ago: the grace must run from the deletion, not the upload
    assert sweep.sweep_unreferenced_files(grace=GRACE).removed == 0  # still referenced

    with django_capture_on_commit_callbacks(execute=True):
        assert delete(uploader, url(first)).status_code == 204

    assert sweep.sweep_unreferenced_files(grace=GRACE).removed == 0
    assert all(default_storage.exists(name) for name in names)

    _age(names, TWO_DAYS)  # two days after the deletion
    report = sweep.sweep_unreferenced_files(grace=GRACE)
    assert report.removed == 3
    assert not any(default_storage.exists(name) for name in names)


# -- corrections ----------------------------------------------------------------------------------


def test_corrected_instance_is_refused_until_the_old_one_is_deleted_then_stored(uploader):
    original = make_dataset()
    assert stow(uploader, original).status_code == 200
    corrected = make_dataset(
        StudyInstanceUID=original.StudyInstanceUID,
        SeriesInstanceUID=original.SeriesInstanceUID,
        SOPInstanceUID=original.SOPInstanceUID,
        PatientID="PID-2",
        PatientName="Roe^Richard",
    )

    refused = stow(uploader, corrected)
    assert (refused.status_code, failure_reasons(refused)) == (409, [0x0110])

    assert delete(uploader, url(original, "instance")).status_code == 204
    stored = stow(uploader, corrected)

    assert stored.status_code == 200, stored.json()
    study = Study.objects.select_related("patient").get()
    assert (study.patient.patient_id, study.patient.name) == ("PID-2", "Roe^Richard")
    assert Instance.objects.get().sop_instance_uid == original.SOPInstanceUID


# -- the study page -------------------------------------------------------------------------------


def _page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_study_page_offers_delete_only_to_those_who_may_and_asks_for_confirmation(uploader, member):
    first, _second, _mr = two_series_study(uploader)
    page = f"/studies/{first.StudyInstanceUID}/"
    action = f"/studies/{first.StudyInstanceUID}/delete/"
    assert action not in _page_client(member).get(page).content.decode()
    assert _page_client(member).post(action, {"confirm": "yes"}).status_code == 403

    client = _page_client(uploader)
    assert action in client.get(page).content.decode()
    unconfirmed = client.post(action, follow=True)
    assert "I understand" in unconfirmed.content.decode() and Study.objects.exists()

    confirmed = client.post(action, {"confirm": "yes"}, follow=True)
    assert confirmed.redirect_chain[-1][0] == "/studies/"
    assert "Study deleted: 2 series, 3 instances" in confirmed.content.decode()
    assert not Study.objects.exists()


def test_study_page_says_why_a_consulted_study_cannot_be_deleted(uploader, outsider):
    first, _second, _mr = two_series_study(uploader)
    consult = ConsultFactory(requester=uploader, study=Study.objects.get(), state="submitted")
    content = _page_client(uploader).get(f"/studies/{first.StudyInstanceUID}/").content.decode()
    assert f"Consult #{consult.pk}" in content and "cannot be deleted" in content
    assert f"/studies/{first.StudyInstanceUID}/delete/" not in content
    assert (
        _page_client(outsider).post(f"/studies/{first.StudyInstanceUID}/delete/", {"confirm": "yes"}).status_code == 404
    )

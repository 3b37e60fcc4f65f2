"""Access history: every access path writes its event, image fetches are summarised, nobody can
change or delete an event, and each caller reads only the history they may see."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from studies import audit, sharing
from studies.models import AccessEvent, AccessEventImmutableError, Patient, Study
from tests.studies.test_dicomweb_helpers import store_dataset, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    cache.clear()
    return settings.MEDIA_ROOT


@pytest.fixture
def ct(physician, patient_user):
    ds = store_dataset(physician)
    Patient.objects.filter(studies__study_instance_uid=ds.StudyInstanceUID).update(account=patient_user)
    return ds


@pytest.fixture
def study(ct) -> Study:
    return Study.objects.get(study_instance_uid=ct.StudyInstanceUID)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def events(action: str):
    return AccessEvent.objects.filter(action=action)


def consume(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def instance_path(ct) -> str:
    return f"studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}"


# --- every access path writes its event -------------------------------------------------------


def test_study_page_writes_study_view(physician, study):
    response = signed_in(physician).get(reverse("studies:detail", args=[study.study_instance_uid]))
    assert response.status_code == 200
    event = events("study_view").get()
    assert event.user == physician and event.study == study and event.actor == physician.email
    assert event.ip == "127.0.0.1"


def test_viewer_page_writes_viewer_load(physician, study):
    assert signed_in(physician).get(reverse("studies:viewer", args=[study.study_instance_uid])).status_code == 200
    assert events("viewer_load").get().user == physician


@pytest.mark.parametrize(
    ("suffix", "action", "accept"),
    [
        ("", "wado_retrieve", "multipart/related; type=application/dicom"),
        ("/metadata", "metadata", "application/dicom+json"),
        ("/frames/1", "frames", "multipart/related; type=application/octet-stream"),
        ("/rendered", "rendered", "image/png"),
        ("/thumbnail", "thumbnail", "image/png"),
    ],
)
def test_dicomweb_reads_write_their_event(physician, ct, study, suffix, action, accept):
    response = token_client(physician).get(f"/dicomweb/{instance_path(ct)}{suffix}", HTTP_ACCEPT=accept)
    assert response.status_code == 200, consume(response)
    consume(response)
    event = events(action).get()
    assert event.user == physician and event.study == study and event.object_id == ct.SOPInstanceUID


def test_study_retrieve_through_dicomweb_names_the_study(physician, ct, study):
    consume(token_client(physician).get(f"/dicomweb/studies/{ct.StudyInstanceUID}"))
    assert events("wado_retrieve").get().object_id == ct.StudyInstanceUID


def test_frames_are_summarised_per_viewing_session(physician, ct):
    client = token_client(physician)
    for _ in range(5):
        consume(client.get(f"/dicomweb/{instance_path(ct)}/frames/1"))
    assert events("frames").count() == 1
    cache.clear()  # the summary window has passed
    consume(client.get(f"/dicomweb/{instance_path(ct)}/frames/1"))
    assert events("frames").count() == 2


def test_refused_dicomweb_reads_write_nothing(outsider, ct):
    assert token_client(outsider).get(f"/dicomweb/{instance_path(ct)}/metadata").status_code == 404
    assert not AccessEvent.objects.exists()


def test_thumbnail_and_file_urls_write_their_events(physician, study, ct):
    from studies.models import Instance
    from studies.tasks import render_instance

    instance = Instance.objects.get(sop_instance_uid=ct.SOPInstanceUID)
    if instance.status != Instance.Status.READY:
        render_instance(instance_pk=instance.pk)
    client = signed_in(physician)
    consume(client.get(reverse("studies:thumbnail", args=[study.study_instance_uid, ct.SOPInstanceUID])))
    consume(client.get(reverse("studies:file", args=[study.study_instance_uid, ct.SOPInstanceUID])))
    assert events("thumbnail").get().object_id == ct.SOPInstanceUID
    assert events("file").get().object_id == ct.SOPInstanceUID


def test_study_zip_download_writes_download(patient_user, study):
    response = signed_in(patient_user).get(reverse("studies:download", args=[study.study_instance_uid]))
    assert response.status_code == 200
    assert response.streaming  # written as it is sent, never built in memory
    import zipfile

    archive = zipfile.ZipFile(io.BytesIO(consume(response)))
    assert archive.testzip() is None
    assert "index.html" in archive.namelist()
    assert events("download").get().user == patient_user


def test_api_study_detail_writes_api_read(auth_client, physician, study):
    answer = auth_client(physician).get(f"/api/v1/studies/{study.study_instance_uid}/")
    assert answer.status_code == 200
    assert answer.json()["study_instance_uid"] == study.study_instance_uid
    assert events("api_read").get().user == physician


def test_api_study_detail_of_someone_elses_study_is_404(auth_client, outsider, study):
    assert auth_client(outsider).get(f"/api/v1/studies/{study.study_instance_uid}/").status_code == 404
    assert not events("api_read").exists()


def test_share_link_open_and_its_image_reads_are_recorded_against_the_link(physician, ct, study):
    token = sharing.create_share(study=study, by=physician).token
    browser = Client()
    browser.get(f"/s/{token}/")
    consume(browser.get(f"/s/{token}/dicomweb/{instance_path(ct)}/frames/1"))
    opened, frames = events("share_open").get(), events("frames").get()
    assert opened.share_link_id == frames.share_link_id is not None
    assert opened.user is None and opened.actor.startswith("Share link ")


# --- append-only ------------------------------------------------------------------------------


def test_access_event_cannot_be_changed_or_deleted(physician, study):
    event = audit.record(_request(), AccessEvent.Action.STUDY_VIEW, study, user=physician)
    event.action = "download"
    with pytest.raises(AccessEventImmutableError):
        event.save()
    with pytest.raises(AccessEventImmutableError):
        event.delete()
    with pytest.raises(AccessEventImmutableError):
        AccessEvent.objects.filter(pk=event.pk).update(action="download")
    with pytest.raises(AccessEventImmutableError):
        AccessEvent.objects.all().delete()
    assert AccessEvent.objects.get(pk=event.pk).action == "study_view"


def test_admin_offers_no_way_to_add_change_or_delete_events(admin_user, physician, study):
    event = audit.record(_request(), AccessEvent.Action.STUDY_VIEW, study, user=physician)
    client = signed_in(admin_user)
    assert client.get(reverse("admin:studies_accessevent_changelist")).status_code == 200
    assert client.get(reverse("admin:studies_accessevent_add")).status_code == 403
    change = reverse("admin:studies_accessevent_change", args=[event.pk])
    assert client.post(change, {"action": "download"}).status_code == 403
    assert client.post(reverse("admin:studies_accessevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert AccessEvent.objects.get(pk=event.pk).action == "study_view"


def _request():
    from django.test import RequestFactory

    return RequestFactory().get("/")


# --- who reads which history ------------------------------------------------------------------


def test_patient_reads_the_history_of_their_own_study(auth_client, physician, patient_user, study):
    signed_in(physician).get(reverse("studies:detail", args=[study.study_instance_uid]))
    answer = auth_client(patient_user).get("/api/v1/access-events/", {"study_uid": study.study_instance_uid})
    assert answer.status_code == 200
    rows = answer.json()["results"]
    assert [(r["actor"], r["action"]) for r in rows] == [(physician.email, "study_view")]
    assert answer.json()["count"] == 1


def test_patient_asking_for_another_patients_events_gets_404(auth_client, physician, study):
    from tests.factories import UserFactory

    signed_in(physician).get(reverse("studies:detail", args=[study.study_instance_uid]))
    stranger = UserFactory(role="patient", email="stranger@example.com")
    answer = auth_client(stranger).get("/api/v1/access-events/", {"study_uid": study.study_instance_uid})
    assert answer.status_code == 404
    assert auth_client(stranger).get("/api/v1/access-events/").json()["results"] == []


def test_clinician_who_only_looked_does_not_read_the_history(auth_client, physician, colleague, study):
    from studies.models import AccessGrant
    from studies.permissions import grant_access

    grant_access(user=colleague, study=study, reason=AccessGrant.Reason.SHARED)
    signed_in(colleague).get(reverse("studies:detail", args=[study.study_instance_uid]))
    assert auth_client(colleague).get("/api/v1/access-events/").json()["results"] == []
    uploader_rows = auth_client(physician).get("/api/v1/access-events/").json()["results"]
    assert [r["actor"] for r in uploader_rows] == [colleague.email]


def test_admin_reads_everything_and_bad_filters_are_400(auth_client, admin_user, physician, study):
    signed_in(physician).get(reverse("studies:detail", args=[study.study_instance_uid]))
    api = auth_client(admin_user)
    assert api.get("/api/v1/access-events/").json()["count"] == 1
    assert api.get("/api/v1/access-events/", {"action": "nonsense"}).status_code == 400
    assert api.get("/api/v1/access-events/", {"share_link": "x"}).status_code == 400
    assert api.get("/api/v1/access-events/", {"action": "study_view"}).json()["count"] == 1


def test_csv_export_is_for_administrators_only(admin_user, physician, patient_user, study):
    signed_in(physician).get(reverse("studies:detail", args=[study.study_instance_uid]))
    url = reverse("studies:access-history")
    assert signed_in(physician).get(url, {"format": "csv"}).status_code == 404
    assert signed_in(patient_user).get(url, {"format": "csv"}).status_code == 404
    assert Client().get(url, {"format": "csv"}).status_code == 302
    response = signed_in(admin_user).get(url, {"format": "csv", "q": physician.email})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(consume(response).decode())))
    assert rows[0][:3] == ["at", "actor", "action"]
    assert [(r[1], r[2]) for r in rows[1:]] == [(physician.email, "study_view")]


def test_admin_history_page_searches_and_refuses_bad_dates(admin_user, physician, study):
    signed_in(physician).get(reverse("studies:detail", args=[study.study_instance_uid]))
    client = signed_in(admin_user)
    page = client.get(reverse("studies:access-history"), {"action": "study_view"})
    assert page.status_code == 200 and physician.email.encode() in page.content
    assert client.get(reverse("studies:access-history"), {"date_from": "yesterday"}).status_code == 400


def test_admin_history_names_patient_study_and_actor_in_words_and_filters_by_patient(admin_user, physician, study):
    physician.name = "Rita Referrer"
    physician.save(update_fields=["name"])
    Study.objects.filter(pk=study.pk).update(description="Chest CT", modalities="CT\\DOC")
    signed_in(physician).get(reverse("studies:detail", args=[study.study_instance_uid]))
    client = signed_in(admin_user)
    page = client.get(reverse("studies:access-history")).content.decode()
    patient = study.patient
    assert "Rita Referrer" in page and "(physician)" in page
    assert '<td data-label="What">Opened the study page' in page
    assert patient.display_name in page and f"ID {patient.patient_id}" in page
    assert "Chest CT" in page and "CT, Document (PDF)" in page
    found = client.get(reverse("studies:access-history"), {"patient": patient.patient_id}).content.decode()
    assert "Opened the study page" in found
    by_name = client.get(reverse("studies:access-history"), {"patient": patient.display_name.lower()}).content
    assert b"Opened the study page" in by_name
    missing = client.get(reverse("studies:access-history"), {"patient": "nobody-by-this-name"}).content.decode()
    assert "No events match." in missing


def test_csv_cells_that_look_like_formulas_are_defused(admin_user, study):
    from django.test import RequestFactory

    request = RequestFactory().get("/", HTTP_USER_AGENT="=HYPERLINK(evil)")
    audit.record(request, AccessEvent.Action.STUDY_VIEW, study, user=admin_user)
    response = signed_in(admin_user).get(reverse("studies:access-history"), {"format": "csv"})
    text = consume(response).decode()
    assert "'=HYPERLINK(evil)" in text


def test_a_csv_export_longer_than_a_page_comes_whole_and_in_order(admin_user, physician, study, monkeypatch):
    """Pages follow each other by time and key, so events of the same instant are neither lost nor
    repeated at a page's edge."""
    from django.test import RequestFactory
    from django.utils import timezone

    monkeypatch.setattr(audit, "EVENTS_PER_QUERY", 2)
    same_instant = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: same_instant)
    for number in range(5):
        request = RequestFactory().get("/", HTTP_USER_AGENT=f"agent {number}")
        audit.record(request, AccessEvent.Action.STUDY_VIEW, study, user=physician)
    response = signed_in(admin_user).get(reverse("studies:access-history"), {"format": "csv", "q": physician.email})
    rows = list(csv.reader(io.StringIO(consume(response).decode())))
    agents = [row[rows[0].index("user_agent")] for row in rows[1:]]
    assert agents == [f"agent {number}" for number in range(5)]

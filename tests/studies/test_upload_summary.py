"""What the upload page shows about the studies an upload's files went to
(``/studies/upload/summary.json``), and the page's upload-and-ask mode (``?then=<action>``)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from studies import panels
from tests.studies.test_pages import make_study

pytestmark = pytest.mark.django_db
URL = "/studies/upload/summary.json"


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def summary(client, *uids, since=None):
    since = since or (timezone.now() - dt.timedelta(minutes=5))
    return client.get(URL, {"since": since.isoformat(), "study": list(uids)})


def test_summary_names_each_study_with_its_state_counts_and_actions(physician):
    study = make_study(physician, description="CT chest", modality="CT")
    body = summary(signed_in(physician), study.study_instance_uid).json()
    (info,) = body["studies"]
    assert info["study_instance_uid"] == study.study_instance_uid
    assert info["description"] == "CT chest"
    assert info["modalities"] == ["CT"]
    assert info["is_new"] is True
    assert info["url"] == reverse("studies:detail", args=[study.study_instance_uid])
    # consultations registers "Ask for a second opinion" for physicians.
    assert {"name": "second-opinion", "label": "Ask for a second opinion", "primary": True}.items() <= (
        info["actions"][0].items()
    )
    assert info["actions"][0]["url"] == reverse("consultations:new", args=[study.study_instance_uid])


def test_a_study_older_than_the_page_is_not_new(physician):
    study = make_study(physician)
    body = summary(signed_in(physician), study.study_instance_uid, since=timezone.now() + dt.timedelta(seconds=1))
    assert body.json()["studies"][0]["is_new"] is False


def test_summary_leaves_out_studies_the_user_may_not_see(physician, outsider):
    study = make_study(physician)
    response = summary(signed_in(outsider), study.study_instance_uid, "1.2.3.4")
    assert response.status_code == 200
    assert response.json() == {"studies": []}


def test_summary_refuses_bad_input(physician):
    client = signed_in(physician)
    study = make_study(physician)
    assert client.get(URL, {"study": study.study_instance_uid}).status_code == 400
    assert client.get(URL, {"since": "yesterday", "study": study.study_instance_uid}).status_code == 400
    assert client.get(URL, {"since": "2026-01-01T10:00:00", "study": study.study_instance_uid}).status_code == 400
    assert summary(client).status_code == 400
    assert summary(client, *[f"1.2.{n}" for n in range(51)]).status_code == 400


def test_summary_needs_a_signed_in_user(physician):
    study = make_study(physician)
    response = Client().get(URL, {"since": timezone.now().isoformat(), "study": study.study_instance_uid})
    assert response.status_code == 302


def test_summary_offers_a_patient_no_ask_action(patient_user):
    from tests.studies.test_pages import make_patient

    study = make_study(patient=make_patient(account=patient_user))
    body = summary(signed_in(patient_user), study.study_instance_uid).json()
    assert body["studies"][0]["actions"] == []


def test_upload_page_keeps_a_registered_next_step_and_drops_an_unknown_one(physician):
    client = signed_in(physician)
    assert 'data-then="second-opinion"' in client.get("/studies/upload/?then=second-opinion").content.decode()
    assert 'data-then=""' in client.get("/studies/upload/?then=delete-everything").content.decode()


def test_summary_works_with_nothing_registered(physician, monkeypatch):
    monkeypatch.setattr(panels, "_study_actions", {})
    study = make_study(physician)
    assert summary(signed_in(physician), study.study_instance_uid).json()["studies"][0]["actions"] == []
    page = signed_in(physician).get("/studies/upload/?then=second-opinion").content.decode()
    assert 'data-then=""' in page


def test_drop_zone_is_a_keyboard_button(physician):
    html = signed_in(physician).get("/studies/upload/").content.decode()
    assert 'id="upload-drop" tabindex="0" role="button"' in html


def test_upload_api_answers_200_for_an_all_refused_upload_when_asked_per_file(physician, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.MEDIA_ROOT = tmp_path / "media"
    client = signed_in(physician)

    def send(**extra):
        upload = SimpleUploadedFile("notes.txt", b"not an image " * 20)
        return client.post("/api/v1/uploads/", {"files": [upload], **extra})

    plain = send()
    assert plain.status_code == 400 and plain.json()["refused"] == 1
    per_file = send(per_file="1")
    assert per_file.status_code == 200
    assert per_file.json()["results"][0]["code"] == "not_dicom"

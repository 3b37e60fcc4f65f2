"""Stored DICOM files and thumbnails: only through permission-checked URLs, 404 for everyone else."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from studies.models import AccessGrant, Instance
from studies.permissions import grant_access
from tests.studies.test_pages import (
    DICOM_BYTES,
    add_instance,
    make_patient,
    make_study,
    media_root,
    png_bytes,
    signed_in,
)

__all__ = ["media_root", "signed_in"]


def first_instance(study, status: str = Instance.Status.READY) -> Instance:
    return Instance.objects.filter(series__study=study, status=status).order_by("instance_number").first()


def thumbnail_url(study, instance) -> str:
    return reverse("studies:thumbnail", args=[study.study_instance_uid, instance.sop_instance_uid])


def file_url(study, instance) -> str:
    return reverse("studies:file", args=[study.study_instance_uid, instance.sop_instance_uid])


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_owner_gets_thumbnail_png_privately_cached(signed_in, physician):
    study = make_study(physician)
    instance = first_instance(study)
    response = signed_in(physician).get(thumbnail_url(study, instance))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert "private" in response["Cache-Control"]
    with default_storage.open(instance.thumbnail.name, "rb") as stored:
        assert body(response) == stored.read()


def test_owner_downloads_dicom_file_as_attachment(signed_in, physician):
    study = make_study(physician)
    instance = first_instance(study)
    response = signed_in(physician).get(file_url(study, instance))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom"
    assert response["Content-Disposition"] == f'attachment; filename="{instance.sop_instance_uid}.dcm"'
    assert "private" in response["Cache-Control"]
    assert body(response) == DICOM_BYTES


@pytest.mark.parametrize("kind", ["thumbnail", "file"])
def test_outsider_physician_gets_404_for_instance_media(signed_in, physician, outsider, kind):
    study = make_study(physician)
    url = (thumbnail_url if kind == "thumbnail" else file_url)(study, first_instance(study))
    assert signed_in(outsider).get(url).status_code == 404


@pytest.mark.parametrize("kind", ["thumbnail", "file"])
def test_unlinked_patient_gets_404_for_instance_media(signed_in, physician, patient_user, kind):
    study = make_study(physician, patient=make_patient("Doe^Jane"))
    url = (thumbnail_url if kind == "thumbnail" else file_url)(study, first_instance(study))
    assert signed_in(patient_user).get(url).status_code == 404


@pytest.mark.parametrize("kind", ["thumbnail", "file"])
def test_linked_patient_gets_their_instance_media(signed_in, physician, patient_user, kind):
    study = make_study(physician, patient=make_patient("Patient^Pat", account=patient_user))
    url = (thumbnail_url if kind == "thumbnail" else file_url)(study, first_instance(study))
    assert signed_in(patient_user).get(url).status_code == 200


@pytest.mark.parametrize("kind", ["thumbnail", "file"])
def test_admin_gets_any_instance_media(signed_in, physician, admin_user, kind):
    study = make_study(physician)
    url = (thumbnail_url if kind == "thumbnail" else file_url)(study, first_instance(study))
    assert signed_in(admin_user).get(url).status_code == 200


def test_shared_colleague_gets_instance_media(signed_in, physician, colleague):
    study = make_study(physician)
    grant_access(user=colleague, study=study, reason=AccessGrant.Reason.SHARED, granted_by=physician)
    assert signed_in(colleague).get(thumbnail_url(study, first_instance(study))).status_code == 200


def test_instance_of_another_study_is_404_even_when_both_are_visible(signed_in, physician):
    mine = make_study(physician)
    other = make_study(physician)
    url = reverse("studies:thumbnail", args=[mine.study_instance_uid, first_instance(other).sop_instance_uid])
    assert signed_in(physician).get(url).status_code == 404


def test_visible_study_does_not_open_an_invisible_studys_instance(signed_in, physician, outsider):
    mine = make_study(physician)
    theirs = make_study(outsider)
    url = reverse("studies:file", args=[mine.study_instance_uid, first_instance(theirs).sop_instance_uid])
    assert signed_in(physician).get(url).status_code == 404


@pytest.mark.parametrize("status", [Instance.Status.PENDING, Instance.Status.FAILED, Instance.Status.NO_IMAGE])
def test_thumbnail_of_instance_without_one_is_404(signed_in, physician, status):
    study = make_study(physician, statuses=(status,))
    assert signed_in(physician).get(thumbnail_url(study, first_instance(study, status))).status_code == 404


def test_missing_stored_file_is_404_not_a_server_error(signed_in, physician):
    study = make_study(physician)
    instance = first_instance(study)
    default_storage.delete(instance.file.name)
    default_storage.delete(instance.thumbnail.name)
    client = signed_in(physician)
    assert client.get(file_url(study, instance)).status_code == 404
    assert client.get(thumbnail_url(study, instance)).status_code == 404


def test_unknown_instance_uid_is_404(signed_in, physician):
    study = make_study(physician)
    url = reverse("studies:thumbnail", args=[study.study_instance_uid, "1.2.3.999"])
    assert signed_in(physician).get(url).status_code == 404


def test_anonymous_user_gets_no_media(client, physician):
    study = make_study(physician)
    instance = first_instance(study)
    for url in (thumbnail_url(study, instance), file_url(study, instance)):
        response = client.get(url)
        assert response.status_code == 302
        assert reverse("account_login") in response["Location"]


def test_media_storage_is_not_served_publicly(signed_in, physician):
    study = make_study(physician)
    instance = first_instance(study)
    client = signed_in(physician)
    assert client.get(f"/media/{instance.thumbnail.name}").status_code == 404
    assert client.get(f"/media/{instance.file.name}").status_code == 404


def test_media_urls_reject_writes(signed_in, physician):
    study = make_study(physician)
    instance = first_instance(study)
    client = signed_in(physician)
    assert client.post(thumbnail_url(study, instance)).status_code == 405
    assert client.delete(file_url(study, instance)).status_code == 405


def test_late_thumbnail_is_served_once_rendered(signed_in, physician):
    study = make_study(physician, statuses=())
    instance = add_instance(study.series.get(), status=Instance.Status.PENDING)
    client = signed_in(physician)
    assert client.get(thumbnail_url(study, instance)).status_code == 404
    instance.mark_rendered(default_storage.save("thumbnails/late.png", ContentFile(png_bytes())))
    assert client.get(thumbnail_url(study, instance)).status_code == 200

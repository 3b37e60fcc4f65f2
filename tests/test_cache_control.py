"""Answers that carry patient data are never kept by a browser's or a proxy's cache
(``Cache-Control: no-store``, teleconsult.privacy): pages, the API, DICOMweb metadata, instances
and rendered frames, thumbnails, report PDFs, CSV exports and everything under a share link.
Static files keep their own caching."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from studies import sharing
from studies.models import Instance, Study
from teleconsult.privacy import NoStoreMiddleware
from tests.consultations.conftest import accepted, consult, draft  # noqa: F401 (fixtures)
from tests.consultations.test_pages import sign
from tests.factories import make_study as make_consult_study
from tests.studies.test_dicomweb_helpers import store_dataset, token_client
from tests.studies.test_pages import make_study

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def study(physician, patient_user):
    """The study a consult is asked on (the consult fixtures need it)."""
    return make_consult_study(uploader=physician, patient_account=patient_user)


@pytest.fixture
def ct(physician):
    return store_dataset(physician)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def instance_path(ds) -> str:
    return f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def assert_not_stored(response, status: int = 200) -> None:
    assert response.status_code == status
    directives = {part.strip() for part in response["Cache-Control"].split(",")}
    assert "no-store" in directives
    assert not any(d.startswith("max-age") and d != "max-age=0" for d in directives), directives
    if response.streaming:
        b"".join(response.streaming_content)


def test_study_page_is_not_stored(physician, ct):
    assert_not_stored(signed_in(physician).get(reverse("studies:detail", args=[ct.StudyInstanceUID])))


def test_api_answer_is_not_stored(physician, ct):
    assert_not_stored(token_client(physician).get(f"/api/v1/studies/{ct.StudyInstanceUID}/"))


def test_api_refusal_is_not_stored_either(outsider, ct):
    assert_not_stored(token_client(outsider).get(f"/api/v1/studies/{ct.StudyInstanceUID}/"), status=404)


def test_dicomweb_metadata_is_not_stored(physician, ct):
    assert_not_stored(token_client(physician).get(f"/dicomweb/studies/{ct.StudyInstanceUID}/metadata"))


def test_dicomweb_instance_is_not_stored(physician, ct):
    assert_not_stored(token_client(physician).get(instance_path(ct)))


def test_rendered_frame_is_not_stored(physician, ct):
    response = token_client(physician).get(f"{instance_path(ct)}/frames/1/rendered", HTTP_ACCEPT="image/png")
    assert_not_stored(response)
    assert response["Content-Type"] == "image/png"


def test_rendered_frame_through_the_session_is_not_stored(physician, ct):
    assert_not_stored(signed_in(physician).get(f"{instance_path(ct)}/frames/1/rendered", HTTP_ACCEPT="image/png"))


def test_thumbnail_is_not_stored(physician):
    made = make_study(physician)
    instance = Instance.objects.filter(series__study=made, status=Instance.Status.READY).first()
    url = reverse("studies:thumbnail", args=[made.study_instance_uid, instance.sop_instance_uid])
    assert_not_stored(signed_in(physician).get(url))


def test_report_pdf_is_not_stored(physician, specialist, accepted, password):  # noqa: F811 (fixture)
    sign(accepted, specialist, password)
    response = signed_in(physician).get(f"/consults/{accepted.pk}/report.pdf")
    assert response["Content-Type"] == "application/pdf"
    assert_not_stored(response)


def test_access_history_csv_is_not_stored(admin_user, physician, ct):
    signed_in(physician).get(reverse("studies:detail", args=[ct.StudyInstanceUID]))
    response = signed_in(admin_user).get(reverse("studies:access-history"), {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert_not_stored(response)


def test_share_link_page_and_its_images_are_not_stored(physician, ct):
    shared = Study.objects.get(study_instance_uid=ct.StudyInstanceUID)
    token = sharing.create_share(study=shared, by=physician).token
    browser = Client()
    root = f"/s/{token}/dicomweb/studies/{ct.StudyInstanceUID}"
    assert_not_stored(browser.get(f"/s/{token}/"))
    assert_not_stored(browser.get(f"{root}/metadata"))
    frame = f"{root}/series/{ct.SeriesInstanceUID}/instances/{ct.SOPInstanceUID}/frames/1"
    assert_not_stored(browser.get(f"{frame}/rendered", HTTP_ACCEPT="image/png"))
    assert_not_stored(browser.get(frame))


@pytest.mark.parametrize("path", ["/static/css/portal.css", "/favicon.ico"])
def test_static_files_keep_their_own_caching(path):
    def static_answer(request):
        response = HttpResponse("body")
        response["Cache-Control"] = "max-age=315360000, public, immutable"
        return response

    response = NoStoreMiddleware(static_answer)(RequestFactory().get(path))
    assert response["Cache-Control"] == "max-age=315360000, public, immutable"

"""The browser upload page at /studies/upload/ and the request its script sends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from studies.models import Instance
from tests.studies import dicom_factory as f

PAGE = "/studies/upload/"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def signed_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def test_physician_gets_the_page_with_its_module_script_and_no_inline_script(physician):
    response = signed_in(physician).get(PAGE)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-api-url="/api/v1/uploads/"' in html
    assert "webkitdirectory" in html
    assert 'name="csrfmiddlewaretoken"' in html
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts, "the page loads its script"
    assert all("src=" in tag for tag in scripts)
    assert re.search(r'<script type="module" src="[^"]*js/upload\.js"', html)
    assert "style=" not in html


def test_page_script_and_styles_exist():
    static = Path(settings.BASE_DIR) / "static"
    script = (static / "js" / "upload.js").read_text()

    assert "webkitGetAsEntry" in script
    assert 'upload.addEventListener("progress"' in script
    assert "X-CSRFToken" in script
    assert (static / "css" / "upload.css").exists()


def test_specialist_gets_the_page(specialist):
    assert signed_in(specialist).get(PAGE).status_code == 200


def test_patient_is_refused_with_a_clear_message(patient_user):
    response = signed_in(patient_user).get(PAGE)

    assert response.status_code == 403
    assert "Patients cannot upload" in response.content.decode()
    assert "upload.js" not in response.content.decode()


def test_anonymous_visitor_is_sent_to_sign_in(db):
    response = Client().get(PAGE)

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_post_to_the_page_is_not_allowed(physician):
    assert signed_in(physician).post(PAGE).status_code == 405


def test_page_upload_request_with_session_and_csrf_token_stores_the_file(physician):
    client = signed_in(physician, enforce_csrf_checks=True)
    html = client.get(PAGE).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    data = f.make_ct()

    response = client.post(
        "/api/v1/uploads/",
        {"files": SimpleUploadedFile("folder/ct.dcm", data, "application/dicom")},
        HTTP_X_CSRFTOKEN=token,
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["results"][0]["status"] == "stored"
    assert Instance.objects.count() == 1


def test_page_upload_request_without_csrf_token_is_refused(physician):
    client = signed_in(physician, enforce_csrf_checks=True)
    response = client.post(
        "/api/v1/uploads/", {"files": SimpleUploadedFile("ct.dcm", f.make_ct(), "application/dicom")}
    )

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Instance.objects.exists()

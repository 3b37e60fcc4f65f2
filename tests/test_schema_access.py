"""The API's description (schema, Swagger UI, ReDoc) needs a signed-in user or an API token, in
production (DEBUG off) as in development."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from tests.studies.test_dicomweb_helpers import token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("production_mode")]

PAGES = ["api-docs", "api-redoc"]


@pytest.fixture
def production_mode():
    with override_settings(DEBUG=False):
        yield


def test_schema_is_401_without_credentials_and_read_with_a_token(physician):
    anonymous = Client().get(reverse("api-schema"))
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert b"/api/v1/consults/" not in anonymous.content

    response = token_client(physician).get(reverse("api-schema"), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/api/v1/consults/" in response.json()["paths"]


@pytest.mark.parametrize("name", PAGES)
def test_documentation_page_sends_anonymous_to_sign_in_and_opens_when_signed_in(patient_user, name):
    url = reverse(name)
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?next={url}"

    client = Client()
    client.force_login(patient_user)
    response = client.get(url)
    assert response.status_code == 200
    assert b"<title>teleconsult API</title>" in response.content
    assert client.get(reverse("api-schema")).status_code == 200  # what the page loads

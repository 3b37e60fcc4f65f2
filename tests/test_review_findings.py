"""Defects found in review, each shown by a test that failed on the code before its fix: a Range bound
of thousands of digits, webhook addresses that carry a private IPv4 address, formulas in the
dashboard's CSV cells, NUL bytes in patients' questions and in FHIR search values. A new finding is
added as ``xfail(strict=True)`` with the defect as its reason; its fix drops the marker. Tests that
reach PostgreSQL's refusal of NUL bytes skip without it.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from tests.consultations.conftest import *  # noqa: F403 (the consult fixtures)
from tests.consultations.test_patient_results import signed  # noqa: F401
from tests.factories import make_study
from tests.studies.test_dicomweb_helpers import token_client
from tests.studies.test_dicomweb_transcode import bulk_instance  # noqa: F401

pytestmark = pytest.mark.django_db

API = "/api/v1/consults"
NUL = "a\x00b"


@pytest.fixture
def on_postgres(postgres):
    """These reach PostgreSQL's refusal of NUL in text; SQLite stores NUL without complaint."""
    return postgres


# -- byte ranges ------------------------------------------------------------------------------------


def test_a_range_bound_of_thousands_of_digits_is_416(physician, bulk_instance):  # noqa: F811
    _ds, url = bulk_instance
    client = token_client(physician)
    client.raise_request_exception = False
    answer = client.get(url, headers={"Accept": "application/octet-stream", "Range": "bytes=" + "9" * 5000 + "-"})
    assert answer.status_code == 416


# -- webhooks: server-side request forgery ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
        "https://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254 (metadata service)
        "https://[::7f00:1]/hook",  # IPv4-compatible 127.0.0.1
        "https://[2002:a9fe:a9fe::]/hook",  # 6to4 of 169.254.169.254
    ],
)
def test_a_webhook_to_an_address_embedding_a_private_ipv4_is_refused(settings, url):
    from consultations.webhooks import targets

    settings.TELECONSULT_WEBHOOK_ALLOWED_NETWORKS = []
    with pytest.raises(targets.WebhookTargetError):
        targets.check(url)


# -- CSV formula injection --------------------------------------------------------------------------


def test_dashboard_csv_cells_never_start_a_formula():
    from consultations.views.dashboard import csv_response

    body = csv_response([["Specialist"], ['=HYPERLINK("http://evil.example/","x")']], "due.csv").content.decode()
    assert not any(line.lstrip('"').startswith(("=", "+", "-", "@")) for line in body.splitlines()[1:])


# -- NUL bytes reaching PostgreSQL ------------------------------------------------------------------


def test_a_question_with_a_nul_byte_is_400_through_the_api(on_postgres, signed, patient_user, auth_client):  # noqa: F811
    api = auth_client(patient_user)
    api.raise_request_exception = False
    assert api.post(f"{API}/{signed.pk}/questions/", {"text": NUL}, format="json").status_code == 400


def test_a_question_or_answer_with_a_nul_byte_is_refused_on_the_pages(on_postgres, signed, patient_user, specialist):  # noqa: F811
    from consultations.models import PatientQuestion

    patient = Client(raise_request_exception=False)
    patient.force_login(patient_user)
    asked = patient.post(reverse("portal:ask-question", args=[signed.pk]), {"text": NUL})
    question = PatientQuestion.objects.create(consult=signed, asked_by=patient_user, text="Can I drive?")
    team = Client(raise_request_exception=False)
    team.force_login(specialist)
    url = reverse("consultations:answer-patient-question", args=[signed.pk, question.pk])
    answered = team.post(url, {"text": NUL})
    assert asked.status_code < 500 and answered.status_code < 500


@pytest.mark.parametrize(
    "query",
    [
        "Patient?name=a%00b",
        "Patient?identifier=a%00b",
        "Practitioner?email=a%00b",
        "ImagingStudy?_id=a%00b",
        "ServiceRequest?patient=Patient/" + "9" * 5000,
        "Patient?_offset=99999999999999999999999",
    ],
)
def test_fhir_searches_refuse_malformed_values_with_a_400(on_postgres, physician, auth_client, query):
    api = auth_client(physician)
    api.raise_request_exception = False
    answer = api.get("/fhir/r4/" + query)
    assert answer.status_code == 400, answer.status_code


def test_fhir_create_refuses_nul_and_huge_ids_already(physician, auth_client):
    """Control: the ServiceRequest create path refuses these cleanly (422), unlike search."""
    from tests.fhir.test_api import service_request

    study = make_study(uploader=physician)
    api = auth_client(physician)
    for changes in (
        {"performerType": None, "performer": [{"reference": "Practitioner/99999999999999999999999"}]},
        {"note": [{"text": NUL}]},
    ):
        body = json.dumps(service_request(study, **changes))
        answer = api.post("/fhir/r4/ServiceRequest", body, content_type="application/fhir+json")
        assert answer.status_code == 422, changes

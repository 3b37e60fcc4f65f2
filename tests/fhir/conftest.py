"""Fixtures for the FHIR interface: token clients, a study of the physician's practice with a
patient record that has an issuer, a consult and its signed report."""

from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from consultations import actions, reports
from tests.factories import ConsultFactory, make_study

FHIR = "/fhir/r4"
FHIR_JSON = "application/fhir+json"


def token_for(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


@pytest.fixture
def fhir_client():
    """``fhir_client(user, scheme="Token")``: an API client sending the user's portal token."""

    def make(user, scheme: str = "Token") -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {token_for(user)}")
        return client

    return make


@pytest.fixture
def study(physician):
    study = make_study(uploader=physician, modalities="CT")
    patient = study.patient
    patient.issuer, patient.sex, patient.birth_date = "1.2.840.99.1", "F", dt.date(1970, 5, 4)
    patient.name = "Doe^Jane^Q"
    patient.save()
    study.study_date, study.study_time, study.accession_number = dt.date(2024, 3, 1), dt.time(9, 30), "ACC-1"
    study.num_series, study.num_instances = 1, 3
    study.save()
    study.series.update(num_instances=3, series_number=1, description="Axial", body_part="HEAD")
    return study


@pytest.fixture
def consult(physician, study, specialist, django_capture_on_commit_callbacks):
    draft = ConsultFactory(requester=physician, study=study)
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(draft, by=physician)
    draft.refresh_from_db()
    return draft


def sign(consult, specialist, password, **fields):
    values = {"findings": "No haemorrhage.", "impression": "Normal CT head.", "agreement": "minor"}
    values.update(fields)
    reports.save_draft(consult, by=specialist, **values)
    return reports.sign_report(consult, by=specialist, password=password)


@pytest.fixture
def reported(consult, specialist, password, django_capture_on_commit_callbacks):
    """The consult accepted and its report signed by the specialist."""
    with django_capture_on_commit_callbacks(execute=True):
        actions.accept_consult(consult, by=specialist)
        sign(consult, specialist, password)
    consult.refresh_from_db()
    return consult

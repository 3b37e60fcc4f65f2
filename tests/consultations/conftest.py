"""Fixtures for consult tests: a study of the physician's, a submitted consult, helpers."""

from __future__ import annotations

import pytest

from consultations import actions
from tests.factories import ConsultFactory, SpecialistFactory, make_study


@pytest.fixture
def study(physician, patient_user):
    return make_study(uploader=physician, patient_account=patient_user)


@pytest.fixture
def other_specialist(db):
    return SpecialistFactory(email="second@example.com", name="Dr Second")


@pytest.fixture
def draft(physician, study):
    return ConsultFactory(requester=physician, study=study)


@pytest.fixture
def consult(draft, physician, specialist, django_capture_on_commit_callbacks):
    """A submitted neuroradiology consult offered to the specialist."""
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_consult(draft, by=physician)
    draft.refresh_from_db()
    return draft


@pytest.fixture
def accepted(consult, specialist, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        actions.accept_consult(consult, by=specialist)
    consult.refresh_from_db()
    return consult

"""Whose images, which study: shown on the report editor, restated when signing, and confirmed
explicitly when the patient or study changed since the consult was made or the images name someone
else (consultations.identity)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client

from consultations import identity
from consultations.models import Report
from studies.models import Instance, Study

BASE = "/api/v1/consults/"


@pytest.fixture
def drafted(accepted, specialist, auth_client):
    study = accepted.study
    Study.objects.filter(pk=study.pk).update(accession_number="ACC-77", study_date=dt.date(2026, 3, 4))
    patient = study.patient
    patient.birth_date, patient.sex = dt.date(1961, 5, 6), "F"
    patient.save()
    accepted.refresh_from_db()
    accepted.identity = identity.of_study(accepted.study)  # as if made now
    accepted.save(update_fields=["identity"])
    client = auth_client(specialist)
    client.put(f"{BASE}{accepted.pk}/report/", {"findings": "F", "impression": "I"}, format="json")
    return accepted


def test_a_consult_keeps_whose_images_it_was_asked_about(consult):
    kept = consult.identity
    assert kept["name"] == consult.study.patient.display_name
    assert kept["patient_id"] == consult.study.patient.patient_id
    assert set(kept) == {key for key, _ in identity.FIELDS}


def test_signing_an_unchanged_consult_needs_no_confirmation(drafted, specialist, auth_client, password):
    r = auth_client(specialist).post(f"{BASE}{drafted.pk}/report/sign/", {"password": password}, format="json")
    assert r.status_code == 200, r.data
    assert Report.objects.filter(consult=drafted, signed_at__isnull=False).exists()


def test_a_patient_renamed_since_the_consult_needs_explicit_confirmation(drafted, specialist, auth_client, password):
    patient = drafted.study.patient
    patient.name = "Other^Person"
    patient.save()
    client = auth_client(specialist)
    r = client.post(f"{BASE}{drafted.pk}/report/sign/", {"password": password}, format="json")
    assert r.status_code == 409 and r.data["code"] == "identity_changed"
    assert r.data["differences"][0]["field"] == "Patient" and r.data["differences"][0]["now"] == "Other Person"
    assert "confirm_identity" in r.data
    assert not Report.objects.filter(consult=drafted, signed_at__isnull=False).exists()
    r = client.post(f"{BASE}{drafted.pk}/report/sign/", {"password": password, "confirm_identity": True}, format="json")
    assert r.status_code == 200


def test_an_image_naming_someone_else_is_flagged(drafted, specialist, auth_client, password):
    series = drafted.study.series.first()
    Instance.objects.create(
        series=series,
        sop_instance_uid="1.2.3.4.5.6.7.8.9",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        metadata={"00100020": {"vr": "LO", "Value": ["SOMEONE-ELSE"]}},
    )
    changes = identity.differences(drafted)
    assert [(c.label, c.now, c.where) for c in changes] == [("Patient ID", "SOMEONE-ELSE", "in the images")]
    r = auth_client(specialist).post(f"{BASE}{drafted.pk}/report/sign/", {"password": password}, format="json")
    assert r.status_code == 409


def test_the_editor_shows_identity_and_the_signing_form_restates_and_asks_when_changed(drafted, specialist, password):
    client = Client()
    client.force_login(specialist)
    page = client.get(f"/consults/{drafted.pk}/report/").content.decode()
    for fact in ("1961-05-06", "Female", "ACC-77", "2026-03-04", drafted.study.patient.patient_id):
        assert page.count(fact) >= 2, fact  # in the header and restated in the signing form
    assert "data-identity-changes" not in page and 'name="confirm_identity"' not in page
    assert "calibrated diagnostic display" in page  # where a reading belongs, said where it is signed

    patient = drafted.study.patient
    patient.name = "Other^Person"
    patient.save()
    page = client.get(f"/consults/{drafted.pk}/report/").content.decode()
    assert "data-identity-changes" in page and 'name="confirm_identity"' in page and "Other Person" in page
    refused = client.post(f"/consults/{drafted.pk}/report/sign/", {"password": password}, follow=True)
    assert "Check whose images these are" in refused.content.decode()
    assert not Report.objects.filter(consult=drafted, signed_at__isnull=False).exists()
    client.post(f"/consults/{drafted.pk}/report/sign/", {"password": password, "confirm_identity": "on"})
    assert Report.objects.filter(consult=drafted, signed_at__isnull=False).exists()

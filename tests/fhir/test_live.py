"""FHIR R4 against a real daphne (tests/servers.py) with a FHIR client nobody here wrote (fhirpy):
read, search following ``next`` across pages, create a ServiceRequest and find the consult on the
right specialist's worklist, a signed report as a DiagnosticReport whose presentedForm downloads
the PDF, and an outsider who finds nothing. Every resource served is checked with fhir.resources."""

from __future__ import annotations

import io

import pytest
import requests
from fhir.resources.R4B import get_fhir_model_class
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound
from pypdf import PdfReader

from consultations import actions, reports
from consultations.models import ConsultRequest, State
from studies.models import Patient
from tests.factories import make_study
from tests.fhir.conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)


def checked(resource) -> dict:
    """The resource as served, validated by its fhir.resources model."""
    data = resource.serialize()
    get_fhir_model_class(data["resourceType"]).model_validate(data)
    return data


def client_for(url: str, user) -> SyncFHIRClient:
    return SyncFHIRClient(f"{url}/fhir/r4", authorization=f"Bearer {token_for(user)}")


@pytest.fixture
def people(live_user):
    physician = live_user("physician", email="fhir-physician@example.com", name="Dr Order")
    neuro = live_user("specialist", email="fhir-neuro@example.com", name="Dr Neuro")
    chest = live_user("specialist", email="fhir-chest@example.com", name="Dr Chest")
    chest.specialist_profile.specialties = ["chest"]
    chest.specialist_profile.save()
    outsider = live_user("physician", email="fhir-outsider@example.com", name="Dr Elsewhere")
    return physician, neuro, chest, outsider


def test_fhir_client_reads_pages_and_orders_a_consult_the_right_specialist_sees(live_server_url, people):
    physician, neuro, chest, outsider = people
    study = make_study(uploader=physician, modalities="MR")
    for n in range(6):
        Patient.objects.create(practice=study.practice, patient_id=f"LIVE{n}", name=f"Live^{n}")
    fhir = client_for(live_server_url, physician)

    capability = fhir.resource("CapabilityStatement", **fhir.execute("metadata", method="get"))
    assert {r["type"] for r in checked(capability)["rest"][0]["resource"]} >= {"ServiceRequest", "DiagnosticReport"}

    patients = fhir.resources("Patient").limit(2).fetch_all()  # follows Bundle.link next, two at a time
    assert len(patients) == 7 and len({p.id for p in patients}) == 7
    for patient in patients:
        checked(patient)

    imaging = checked(fhir.reference("ImagingStudy", study.study_instance_uid).to_resource())
    assert imaging["contained"][0]["connectionType"]["code"] == "dicom-wado-rs"
    assert imaging["contained"][0]["address"] == f"{live_server_url}/dicomweb"

    order = fhir.resource(
        "ServiceRequest",
        status="active",
        intent="order",
        priority="stat",
        subject={"reference": f"Patient/{study.patient_id}"},
        reasonCode=[{"text": "Demyelination or tumour?"}],
        performerType={"coding": [{"code": "neuroradiology"}]},
        supportingInfo=[{"reference": f"ImagingStudy/{study.study_instance_uid}"}],
        extension=[{"url": f"{live_server_url}/fhir/r4/StructureDefinition/jurisdiction", "valueCode": "DE"}],
    )
    order.save()
    assert order.id and checked(order)["status"] == "active"
    consult = ConsultRequest.objects.get(pk=int(order.id))
    assert consult.state == State.SUBMITTED and consult.priority == "stat"

    def worklist(user) -> list[int]:
        answer = requests.get(
            f"{live_server_url}/api/v1/consults/",
            params={"scope": "worklist"},
            headers={"Authorization": f"Bearer {token_for(user)}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return [item["id"] for item in answer.json()["results"]]

    assert worklist(neuro) == [consult.pk]
    assert worklist(chest) == []

    found = fhir.resources("ServiceRequest").search(patient=study.patient_id, status="active").fetch_all()
    assert [r.id for r in found] == [order.id]

    stranger = client_for(live_server_url, outsider)
    for kind, key in (
        ("Patient", study.patient_id),
        ("ImagingStudy", study.study_instance_uid),
        ("ServiceRequest", order.id),
    ):
        with pytest.raises(ResourceNotFound):
            stranger.reference(kind, key).to_resource()
        assert stranger.resources(kind).fetch_all() == []


def test_signed_report_reaches_the_ehr_with_its_pdf(live_server_url, people):
    physician, neuro, _chest, outsider = people
    study = make_study(uploader=physician)
    consult = ConsultRequest.objects.create(
        study=study, requester=physician, question="Any bleed?", specialty="neuroradiology", jurisdiction="DE"
    )
    actions.submit_consult(consult, by=physician)
    actions.accept_consult(consult, by=neuro)
    # Signed through the actions (the servers' password hasher is not the test process's).
    reports.save_draft(consult, by=neuro, findings="Normal brain.", impression="No bleed.", agreement="agree")
    actions.sign_report(consult, consult.current_report, by=neuro)

    fhir = client_for(live_server_url, physician)
    (report,) = fhir.resources("DiagnosticReport").search(subject=f"Patient/{study.patient_id}").fetch_all()
    body = checked(report)
    assert body["status"] == "final" and body["conclusion"] == "No bleed."
    assert body["basedOn"][0]["reference"] == f"ServiceRequest/{consult.pk}"
    assert body["extension"][0]["valueCoding"]["code"] == "agree"
    (form,) = body["presentedForm"]
    pdf = requests.get(form["url"], headers={"Authorization": f"Bearer {token_for(physician)}"}, timeout=60)
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == form["contentType"] == "application/pdf"
    assert "No bleed." in "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)

    with pytest.raises(ResourceNotFound):
        client_for(live_server_url, outsider).reference("DiagnosticReport", consult.pk).to_resource()
    stranger_pdf = requests.get(form["url"], headers={"Authorization": f"Bearer {token_for(outsider)}"}, timeout=30)
    assert stranger_pdf.status_code == 404


def test_fhir_client_sees_refusals_as_operation_outcomes(live_server_url, people):
    physician = people[0]
    study = make_study(uploader=physician)
    order = client_for(live_server_url, physician).resource(
        "ServiceRequest",
        status="active",
        intent="order",
        priority="whenever",
        subject={"reference": f"Patient/{study.patient_id}"},
        supportingInfo=[{"reference": f"ImagingStudy/{study.study_instance_uid}"}],
    )
    with pytest.raises(OperationOutcome) as refused:
        order.save()
    (issue,) = refused.value.resource["issue"]
    assert issue["expression"] == ["ServiceRequest.priority"] and "whenever" in issue["diagnostics"]
    assert not ConsultRequest.objects.exists()

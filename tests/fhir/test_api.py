"""FHIR R4 under /fhir/r4/ in process: what each resource says, who sees it (404 for outsiders,
searches never list what they may not see), search parameters and paging, ServiceRequest create
with its refusals, errors as OperationOutcome, and the access history of every read."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import OperationalError, connection
from fhir.resources.R4B import get_fhir_model_class
from rest_framework.test import APIClient

from accounts.models import Licence
from consultations import actions, reports
from consultations.models import ConsultRequest, Notification, State
from studies.models import AccessEvent, Patient
from teleconsult import database
from tests.factories import SpecialistFactory, make_study
from tests.fhir.conftest import FHIR, FHIR_JSON, sign

pytestmark = pytest.mark.django_db


def fhir(response, status: int = 200):
    """The response's resource, checked with its fhir.resources model."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(FHIR_JSON)
    body = json.loads(response.content)
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    return body


def outcome(response, status: int) -> dict:
    body = fhir(response, status)
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]


def ids(bundle: dict) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", []) if entry["search"]["mode"] == "match"]


def service_request(study, **changes) -> dict:
    body = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "priority": "urgent",
        "subject": {"reference": f"Patient/{study.patient_id}"},
        "reasonCode": [{"text": "Is there an acute bleed?"}],
        "note": [{"text": "Fall from standing height."}],
        "performerType": {"coding": [{"code": "neuroradiology"}]},
        "supportingInfo": [{"reference": f"ImagingStudy/{study.study_instance_uid}"}],
        "extension": [{"url": "http://testserver/fhir/r4/StructureDefinition/jurisdiction", "valueCode": "US-CA"}],
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def post(client: APIClient, body, content_type: str = FHIR_JSON):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(f"{FHIR}/ServiceRequest", data, content_type=content_type)


# -- the interface -------------------------------------------------------------------------------


def test_metadata_lists_exactly_what_is_served_without_signing_in(client):
    body = fhir(client.get(f"{FHIR}/metadata"))
    assert body["resourceType"] == "CapabilityStatement" and body["fhirVersion"] == "4.0.1"
    rest = body["rest"][0]
    served = {r["type"]: r for r in rest["resource"]}
    assert set(served) == {"Patient", "Practitioner", "ImagingStudy", "ServiceRequest", "DiagnosticReport"}
    assert [i["code"] for i in served["ServiceRequest"]["interaction"]] == ["read", "search-type", "create"]
    assert [i["code"] for i in served["Patient"]["interaction"]] == ["read", "search-type"]
    assert {"patient", "status", "date", "_lastUpdated"} <= {
        p["name"] for p in served["DiagnosticReport"]["searchParam"]
    }
    assert rest["security"]["service"][0]["coding"][0]["code"] == "Bearer"


def test_no_credentials_is_a_401_operation_outcome_with_a_bearer_challenge(client, study):
    response = client.get(f"{FHIR}/Patient/{study.patient_id}")
    assert outcome(response, 401)["code"] == "login"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("scheme", ["Token", "Bearer"])
def test_portal_tokens_authenticate_under_either_scheme(fhir_client, physician, study, scheme):
    body = fhir(fhir_client(physician, scheme).get(f"{FHIR}/Patient/{study.patient_id}"))
    assert body["id"] == str(study.patient_id)


def test_patient_accounts_are_refused(fhir_client, patient_user):
    assert outcome(fhir_client(patient_user).get(f"{FHIR}/Patient"), 403)["code"] == "forbidden"


def test_xml_is_not_acceptable(fhir_client, physician):
    client = fhir_client(physician)
    assert outcome(client.get(f"{FHIR}/Patient", HTTP_ACCEPT="application/fhir+xml"), 406)["code"] == "not-supported"
    assert outcome(client.get(f"{FHIR}/Patient", {"_format": "xml"}), 406)
    assert fhir(client.get(f"{FHIR}/Patient", HTTP_ACCEPT="application/fhir+json; fhirVersion=4.0"))


def test_methods_and_paths_not_served_are_405_and_404(fhir_client, physician, study):
    client = fhir_client(physician)
    assert outcome(client.put(f"{FHIR}/Patient/{study.patient_id}", {}, format="json"), 405)
    assert outcome(client.post(f"{FHIR}/Patient", "{}", content_type=FHIR_JSON), 405)["code"] == "not-supported"
    assert outcome(client.get(f"{FHIR}/Observation"), 404)["code"] == "not-supported"
    assert outcome(client.get(f"{FHIR}/Patient/{study.patient_id}/_history/1"), 404)


# -- resources -----------------------------------------------------------------------------------


def test_patient_names_its_identifier_by_issuer_oid(fhir_client, physician, study):
    body = fhir(fhir_client(physician).get(f"{FHIR}/Patient/{study.patient_id}"))
    (identifier,) = body["identifier"]
    assert identifier["system"] == "urn:oid:1.2.840.99.1" and identifier["value"] == study.patient.patient_id
    assert body["name"][0]["family"] == "Doe" and body["name"][0]["given"] == ["Jane", "Q"]
    assert body["gender"] == "female" and body["birthDate"] == "1970-05-04"
    assert body["managingOrganization"]["identifier"]["value"] == str(study.practice_id)


def test_patient_identifier_without_issuer_is_scoped_to_its_practice(fhir_client, physician, study):
    record = Patient.objects.create(practice=study.practice, patient_id="MRN-7", issuer="")
    text_issuer = Patient.objects.create(practice=study.practice, patient_id="MRN-7", issuer="ST MARY")
    client = fhir_client(physician)
    plain = fhir(client.get(f"{FHIR}/Patient/{record.pk}"))["identifier"][0]["system"]
    assert plain == f"urn:teleconsult:practice:{study.practice_id}"
    texty = fhir(client.get(f"{FHIR}/Patient/{text_issuer.pk}"))["identifier"][0]["system"]
    assert texty == f"urn:teleconsult:practice:{study.practice_id}:issuer:ST%20MARY"
    assert ids(fhir(client.get(f"{FHIR}/Patient", {"identifier": f"{plain}|MRN-7"}))) == [str(record.pk)]
    assert ids(fhir(client.get(f"{FHIR}/Patient", {"identifier": f"{texty}|MRN-7"}))) == [str(text_issuer.pk)]
    assert set(ids(fhir(client.get(f"{FHIR}/Patient", {"identifier": "MRN-7"})))) == {
        str(record.pk),
        str(text_issuer.pk),
    }
    oid = fhir(client.get(f"{FHIR}/Patient", {"identifier": f"urn:oid:1.2.840.99.1|{study.patient.patient_id}"}))
    assert ids(oid) == [str(study.patient_id)]


def test_imaging_study_has_counts_modalities_and_a_wado_rs_endpoint(fhir_client, physician, study):
    uid = study.study_instance_uid
    body = fhir(fhir_client(physician).get(f"{FHIR}/ImagingStudy/{uid}"))
    assert body["id"] == uid and body["status"] == "available"
    assert {"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"} in body["identifier"]
    assert body["numberOfSeries"] == 1 and body["numberOfInstances"] == 3
    assert body["modality"] == [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}]
    assert body["started"].startswith("2024-03-01T09:30:00")
    assert body["subject"]["reference"] == f"Patient/{study.patient_id}"
    (endpoint,) = body["contained"]
    assert body["endpoint"] == [{"reference": f"#{endpoint['id']}"}]
    assert endpoint["connectionType"]["code"] == "dicom-wado-rs"
    assert endpoint["address"] == "http://testserver/dicomweb"
    assert body["series"][0]["numberOfInstances"] == 3 and body["series"][0]["bodySite"]["display"] == "HEAD"


def test_practitioner_shows_specialties_and_verified_licences_only(fhir_client, physician, specialist):
    common = {"document": "licences/x.pdf", "document_name": "x.pdf", "document_kind": "pdf", "document_size": 1}
    Licence.objects.create(
        specialist=specialist,
        jurisdiction="DE",
        number="DE-1",
        expires_on=dt.date(2030, 1, 1),
        status="verified",
        **common,
    )
    Licence.objects.create(
        specialist=specialist, jurisdiction="FR", number="FR-1", expires_on=dt.date(2030, 1, 1), **common
    )
    body = fhir(fhir_client(physician).get(f"{FHIR}/Practitioner/{specialist.pk}"))
    codes = [q["code"]["coding"][0]["code"] for q in body["qualification"]]
    assert codes == ["neuroradiology", "general_radiology", "MD"]
    licence = body["qualification"][-1]
    assert licence["identifier"][0] == {"system": "urn:teleconsult:licence:DE", "value": "DE-1"}
    assert licence["period"]["end"] == "2030-01-01"


def test_service_request_maps_the_consult(fhir_client, physician, consult):
    body = fhir(fhir_client(physician).get(f"{FHIR}/ServiceRequest/{consult.pk}"))
    assert body["status"] == "active" and body["intent"] == "order" and body["priority"] == "routine"
    assert body["reasonCode"] == [{"text": consult.question}]
    assert body["performerType"]["coding"][0]["code"] == "neuroradiology"
    assert body["requester"]["reference"] == f"Practitioner/{physician.pk}"
    assert body["supportingInfo"][0]["reference"] == f"ImagingStudy/{consult.study.study_instance_uid}"


def test_signed_report_is_a_final_diagnostic_report_then_amended(
    fhir_client, physician, specialist, password, reported
):
    client = fhir_client(physician)
    body = fhir(client.get(f"{FHIR}/DiagnosticReport/{reported.pk}"))
    assert body["status"] == "final" and body["conclusion"] == "Normal CT head."
    assert body["basedOn"] == [{"reference": f"ServiceRequest/{reported.pk}"}]
    assert body["imagingStudy"][0]["reference"] == f"ImagingStudy/{reported.study.study_instance_uid}"
    assert body["resultsInterpreter"][0]["reference"] == f"Practitioner/{specialist.pk}"
    (grade,) = body["extension"]
    assert grade["url"] == "http://testserver/fhir/r4/StructureDefinition/agreement-grade"
    assert grade["valueCoding"]["code"] == "minor"
    (form,) = body["presentedForm"]
    assert form["contentType"] == "application/pdf"
    assert form["url"] == f"http://testserver/api/v1/consults/{reported.pk}/report/pdf/"
    assert fhir(client.get(f"{FHIR}/ServiceRequest/{reported.pk}"))["status"] == "completed"

    reports.start_addendum(reported, by=specialist, reason="Second look")
    sign(reported, specialist, password, impression="Small contusion.")
    body = fhir(client.get(f"{FHIR}/DiagnosticReport/{reported.pk}"))
    assert body["status"] == "amended" and body["conclusion"] == "Small contusion." and body["meta"]["versionId"] == "2"
    assert ids(fhir(client.get(f"{FHIR}/DiagnosticReport", {"status": "amended"}))) == [str(reported.pk)]
    assert ids(fhir(client.get(f"{FHIR}/DiagnosticReport", {"status": "final"}))) == []


def test_unsigned_report_is_no_diagnostic_report(fhir_client, physician, specialist, consult):
    actions.accept_consult(consult, by=specialist)
    reports.save_draft(consult, by=specialist, findings="Draft", impression="Draft")
    for user in (physician, specialist):
        assert outcome(fhir_client(user).get(f"{FHIR}/DiagnosticReport/{consult.pk}"), 404)["code"] == "not-found"
        assert ids(fhir(fhir_client(user).get(f"{FHIR}/DiagnosticReport"))) == []


# -- who sees what -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Patient", "ImagingStudy", "ServiceRequest", "DiagnosticReport"])
def test_outsider_gets_404_by_id_and_never_finds_it(fhir_client, outsider, reported, kind):
    resource_id = {
        "Patient": reported.study.patient_id,
        "ImagingStudy": reported.study.study_instance_uid,
        "ServiceRequest": reported.pk,
        "DiagnosticReport": reported.pk,
    }[kind]
    client = fhir_client(outsider)
    assert outcome(client.get(f"{FHIR}/{kind}/{resource_id}"), 404)["code"] == "not-found"
    assert ids(fhir(client.get(f"{FHIR}/{kind}"))) == []
    assert ids(fhir(client.get(f"{FHIR}/{kind}", {"_id": resource_id}))) == []


def test_specialist_holding_only_an_offer_does_not_see_the_service_request(fhir_client, specialist, consult):
    assert ConsultRequest.objects.worklist_for(specialist).filter(pk=consult.pk).exists()
    client = fhir_client(specialist)
    assert outcome(client.get(f"{FHIR}/ServiceRequest/{consult.pk}"), 404)
    assert ids(fhir(client.get(f"{FHIR}/ServiceRequest"))) == []
    assert outcome(client.get(f"{FHIR}/ImagingStudy/{consult.study.study_instance_uid}"), 404)


def test_assignee_sees_the_consult_and_its_study(fhir_client, specialist, reported):
    client = fhir_client(specialist)
    assert ids(fhir(client.get(f"{FHIR}/ServiceRequest"))) == [str(reported.pk)]
    assert fhir(client.get(f"{FHIR}/ImagingStudy/{reported.study.study_instance_uid}"))


def test_every_resource_served_is_recorded_in_the_access_history(fhir_client, physician, reported):
    client = fhir_client(physician)
    study = reported.study
    fhir(client.get(f"{FHIR}/ImagingStudy/{study.study_instance_uid}"))
    fhir(client.get(f"{FHIR}/DiagnosticReport/{reported.pk}"))
    fhir(client.get(f"{FHIR}/ServiceRequest", {"_include": "ServiceRequest:subject"}))
    fhir(client.get(f"{FHIR}/Patient/{study.patient_id}"))
    events = AccessEvent.objects.filter(user=physician).order_by("pk")
    assert [(e.action, e.object_id) for e in events] == [
        ("api_read", f"fhir:ImagingStudy/{study.study_instance_uid}"),
        ("report_view", f"fhir:DiagnosticReport/{reported.pk}"),
        ("api_read", f"fhir:ServiceRequest/{reported.pk}"),
        ("api_read", f"fhir:Patient/{study.patient_id}"),
        ("api_read", f"fhir:Patient/{study.patient_id}"),
    ]
    assert events[0].study == study and events[3].patient_id == study.patient_id


def test_a_search_page_records_every_entry_in_one_insert(fhir_client, physician, study, django_assert_max_num_queries):
    """The access history gets one event per resource served, written together: a page of 40
    patients costs the same few queries as a page of 2."""
    for n in range(40):
        Patient.objects.create(practice=study.practice, patient_id=f"BQ{n}", name=f"Batch^{n}")
    client = fhir_client(physician)
    fhir(client.get(f"{FHIR}/Patient", {"_count": 2}))  # token and session lookups warmed
    with django_assert_max_num_queries(12) as small:
        assert len(ids(fhir(client.get(f"{FHIR}/Patient", {"_count": 2})))) == 2
    with django_assert_max_num_queries(len(small)) as large:
        assert len(ids(fhir(client.get(f"{FHIR}/Patient", {"_count": 40})))) == 40
    read = AccessEvent.objects.filter(user=physician, object_id__startswith="fhir:Patient/")
    assert read.count() == 2 + 2 + 40
    assert len(large) == len(small)


# -- search --------------------------------------------------------------------------------------


def test_search_pages_with_next_and_previous_links_and_a_total(fhir_client, physician, study):
    for n in range(4):
        Patient.objects.create(practice=study.practice, patient_id=f"PG{n}", name=f"Page^{n}")
    client = fhir_client(physician)
    first = fhir(client.get(f"{FHIR}/Patient", {"_count": 2}))
    assert first["type"] == "searchset" and first["total"] == 5 and len(ids(first)) == 2
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert links["self"] == "http://testserver/fhir/r4/Patient?_count=2"
    seen = ids(first)
    url = links["next"]
    while url:
        page = fhir(client.get(url))
        seen += ids(page)
        url = {link["relation"]: link["url"] for link in page["link"]}.get("next")
    assert len(seen) == len(set(seen)) == 5
    assert "previous" in {link["relation"] for link in page["link"]}


def test_unknown_parameters_are_400_unless_lenient(fhir_client, physician, study):
    client = fhir_client(physician)
    issue = outcome(client.get(f"{FHIR}/Patient", {"colour": "blue", "name:exact": "Doe"}), 400)
    assert issue["expression"] == ["colour", "name:exact"] and "Unknown search parameters" in issue["diagnostics"]
    assert outcome(client.get(f"{FHIR}/Patient", {"_include": "Patient:link"}), 400)["expression"] == ["_include"]
    assert outcome(client.get(f"{FHIR}/Patient", {"_count": "lots"}), 400)["expression"] == ["_count"]
    assert outcome(client.get(f"{FHIR}/ImagingStudy", {"started": "yesterday"}), 400)["expression"] == ["started"]
    assert outcome(client.get(f"{FHIR}/ServiceRequest", {"priority": "asap"}), 400)["expression"] == ["priority"]
    lenient = fhir(
        client.get(f"{FHIR}/Patient", {"colour": "blue"}, HTTP_PREFER="return=representation, handling=lenient")
    )
    assert ids(lenient) == [str(study.patient_id)]
    assert lenient["entry"][-1]["resource"]["issue"][0]["severity"] == "warning"


def test_search_by_patient_status_date_and_include(fhir_client, physician, consult, study):
    other = make_study(uploader=physician)
    client = fhir_client(physician)
    found = fhir(client.get(f"{FHIR}/ImagingStudy", {"patient": f"Patient/{study.patient_id}"}))
    assert ids(found) == [study.study_instance_uid] and "total" not in found
    assert ids(fhir(client.get(f"{FHIR}/ImagingStudy", {"started": "2024-03"}))) == [study.study_instance_uid]
    assert ids(fhir(client.get(f"{FHIR}/ImagingStudy", {"started": "lt2024-03-01"}))) == []
    assert ids(fhir(client.get(f"{FHIR}/ImagingStudy", {"started": "ge2024-03-01"}))) == [study.study_instance_uid]
    assert set(ids(fhir(client.get(f"{FHIR}/ImagingStudy")))) == {study.study_instance_uid, other.study_instance_uid}
    by_uid = fhir(
        client.get(f"{FHIR}/ImagingStudy", {"identifier": f"urn:dicom:uid|urn:oid:{other.study_instance_uid}"})
    )
    assert ids(by_uid) == [other.study_instance_uid]
    assert ids(fhir(client.get(f"{FHIR}/ServiceRequest", {"status": "active", "subject": study.patient_id}))) == [
        str(consult.pk)
    ]
    assert ids(fhir(client.get(f"{FHIR}/ServiceRequest", {"status": "completed,revoked"}))) == []
    bundle = fhir(client.get(f"{FHIR}/ServiceRequest", {"_include": "ServiceRequest:subject"}))
    included = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert [e["fullUrl"] for e in included] == [f"http://testserver/fhir/r4/Patient/{study.patient_id}"]


# -- create --------------------------------------------------------------------------------------


def test_create_service_request_requests_a_consult_as_the_portal_does(fhir_client, physician, specialist, study):
    response = post(fhir_client(physician), service_request(study))
    body = fhir(response, 201)
    consult = ConsultRequest.objects.get()
    assert response["Location"] == f"http://testserver/fhir/r4/ServiceRequest/{consult.pk}"
    assert body["id"] == str(consult.pk) and body["status"] == "active"
    assert consult.state == State.SUBMITTED and consult.priority == "urgent" and consult.requester == physician
    assert consult.question == "Is there an acute bleed?" and consult.clinical_history == "Fall from standing height."
    assert consult.specialty == "neuroradiology" and consult.jurisdiction == "US-CA"
    assert ConsultRequest.objects.worklist_for(specialist).filter(pk=consult.pk).exists()
    assert Notification.objects.filter(user=specialist, consult=consult, kind=Notification.Kind.OFFER).exists()
    assert consult.events.filter(kind="offered").exists()


def test_create_as_draft_by_identifier_for_a_named_specialist(fhir_client, physician, specialist, study):
    body = service_request(
        study,
        status="draft",
        priority=None,
        performerType=None,
        performer=[{"reference": f"Practitioner/{specialist.pk}"}],
        supportingInfo=[{"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{study.study_instance_uid}"}}],
        reasonCode=None,
    )
    created = fhir(post(fhir_client(physician), body, content_type="application/json"), 201)
    consult = ConsultRequest.objects.get()
    assert created["status"] == "draft" and consult.state == State.DRAFT
    assert consult.target_specialist == specialist and consult.priority == "routine"
    assert consult.question == "Fall from standing height."


@pytest.mark.parametrize(
    ("body", "status", "element"),
    [
        ('{"resourceType": "ServiceRequest",', 400, None),
        ("[]", 400, None),
        ({"resourceType": "Patient"}, 400, "resourceType"),
        ("no-subject", 400, "ServiceRequest.subject"),
        ("no-status", 400, "ServiceRequest.status"),
        ({"priority": "whenever"}, 422, "ServiceRequest.priority"),
        ({"priority": "asap"}, 422, "ServiceRequest.priority"),
        ({"status": "completed"}, 422, "ServiceRequest.status"),
        ({"intent": "plan"}, 422, "ServiceRequest.intent"),
        ({"supportingInfo": []}, 422, "ServiceRequest.supportingInfo"),
        ({"supportingInfo": [{"reference": "ImagingStudy/1.2.3.4"}]}, 422, "ServiceRequest.supportingInfo"),
        ({"performerType": {"coding": [{"code": "astrology"}]}}, 422, "ServiceRequest.performerType"),
        ({"performer": [{"reference": "Practitioner/999999"}]}, 422, "ServiceRequest.performer"),
        ({"reasonCode": [{"text": "?"}], "note": None}, 422, "ServiceRequest.reasonCode"),
        ({"subject": {"reference": "Patient/999999"}}, 422, "ServiceRequest.subject"),
        ({"requester": {"reference": "Practitioner/999999"}}, 422, "ServiceRequest.requester"),
        ({"colour": "blue"}, 400, "ServiceRequest.colour"),
    ],
)
def test_bad_service_requests_are_refused_naming_the_element(fhir_client, physician, study, body, status, element):
    if isinstance(body, dict) and "resourceType" not in body:
        body = service_request(study, **body)
    elif body in ("no-subject", "no-status"):
        body = {k: v for k, v in service_request(study).items() if k != body.removeprefix("no-")}
    issue = outcome(post(fhir_client(physician), body), status)
    if element:
        assert element in issue["expression"]
        assert element.rsplit(".", 1)[-1] in issue["diagnostics"]
    assert not ConsultRequest.objects.exists()


def test_create_needs_a_json_body_and_a_physician(fhir_client, physician, specialist, study):
    assert (
        outcome(post(fhir_client(physician), "status=active", content_type="text/plain"), 415)["code"]
        == "not-supported"
    )
    issue = outcome(post(fhir_client(specialist), service_request(study)), 422)
    assert issue["expression"] == ["ServiceRequest.supportingInfo"]  # the specialist may not see the study
    colleague = SpecialistFactory(email="reader@example.com", practice=study.practice)
    assert outcome(post(fhir_client(colleague), service_request(study)), 403)["code"] == "forbidden"
    assert not ConsultRequest.objects.exists()


def test_dead_database_is_a_503_operation_outcome_with_retry_after(fhir_client, physician, study):
    def dead_database(execute, sql, params, many, context):
        raise OperationalError("server closed the connection unexpectedly")

    client = fhir_client(physician)
    client.raise_request_exception = False
    with connection.execute_wrapper(dead_database):
        response = client.get(f"{FHIR}/ImagingStudy")
    assert outcome(response, 503)["code"] == "transient"
    assert response["Retry-After"] == str(database.RETRY_AFTER_SECONDS)

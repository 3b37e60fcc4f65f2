"""The portal's rows as FHIR resources, each built and checked by its ``fhir.resources`` model.

One function per resource type, taking the row (with what it needs prefetched, see
``consultations.fhir.registry``) and the request's ``Links``. FHIR forbids empty strings, lists and
objects, so every resource goes through ``compact`` before it is checked.
"""

from __future__ import annotations

import datetime as dt
import html
import zoneinfo

from django.conf import settings
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.servicerequest import ServiceRequest

from accounts.models import Specialty, User
from studies.models import Patient as PatientRecord
from studies.models import Study

from ..models import Agreement, ConsultRequest, Report, State
from . import links as codes
from .links import Links

# Consult state -> ServiceRequest.status (http://hl7.org/fhir/request-status). A declined consult
# waits for its requester to choose again, as one waiting for their answer does: on hold.
STATUS = {
    State.DRAFT: "draft",
    State.SUBMITTED: "active",
    State.ACCEPTED: "active",
    State.INFO_REQUESTED: "on-hold",
    State.DECLINED: "on-hold",
    State.REPORTED: "completed",
    State.CLOSED: "completed",
    State.CANCELLED: "revoked",
}
CONSULTATION = {"system": codes.SNOMED, "code": "11429006", "display": "Consultation"}
IMAGING_REPORT = {"system": codes.LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}
RADIOLOGY = {"system": codes.V2_0074, "code": "RAD", "display": "Radiology"}


def compact(value):
    """``value`` without None, empty strings, lists and objects, at any depth."""
    if isinstance(value, dict):
        items = ((key, compact(item)) for key, item in value.items())
        return {key: item for key, item in items if item not in (None, "", [], {})}
    if isinstance(value, list):
        return [item for item in (compact(item) for item in value) if item not in (None, "", [], {})]
    return value


def reference(resource_type: str, resource_id: object, display: str = "") -> dict:
    return {"reference": f"{resource_type}/{resource_id}", "display": display}


def patient_reference(record: PatientRecord) -> dict:
    return reference("Patient", record.pk, record.display_name)


def practitioner_reference(user: User | None) -> dict | None:
    return reference("Practitioner", user.pk, user.display_name) if user is not None else None


def study_reference(study: Study) -> dict:
    return {
        **reference("ImagingStudy", study.study_instance_uid, study.description),
        "identifier": {"system": codes.DICOM_UID, "value": f"urn:oid:{study.study_instance_uid}"},
    }


def specialty_coding(code: str, links: Links) -> dict:
    return {"system": links.code_system("specialty"), "code": code, "display": Specialty(code).label}


def study_started(study: Study) -> dt.datetime | dt.date | None:
    """The study's date and time on the site's clock (TIME_ZONE); the date alone when the header
    gave no time (a FHIR dateTime may be a date)."""
    if study.study_date is None:
        return None
    if study.study_time is None:
        return study.study_date
    return dt.datetime.combine(study.study_date, study.study_time, tzinfo=zoneinfo.ZoneInfo(settings.TIME_ZONE))


def _narrative(*sections: tuple[str, str]) -> dict:
    """XHTML text of the resource: each non-empty section a heading and its paragraphs."""
    parts = []
    for title, text in sections:
        if text and text.strip():
            body = "<br/>".join(html.escape(line) for line in text.strip().splitlines())
            parts.append(f"<h3>{html.escape(title)}</h3><p>{body}</p>")
    div = "".join(parts) or "<p>-</p>"
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{div}</div>'}


# -- Patient -------------------------------------------------------------------------------------


def person_name(dicom_name: str) -> dict:
    """A DICOM person name (``Family^Given^Middle^Prefix^Suffix``, alphabetic group) as a HumanName."""
    family, given, middle, prefix, suffix = (dicom_name.split("=")[0].split("^") + [""] * 5)[:5]
    return {
        "use": "official",
        "text": " ".join(part for part in (prefix, given, middle, family, suffix) if part.strip()),
        "family": family.strip(),
        "given": [name for name in (given.strip(), middle.strip()) if name],
        "prefix": [prefix.strip()],
        "suffix": [suffix.strip()],
    }


def patient(record: PatientRecord, links: Links) -> Patient:
    identifiers = []
    if record.patient_id:
        identifiers.append(
            {
                "use": "usual",
                "type": {"coding": [{"system": codes.V2_0203, "code": "MR", "display": "Medical record number"}]},
                "system": codes.patient_id_system(record.practice_id, record.issuer),
                "value": record.patient_id,
            }
        )
    sex = record.sex.strip().upper()[:1]
    body = {
        "resourceType": "Patient",
        "id": str(record.pk),
        "identifier": identifiers,
        "active": True,
        "name": [person_name(record.name)] if record.name.strip(" ^=") else [],
        "gender": codes.ADMINISTRATIVE_GENDER.get(sex, "unknown") if sex else None,
        "birthDate": record.birth_date,
        "managingOrganization": {
            "identifier": {"system": codes.PRACTICE_URN, "value": str(record.practice_id)},
            "display": record.practice.name,
        },
    }
    return Patient.model_validate(compact(body))


# -- Practitioner --------------------------------------------------------------------------------


def practitioner(user: User, links: Links) -> Practitioner:
    """A clinician: specialties as qualifications, and each licence an administrator verified (with
    its number and expiry) as a qualification to practise in its jurisdiction."""
    profile = getattr(user, "specialist_profile", None)
    qualifications = [
        {"code": {"coding": [specialty_coding(code, links)], "text": Specialty(code).label}}
        for code in (profile.specialties if profile else [])
        if code in Specialty.values
    ]
    for licence in getattr(user, "verified_licences", []):
        qualifications.append(
            {
                "identifier": [{"system": f"{codes.LICENCE_URN}:{licence.jurisdiction}", "value": licence.number}],
                "code": {
                    "coding": [{"system": codes.V2_0360, "code": "MD", "display": "Doctor of Medicine"}],
                    "text": f"Licence to practise in {licence.jurisdiction}",
                },
                "period": {"end": licence.expires_on},
            }
        )
    body = {
        "resourceType": "Practitioner",
        "id": str(user.pk),
        "identifier": [{"system": codes.USER_URN, "value": str(user.pk)}],
        "active": user.is_active,
        "name": [{"text": user.display_name}],
        "telecom": [{"system": "email", "value": user.email, "use": "work"}],
        "qualification": qualifications,
    }
    return Practitioner.model_validate(compact(body))


# -- ImagingStudy --------------------------------------------------------------------------------


def _modality(code: str) -> dict:
    return {"system": codes.DCM, "code": code or "OT"}


def imaging_study(study: Study, links: Links) -> ImagingStudy:
    """A study with its series, and a contained Endpoint: the portal's DICOMweb service (WADO-RS),
    under which this study is ``{address}/studies/{StudyInstanceUID}``."""
    identifiers = [{"system": codes.DICOM_UID, "value": f"urn:oid:{study.study_instance_uid}"}]
    if study.accession_number:
        identifiers.append(
            {
                "type": {"coding": [{"system": codes.V2_0203, "code": "ACSN", "display": "Accession ID"}]},
                "value": study.accession_number,
            }
        )
    endpoint = {
        "resourceType": "Endpoint",
        "id": "dicomweb",
        "status": "active",
        "connectionType": {"system": codes.ENDPOINT_CONNECTION, "code": "dicom-wado-rs"},
        "name": "teleconsult DICOMweb",
        "payloadType": [{"coding": [{"system": codes.ENDPOINT_PAYLOAD, "code": "DICOM"}], "text": "DICOM"}],
        "payloadMimeType": ["application/dicom", "application/dicom+json"],
        "address": links.dicomweb,
    }
    body = {
        "resourceType": "ImagingStudy",
        "id": study.study_instance_uid,
        "meta": {"lastUpdated": study.updated_at},
        "contained": [endpoint],
        "identifier": identifiers,
        "status": "available",
        "modality": [_modality(code) for code in study.modality_list],
        "subject": patient_reference(study.patient),
        "started": study_started(study),
        "endpoint": [{"reference": "#dicomweb"}],
        "numberOfSeries": study.num_series,
        "numberOfInstances": study.num_instances,
        "description": study.description,
        "series": [
            {
                "uid": series.series_instance_uid,
                "number": series.series_number,
                "modality": _modality(series.modality),
                "description": series.description,
                "numberOfInstances": series.num_instances,
                "bodySite": {"display": series.body_part} if series.body_part else None,
            }
            for series in study.series.all()
        ],
    }
    return ImagingStudy.model_validate(compact(body))


# -- ServiceRequest ------------------------------------------------------------------------------


def last_change(consult: ConsultRequest) -> dt.datetime:
    moments = (consult.created_at, consult.submitted_at, consult.accepted_at, consult.reported_at, consult.closed_at)
    return max(moment for moment in moments if moment is not None)


def service_request(consult: ConsultRequest, links: Links) -> ServiceRequest:
    """A consult: the question as ``reasonCode``, the clinical history as ``note``, the specialty
    pool as ``performerType`` and the specialist (who took it, else the one it was addressed to) as
    ``performer``; the study in ``supportingInfo``."""
    performer = consult.assignee or consult.target_specialist
    extensions = [{"url": links.structure("jurisdiction"), "valueCode": consult.jurisdiction}]
    if consult.outside_report:
        extensions.append({"url": links.structure("outside-report"), "valueString": consult.outside_report})
    body = {
        "resourceType": "ServiceRequest",
        "id": str(consult.pk),
        "meta": {"lastUpdated": last_change(consult)},
        "extension": extensions,
        "status": STATUS[consult.state],
        "intent": "order",
        "category": [{"coding": [RADIOLOGY]}],
        "priority": consult.priority,
        "code": {"coding": [CONSULTATION], "text": "Second-opinion consultation on imaging"},
        "subject": patient_reference(consult.study.patient),
        "authoredOn": consult.submitted_at or consult.created_at,
        "requester": practitioner_reference(consult.requester),
        "performerType": (
            {"coding": [specialty_coding(consult.specialty, links)], "text": consult.get_specialty_display()}
            if consult.specialty
            else None
        ),
        "performer": [practitioner_reference(performer)],
        "reasonCode": [{"text": consult.question}],
        "note": [{"text": consult.clinical_history}],
        "supportingInfo": [study_reference(consult.study)],
    }
    return ServiceRequest.model_validate(compact(body))


# -- DiagnosticReport ----------------------------------------------------------------------------


def diagnostic_report(consult: ConsultRequest, signed: list[Report], links: Links) -> DiagnosticReport:
    """A consult's signed report as one DiagnosticReport (id: the consult's), as it stands after its
    newest signed version: ``final``, or ``amended`` once an addendum is signed. The PDF (every
    signed version) is ``presentedForm``, by URL: it is rendered when asked for, so it has no
    fixed size or hash."""
    latest = signed[-1]
    extensions = []
    if latest.agreement:
        grade = {
            "system": links.code_system("agreement-grade"),
            "code": latest.agreement,
            "display": Agreement(latest.agreement).label,
        }
        extensions.append({"url": links.structure("agreement-grade"), "valueCoding": grade})
    sections = [
        ("Findings", latest.findings),
        ("Impression", latest.impression),
        ("Recommendations", latest.recommendations),
    ]
    if latest.is_addendum:
        sections.append((f"Addendum (version {latest.version})", latest.addendum_reason))
    body = {
        "resourceType": "DiagnosticReport",
        "id": str(consult.pk),
        "meta": {"versionId": str(latest.version), "lastUpdated": latest.signed_at},
        "text": _narrative(*sections),
        "extension": extensions,
        "basedOn": [reference("ServiceRequest", consult.pk)],
        "status": "amended" if latest.is_addendum else "final",
        "category": [{"coding": [RADIOLOGY]}],
        "code": {"coding": [IMAGING_REPORT], "text": "Second-opinion imaging report"},
        "subject": patient_reference(consult.study.patient),
        "effectiveDateTime": study_started(consult.study),
        "issued": latest.signed_at,
        "resultsInterpreter": [practitioner_reference(latest.signed_by)],
        "imagingStudy": [study_reference(consult.study)],
        "conclusion": latest.impression,
        "presentedForm": [
            {
                "contentType": "application/pdf",
                "language": "en",
                "url": links.report_pdf(consult.pk),
                "title": f"Consult {consult.pk} report"
                + (f" with addenda (version {latest.version})" if latest.is_addendum else ""),
                "creation": latest.signed_at,
            }
        ],
    }
    return DiagnosticReport.model_validate(compact(body))

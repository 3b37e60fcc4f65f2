"""``metadata``: the CapabilityStatement, read from the registry, so it lists exactly what is served."""

from __future__ import annotations

from django.utils import timezone
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from .links import Links
from .registry import TYPES

SEARCH_TYPES = {"_id": "token", "identifier": "token", "status": "token", "priority": "token", "modality": "token"}
SEARCH_TYPES |= {"email": "token", "name": "string"}
DATE_PARAMETERS = {"birthdate", "started", "authored", "date", "issued", "_lastUpdated"}
# Interactions beyond read and search-type, by type.
CREATABLE = {"ServiceRequest"}
DOCUMENTATION = {
    "Patient": "Patient records of the caller's practices and of studies shared with them.",
    "Practitioner": "Clinicians: colleagues, specialists a consult may be addressed to, people on the "
    "caller's consults. Specialties and verified licences as qualifications.",
    "ImagingStudy": "Studies the caller may see, with series, counts, and a contained DICOMweb (WADO-RS) Endpoint.",
    "ServiceRequest": "Consults the caller is on the care team of. Create requests a consult as the portal does.",
    "DiagnosticReport": "Signed consult reports (final, amended after an addendum); the PDF as presentedForm.",
}


def _parameter_type(name: str) -> str:
    if name in DATE_PARAMETERS:
        return "date"
    return SEARCH_TYPES.get(name, "reference")


def statement(links: Links) -> dict:
    resources = []
    for name, resource_type in TYPES.items():
        interactions = [{"code": "read"}, {"code": "search-type"}]
        if name in CREATABLE:
            interactions.append({"code": "create"})
        entry = {
            "type": name,
            "documentation": DOCUMENTATION[name],
            "interaction": interactions,
            "versioning": "no-version",
            "readHistory": False,
            "updateCreate": False,
            "searchInclude": list(resource_type.includes) or None,
            "searchParam": [{"name": param, "type": _parameter_type(param)} for param in resource_type.parameters],
        }
        resources.append({k: v for k, v in entry.items() if v is not None})
    body = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": timezone.now(),
        "publisher": "teleconsult",
        "kind": "instance",
        "software": {"name": "teleconsult"},
        "implementation": {"description": "teleconsult imaging consultations", "url": links.base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Search parameters not listed are refused with 400 unless the request says "
                "Prefer: handling=lenient. _count (at most 100) pages results; follow Bundle.link next.",
                "security": {
                    "cors": False,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "Bearer",
                                    "display": "Bearer",
                                }
                            ],
                            "text": "Authorization: Bearer <portal API token> (POST /api/v1/auth/token/); "
                            "Token <token> is taken too.",
                        }
                    ],
                },
                "resource": resources,
            }
        ],
    }
    return CapabilityStatement.model_validate(body).model_dump(mode="json", exclude_none=True)

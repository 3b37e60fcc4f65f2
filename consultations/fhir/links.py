"""Addresses and code systems the FHIR resources use.

Two kinds of address:

- where things are (``fullUrl``, paging links, the DICOMweb endpoint, the report PDF): the address
  this request came to, so a client that reached the portal at one address is sent on there;
- what things mean (the portal's StructureDefinitions and CodeSystems): canonical URLs under
  ``TELECONSULT_BASE_URL`` (``teleconsult.links``), which production sets, so they do not change
  with the host a request came to.

Identifier systems that have no URL of their own are URNs (docs/fhir.md lists them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from django.http import HttpRequest
from django.urls import reverse

from teleconsult.links import base_url

FHIR_PATH = "/fhir/r4"

DICOM_UID = "urn:dicom:uid"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"  # diagnostic service section
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"  # identifier type
V2_0360 = "http://terminology.hl7.org/CodeSystem/v2-0360"  # degree/licence
ENDPOINT_CONNECTION = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
ENDPOINT_PAYLOAD = "http://terminology.hl7.org/CodeSystem/endpoint-payload-type"
ADMINISTRATIVE_GENDER = {"M": "male", "F": "female", "O": "other"}

# Identifier systems of the portal's own numbers (URNs: they name, they do not locate).
PRACTICE_URN = "urn:teleconsult:practice"
USER_URN = "urn:teleconsult:user"
LICENCE_URN = "urn:teleconsult:licence"  # + ":" + jurisdiction (ISO 3166)

OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$")
PRACTICE_SYSTEM = re.compile(r"^urn:teleconsult:practice:(\d+)(?::issuer:(.+))?$")


def patient_id_system(practice_id: int, issuer: str) -> str:
    """The identifier system of a PatientID: the issuer (IssuerOfPatientID) as a URI when it is an
    OID (``urn:oid:...``) or already a URI; a textual issuer, or none, within the practice
    (``urn:teleconsult:practice:<id>[:issuer:<issuer>]``), since patient records are keyed on the
    practice and the issuer."""
    issuer = issuer.strip()
    if OID.match(issuer):
        return f"urn:oid:{issuer}"
    if URI.match(issuer):
        return issuer
    system = f"{PRACTICE_URN}:{practice_id}"
    return f"{system}:issuer:{quote(issuer, safe='')}" if issuer else system


def parse_patient_id_system(system: str) -> dict:
    """The lookup a ``patient_id_system`` stands for: ``{"issuer": ...}`` and, for the portal's own
    URNs, ``{"practice_id": ...}`` too."""
    match = PRACTICE_SYSTEM.match(system)
    if match:
        return {"practice_id": int(match.group(1)), "issuer": unquote(match.group(2) or "")}
    if system.startswith("urn:oid:") and OID.match(system[8:]):
        return {"issuer": system[8:]}
    return {"issuer": system}


@dataclass(frozen=True)
class Links:
    """The addresses of one request's answer."""

    request: HttpRequest

    @property
    def base(self) -> str:
        """This server's FHIR base as the client reached it, e.g. ``https://portal/fhir/r4``."""
        return self.request.build_absolute_uri(FHIR_PATH)

    def resource(self, resource_type: str, resource_id: object) -> str:
        return f"{self.base}/{resource_type}/{resource_id}"

    def absolute(self, path: str) -> str:
        return self.request.build_absolute_uri(path)

    @property
    def canonical_base(self) -> str:
        return (base_url(self.request) or self.request.build_absolute_uri("/").rstrip("/")) + FHIR_PATH

    def structure(self, name: str) -> str:
        """A StructureDefinition of the portal's extensions: ``agreement-grade``, ``jurisdiction``..."""
        return f"{self.canonical_base}/StructureDefinition/{name}"

    def code_system(self, name: str) -> str:
        """A CodeSystem of the portal's codes: ``specialty``, ``agreement-grade``."""
        return f"{self.canonical_base}/CodeSystem/{name}"

    @property
    def dicomweb(self) -> str:
        """The DICOMweb service root (QIDO-RS/WADO-RS): a study is ``{root}/studies/{uid}``."""
        return self.absolute("/dicomweb")

    def report_pdf(self, consult_id: int) -> str:
        """The signed report's PDF through the REST API, which takes the same Bearer token."""
        return self.absolute(reverse("api-consult-pdf", args=[consult_id]))

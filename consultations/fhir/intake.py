"""A ``ServiceRequest`` from an EHR becomes a consult, exactly as the page and the REST API make one.

The resource is read into the REST API's own fields and checked by its serializer
(``ConsultCreateSerializer``: the study the caller may see, the question, the specialty or the
named specialist, the jurisdiction and the licence there), then ``actions.create_consult`` creates
and submits it: the same routing, timeline and notifications.

What is read from the resource:

- ``status``: ``active`` submits the consult, ``draft`` keeps it a draft; ``intent``: ``order``;
- ``priority``: ``routine`` (also when absent), ``urgent`` or ``stat``;
- ``reasonCode`` (text, else the codings' display): the question; ``note``: the clinical history
  (the question, when there is no ``reasonCode``);
- ``supportingInfo``: the study, as ``ImagingStudy/<StudyInstanceUID>`` or a reference by
  identifier (``urn:dicom:uid`` | ``urn:oid:<StudyInstanceUID>``); other entries are left alone;
- ``subject``: ``Patient/<id>``, which must be the study's patient;
- ``performerType``: a specialty (a code of the portal's specialty CodeSystem); ``performer``: one
  ``Practitioner/<id>``, the named specialist;
- extensions ``.../StructureDefinition/jurisdiction`` (``valueCode``, ISO 3166; default: the
  requester's institution's) and ``.../StructureDefinition/outside-report`` (``valueString``).

Refusals: a body that is not a ServiceRequest FHIR can read is a 400; one the portal's rules
refuse is a 422; both name the element at fault.
"""

from __future__ import annotations

from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError as ModelError

from accounts.models import Specialty

from ..api.serializers import ConsultCreateSerializer
from ..models import ConsultRequest, Priority
from . import links as codes
from .errors import InvalidError, UnprocessableError

R = "ServiceRequest"
# The REST API's field -> the element of the ServiceRequest it came from.
ELEMENTS = {
    "study_uid": f"{R}.supportingInfo",
    "question": f"{R}.reasonCode",
    "priority": f"{R}.priority",
    "specialty": f"{R}.performerType",
    "specialist_id": f"{R}.performer",
    "clinical_history": f"{R}.note",
    "outside_report": f"{R}.extension",
    "jurisdiction": f"{R}.extension",
    "non_field_errors": R,
}
STATUSES = {"active": True, "draft": False}


def _model_errors(exc: ModelError) -> InvalidError:
    problems, where = [], []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"] if part != "__root__")
        element = f"{R}.{path}" if path else R
        where.append(element)
        problems.append(f"{element}: {error['msg']}")
    return InvalidError("Not a valid ServiceRequest. " + "; ".join(problems), expression=where, issue="structure")


def parse(body: object) -> ServiceRequest:
    """The body as a ServiceRequest, checked against FHIR's own rules (400 otherwise)."""
    if not isinstance(body, dict):
        raise InvalidError("The body must be a JSON object: a ServiceRequest resource.", issue="structure")
    kind = body.get("resourceType")
    if kind != R:
        raise InvalidError(f"resourceType must be ServiceRequest, not {kind!r}.", expression=["resourceType"])
    # The server names what it creates: an id or meta sent with it is not kept.
    body = {key: value for key, value in body.items() if key not in ("id", "meta")}
    try:
        resource = ServiceRequest.model_validate(body)
    except ModelError as exc:
        raise _model_errors(exc) from None
    missing = [f"{R}.{name}" for name in ("status", "intent") if not getattr(resource, name)]
    if missing:
        raise InvalidError(
            f"Missing required element{'s' if len(missing) > 1 else ''}: {', '.join(missing)}.", expression=missing
        )
    return resource


def _reference_id(ref, kind: str) -> str | None:
    """The id of a literal reference to ``kind`` (``Kind/id`` or an absolute URL ending so)."""
    if ref is None or not ref.reference:
        return None
    parts = ref.reference.rstrip("/").split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] == kind else None


def _study_uid(resource: ServiceRequest) -> str:
    found = []
    for ref in resource.supportingInfo or []:
        uid = _reference_id(ref, "ImagingStudy")
        identifier = ref.identifier
        if uid is None and identifier is not None and identifier.system == codes.DICOM_UID and identifier.value:
            uid = identifier.value.removeprefix("urn:oid:")
        if uid:
            found.append(uid)
    if not found:
        raise UnprocessableError(
            "Name the study in supportingInfo: ImagingStudy/<StudyInstanceUID>, or a reference by identifier "
            "with system urn:dicom:uid.",
            expression=[f"{R}.supportingInfo"],
            issue="required",
        )
    if len(set(found)) > 1:
        raise UnprocessableError(
            "A consult is on one study; supportingInfo names several.", expression=[f"{R}.supportingInfo"]
        )
    return found[0]


def _texts(concepts) -> list[str]:
    texts = []
    for concept in concepts or []:
        text = concept.text or " ".join(c.display for c in concept.coding or [] if c.display)
        if text and text.strip():
            texts.append(text.strip())
    return texts


def _specialty(resource: ServiceRequest) -> str:
    concept = resource.performerType
    if concept is None:
        return ""
    for coding in concept.coding or []:
        if coding.code in Specialty.values:
            return coding.code
    named = [c.code for c in concept.coding or [] if c.code] or [concept.text]
    raise UnprocessableError(
        f"performerType {', '.join(map(str, named))!r} is not a specialty; use one of: {', '.join(Specialty.values)}.",
        expression=[f"{R}.performerType"],
        issue="code-invalid",
    )


def _specialist_id(resource: ServiceRequest) -> int | None:
    performers = resource.performer or []
    if not performers:
        return None
    if len(performers) > 1:
        raise UnprocessableError("Name at most one specialist in performer.", expression=[f"{R}.performer"])
    key = _reference_id(performers[0], "Practitioner")
    if key is None or not key.isdigit():
        raise UnprocessableError("performer must be a reference to a Practitioner/<id>.", expression=[f"{R}.performer"])
    return int(key)


def _extension(resource: ServiceRequest, name: str, value: str) -> str:
    for extension in resource.extension or []:
        if extension.url.rstrip("/").endswith(f"/StructureDefinition/{name}"):
            return getattr(extension, value) or ""
    return ""


def _fields(resource: ServiceRequest) -> dict:
    """The REST API's fields for this resource (what its serializer checks)."""
    if resource.status not in STATUSES:
        raise UnprocessableError(
            f"status {resource.status!r} cannot be requested: active (submit it) or draft.",
            expression=[f"{R}.status"],
            issue="value",
        )
    if resource.intent != "order":
        raise UnprocessableError(
            f"intent {resource.intent!r} is not supported: a consult is an order.",
            expression=[f"{R}.intent"],
            issue="value",
        )
    priority = resource.priority or Priority.ROUTINE
    if priority not in Priority.values:
        raise UnprocessableError(
            f"priority {priority!r} is not supported: routine, urgent or stat.",
            expression=[f"{R}.priority"],
            issue="code-invalid",
        )
    reasons = _texts(resource.reasonCode)
    notes = [note.text.strip() for note in resource.note or [] if note.text and note.text.strip()]
    question, history = ("\n".join(reasons), notes) if reasons else ("\n".join(notes[:1]), notes[1:])
    data = {
        "study_uid": _study_uid(resource),
        "question": question,
        "priority": priority,
        "specialty": _specialty(resource),
        "clinical_history": "\n\n".join(history),
        "outside_report": _extension(resource, "outside-report", "valueString"),
        "jurisdiction": _extension(resource, "jurisdiction", "valueCode"),
        "submit": STATUSES[resource.status],
    }
    specialist = _specialist_id(resource)
    if specialist is not None:
        data["specialist_id"] = specialist
    return data


def _check_people(resource: ServiceRequest, study, user) -> None:
    subject = _reference_id(resource.subject, "Patient")
    if subject is None:
        raise UnprocessableError("subject must be a reference to a Patient/<id>.", expression=[f"{R}.subject"])
    if subject != str(study.patient_id):
        raise UnprocessableError(
            "subject is not the patient of the study named in supportingInfo.", expression=[f"{R}.subject"]
        )
    if resource.requester is not None and _reference_id(resource.requester, "Practitioner") != str(user.pk):
        raise UnprocessableError(
            f"requester must be the signed-in clinician (Practitioner/{user.pk}) or left out.",
            expression=[f"{R}.requester"],
        )


def create(request, body: object) -> ConsultRequest:
    """Create (and, for ``active``, submit) the consult the ServiceRequest asks for."""
    resource = parse(body)
    serializer = ConsultCreateSerializer(data=_fields(resource), context={"request": request})
    if not serializer.is_valid():
        problems = [(ELEMENTS.get(name, R), " ".join(map(str, errors))) for name, errors in serializer.errors.items()]
        raise UnprocessableError(
            " ".join(f"{element}: {message}" for element, message in problems),
            expression=[element for element, _ in problems],
        )
    _check_people(resource, serializer.validated_data["study_uid"], request.user)
    return serializer.save(by=request.user)

"""Each FHIR resource type the portal serves: which rows the caller may see (the same permission
functions as every other route: ``studies.permissions``, ``consultations.permissions``), how one is
found by id (404 for what the caller may not see), its search parameters, ``_include``, and how a
read of it is recorded in the access history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404

from accounts.models import Licence, Role, User
from studies import audit, invitations
from studies.models import AccessEvent, Study
from studies.permissions import get_patient_for_user, get_study_for_user, visible_patients, visible_studies

from .. import permissions
from ..models import ConsultRequest, Priority, Report
from . import links as codes
from . import resources, search
from .errors import InvalidError
from .links import Links
from .resources import STATUS

Action = AccessEvent.Action


@dataclass(frozen=True)
class ResourceType:
    name: str
    visible: Callable[[User], QuerySet]
    get: Callable[[User, str], object]
    to_fhir: Callable[[object, Links], object]
    parameters: dict[str, search.Handler]
    order: tuple[str, ...] = ("pk",)
    # _include value -> the resources it adds for one match: (type name, row) pairs.
    includes: dict[str, Callable[[object], list[tuple[str, object]]]] = field(default_factory=dict)
    # Whether Bundle.total is counted (cheap for these; a study search can span a practice's archive).
    count_total: bool = True
    record: Callable[[object, object], None] | None = None
    prefetch: Callable[[QuerySet], QuerySet] = lambda qs: qs


def _number(resource_id: str) -> int:
    if not resource_id.isdigit():
        raise Http404("No such resource.")
    return int(resource_id)


# -- Patient ---------------------------------------------------------------------------------------


def _patient_identifier(system: str | None, code: str) -> Q:
    condition = Q(patient_id=code) if code else Q()
    if system:
        lookup = codes.parse_patient_id_system(system)
        condition &= Q(issuer=lookup["issuer"])
        if "practice_id" in lookup:
            condition &= Q(practice_id=lookup["practice_id"])
    return condition


def _record_patient(request, record) -> None:
    invitations.record_event(request, Action.API_READ, record, user=request.user, obj=f"fhir:Patient/{record.pk}")


PATIENT = ResourceType(
    name="Patient",
    visible=lambda user: visible_patients(user),
    get=lambda user, resource_id: get_patient_for_user(user, _number(resource_id)),
    to_fhir=resources.patient,
    parameters={
        "_id": search.ids("pk"),
        "identifier": search.token(_patient_identifier, "identifier"),
        "name": search.string(["name"]),
        "birthdate": search.date("birth_date", "birthdate", calendar=True),
    },
    record=_record_patient,
    prefetch=lambda qs: qs.select_related("practice"),
)


# -- Practitioner ----------------------------------------------------------------------------------


def care_team_consults(user) -> QuerySet:
    """Consults the caller is on the care team of (requester, colleague, assignee), or every one for
    administrators: what FHIR shows of consults. A specialist who only holds an offer sees it on
    their worklist, not here (``permissions.is_offer_only``)."""
    consults = permissions.visible_consults(user)
    if user.is_admin:
        return consults
    return consults.filter(Q(pk__in=permissions.requested_or_joined(user).values("pk")) | Q(assignee=user))


def visible_practitioners(user) -> QuerySet:
    """Clinicians the caller works with or may name: members of their practices, the specialists a
    consult may be addressed to (those the request form offers), and the requesters and specialists
    of consults they see; every clinician for administrators."""
    clinicians = User.objects.filter(role__in=[Role.PHYSICIAN, Role.SPECIALIST])
    if user.is_admin:
        return clinicians
    consults = care_team_consults(user)
    rule = (
        Q(pk=user.pk)
        | Q(memberships__practice_id__in=user.practice_ids())
        | Q(pk__in=consults.values("requester_id"))
        | Q(pk__in=consults.filter(assignee__isnull=False).values("assignee_id"))
    )
    if permissions.may_request_consult(user):
        rule |= Q(
            role=Role.SPECIALIST,
            is_active=True,
            specialist_profile__approved_at__isnull=False,
            specialist_profile__accepting_consults=True,
        )
    return clinicians.filter(rule).distinct()


def _with_licences(qs: QuerySet) -> QuerySet:
    verified = Licence.objects.verified().order_by("jurisdiction", "pk")
    return qs.select_related("specialist_profile").prefetch_related(
        Prefetch("licences", queryset=verified, to_attr="verified_licences")
    )


def _get_practitioner(user, resource_id: str) -> User:
    found = _with_licences(visible_practitioners(user)).filter(pk=_number(resource_id)).first()
    if found is None:
        raise Http404("No such practitioner.")
    return found


PRACTITIONER = ResourceType(
    name="Practitioner",
    visible=visible_practitioners,
    get=_get_practitioner,
    to_fhir=resources.practitioner,
    parameters={
        "_id": search.ids("pk"),
        "name": search.string(["name", "email"]),
        "email": search.token(lambda system, code: Q(email__iexact=code), "email"),
    },
    prefetch=_with_licences,
)


# -- ImagingStudy ----------------------------------------------------------------------------------


def _study_identifier(system: str | None, code: str) -> Q:
    uid = code.removeprefix("urn:oid:")
    if system == codes.DICOM_UID:
        return Q(study_instance_uid=uid)
    if system:  # accession numbers carry no system of the portal's own
        return Q(pk__in=[])
    return Q(study_instance_uid=uid) | Q(accession_number=code)


def _record_study(request, study) -> None:
    audit.record(request, Action.API_READ, study, f"fhir:ImagingStudy/{study.study_instance_uid}", user=request.user)


def _include_subject(row) -> list[tuple[str, object]]:
    study = row if isinstance(row, Study) else row.study
    return [("Patient", study.patient)]


STUDY_SUBJECT = {f"ImagingStudy:{name}": _include_subject for name in ("subject", "patient")}

IMAGING_STUDY = ResourceType(
    name="ImagingStudy",
    visible=lambda user: visible_studies(user),
    get=lambda user, resource_id: get_study_for_user(user, resource_id),
    to_fhir=resources.imaging_study,
    parameters={
        "_id": search.ids("study_instance_uid", numeric=False),
        "identifier": search.token(_study_identifier, "identifier"),
        "patient": search.reference("patient_id", "Patient", "patient"),
        "subject": search.reference("patient_id", "Patient", "subject"),
        "started": search.date("study_date", "started", calendar=True),
        "modality": search.token(lambda system, code: Q(series__modality=code), "modality"),
        "_lastUpdated": search.date("updated_at", "_lastUpdated"),
    },
    order=("-pk",),
    includes=STUDY_SUBJECT,
    count_total=False,
    record=_record_study,
    prefetch=lambda qs: qs.distinct().select_related("patient__practice").prefetch_related("series"),
)


# -- ServiceRequest --------------------------------------------------------------------------------


def _states(status_map: dict) -> dict[str, list[str]]:
    by_code: dict[str, list[str]] = {}
    for state, code in status_map.items():
        by_code.setdefault(code, []).append(state)
    return by_code


def _get_consult(user, resource_id: str) -> ConsultRequest:
    consult = permissions.get_consult_for_user(user, _number(resource_id))
    return _consult_rows(ConsultRequest.objects.filter(pk=consult.pk)).get()


def _consult_rows(qs: QuerySet) -> QuerySet:
    return qs.select_related("study__patient__practice", "requester", "assignee", "target_specialist").prefetch_related(
        "study__series"
    )


def _record_consult(request, consult) -> None:
    audit.record(request, Action.API_READ, consult.study, f"fhir:ServiceRequest/{consult.pk}", user=request.user)


SERVICE_REQUEST = ResourceType(
    name="ServiceRequest",
    visible=care_team_consults,
    get=_get_consult,
    to_fhir=resources.service_request,
    parameters={
        "_id": search.ids("pk"),
        "patient": search.reference("study__patient_id", "Patient", "patient"),
        "subject": search.reference("study__patient_id", "Patient", "subject"),
        "status": search.codes("state", _states(STATUS), "status"),
        "priority": search.codes("priority", {p: [p] for p in Priority.values}, "priority"),
        "authored": search.date("created_at", "authored"),
        "performer": search.reference("assignee_id", "Practitioner", "performer"),
        "requester": search.reference("requester_id", "Practitioner", "requester"),
    },
    includes={f"ServiceRequest:{name}": _include_subject for name in ("subject", "patient")},
    record=_record_consult,
    prefetch=_consult_rows,
)


# -- DiagnosticReport ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedReport:
    """A consult and its signed report versions, oldest first: one DiagnosticReport."""

    consult: ConsultRequest
    versions: list[Report]

    @property
    def study(self) -> Study:
        return self.consult.study


def _signed(qs: QuerySet) -> QuerySet:
    signed = Report.objects.filter(signed_at__isnull=False).select_related("signed_by").order_by("version")
    return _consult_rows(qs).prefetch_related(Prefetch("reports", queryset=signed, to_attr="signed_versions"))


def visible_reports(user) -> QuerySet:
    return care_team_consults(user).filter(reports__signed_at__isnull=False).distinct()


def _get_report(user, resource_id: str) -> SignedReport:
    consult = permissions.get_consult_for_user(user, _number(resource_id))
    versions = list(permissions.visible_reports(user, consult).filter(signed_at__isnull=False))
    if not versions:
        raise Http404("No signed report on this consult.")
    return SignedReport(_consult_rows(ConsultRequest.objects.filter(pk=consult.pk)).get(), versions)


def _report_status(system: str | None, code: str) -> Q:
    amended = Q(reports__version__gt=1, reports__signed_at__isnull=False)
    if code == "final":
        return ~Q(pk__in=ConsultRequest.objects.filter(amended).values("pk"))
    if code in ("amended", "corrected"):
        return Q(pk__in=ConsultRequest.objects.filter(amended).values("pk"))
    raise InvalidError(f"status: {code!r} is not one of final, amended.", expression=["status"])


def _record_report(request, report: SignedReport) -> None:
    audit.record(
        request, Action.REPORT_VIEW, report.study, f"fhir:DiagnosticReport/{report.consult.pk}", user=request.user
    )


DIAGNOSTIC_REPORT = ResourceType(
    name="DiagnosticReport",
    visible=visible_reports,
    get=_get_report,
    to_fhir=lambda report, links: resources.diagnostic_report(report.consult, report.versions, links),
    parameters={
        "_id": search.ids("pk"),
        "patient": search.reference("study__patient_id", "Patient", "patient"),
        "subject": search.reference("study__patient_id", "Patient", "subject"),
        "status": search.token(_report_status, "status"),
        "date": search.date("study__study_date", "date", calendar=True),
        "issued": search.date("reported_at", "issued"),
        "based-on": search.reference("pk", "ServiceRequest", "based-on"),
        "_lastUpdated": search.date("reports__signed_at", "_lastUpdated"),
    },
    includes={f"DiagnosticReport:{name}": _include_subject for name in ("subject", "patient")},
    record=_record_report,
    prefetch=_signed,
)

TYPES: dict[str, ResourceType] = {
    t.name: t for t in (PATIENT, PRACTITIONER, IMAGING_STUDY, SERVICE_REQUEST, DIAGNOSTIC_REPORT)
}


def as_resource_rows(resource_type: ResourceType, rows: list) -> list:
    """Rows of a search page as the objects ``to_fhir`` takes (a consult's signed versions for a
    DiagnosticReport)."""
    if resource_type is DIAGNOSTIC_REPORT:
        return [SignedReport(row, row.signed_versions) for row in rows]
    return rows

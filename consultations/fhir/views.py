"""``/fhir/r4/``: ``metadata``, read, search and (ServiceRequest) create.

DRF views with the project's authentication (``Authorization: Bearer <token>`` or ``Token <token>``,
or the portal's session), FHIR JSON in and out (``media``) and every refusal an OperationOutcome
(``errors``). Who may see what is the registry's (the same permission functions as every route);
each resource served is recorded in the access history.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import MethodNotAllowed, UnsupportedMediaType
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from studies import audit

from . import bundles, capability, errors, intake, media, registry, search
from .links import Links
from .registry import TYPES, ResourceType

CREATE = {"ServiceRequest": intake.create}


def as_json(resource) -> dict:
    return resource.model_dump(mode="json", exclude_none=True)


class ClinicalSystems(BasePermission):
    """The FHIR interface serves clinicians' systems (an EHR, a PACS); a patient's account reads its
    results in the portal, where a report reaches the patient only once it is released to them."""

    message = "The FHIR interface is for clinicians' systems; patients read their results in the portal."

    def has_permission(self, request, view) -> bool:
        return not request.user.is_patient


@extend_schema(exclude=True)
class FhirView(APIView):
    renderer_classes = media.RENDERERS
    parser_classes = media.PARSERS
    content_negotiation_class = media.FhirContentNegotiation
    permission_classes = [IsAuthenticated, ClinicalSystems]

    def get_exception_handler(self):
        return errors.exception_handler

    @staticmethod
    def resource_type(name: str) -> ResourceType:
        found = TYPES.get(name)
        if found is None:
            raise errors.NotFoundError(
                f"{name!r} is not a resource type this server serves: {', '.join(TYPES)} (see metadata).",
                issue="not-supported",
            )
        return found


class MetadataView(FhirView):
    """The CapabilityStatement, open to anyone: a client reads it to learn how to sign in."""

    permission_classes = [AllowAny]

    def get(self, request):
        return Response(capability.statement(Links(request)))


class TypeView(FhirView):
    def get(self, request, resource_type: str):
        """Search: a page of matches (and the ``_include``d), each recorded as read."""
        kind = self.resource_type(resource_type)
        links = Links(request)
        query = search.read_query(request, kind.parameters, kind.includes, kind.name)
        found = search.apply(kind.visible(request.user), kind.parameters, query).order_by(*kind.order)
        total = found.count() if kind.count_total else None
        rows = list(kind.prefetch(found)[query.offset : query.offset + query.count + 1])
        has_next = len(rows) > query.count
        rows = registry.as_resource_rows(kind, rows[: query.count])
        included, seen = [], set()
        for row in rows:
            for name in query.includes:
                for other_kind, other in kind.includes[name](row):
                    if (other_kind, other.pk) not in seen:
                        seen.add((other_kind, other.pk))
                        included.append((TYPES[other_kind], other))
        with audit.batched():
            for served_kind, row in [(kind, row) for row in rows] + included:
                if served_kind.record is not None:
                    served_kind.record(request, row)
        warnings = [
            {"severity": "warning", "code": "not-supported", "diagnostics": f"Ignored: {name}."}
            for name in query.ignored
        ]
        body = bundles.searchset(
            request,
            links,
            [(kind.name, kind.to_fhir(row, links)) for row in rows],
            [(other_kind.name, other_kind.to_fhir(row, links)) for other_kind, row in included],
            offset=query.offset,
            count=query.count,
            has_next=has_next,
            total=total,
            warnings=warnings,
        )
        return Response(body)

    def post(self, request, resource_type: str):
        """Create: only ServiceRequest (a consult); the answer is the resource as stored."""
        kind = self.resource_type(resource_type)
        create = CREATE.get(kind.name)
        if create is None:
            raise MethodNotAllowed("POST", detail=f"{kind.name} cannot be created here; only ServiceRequest can.")
        if request.content_type.split(";")[0].strip().lower() not in (media.FHIR_JSON, "application/json"):
            raise UnsupportedMediaType(request.content_type or "(none)")
        created = create(request, request.data)
        links = Links(request)
        row = kind.get(request.user, str(created.pk))
        headers = {"Location": links.resource(kind.name, created.pk)}
        return Response(as_json(kind.to_fhir(row, links)), status=status.HTTP_201_CREATED, headers=headers)


class InstanceView(FhirView):
    def get(self, request, resource_type: str, resource_id: str):
        """Read: 404 for what the caller may not see, as for what does not exist."""
        kind = self.resource_type(resource_type)
        row = kind.get(request.user, resource_id)
        if kind.record is not None:
            kind.record(request, row)
        return Response(as_json(kind.to_fhir(row, Links(request))))


class UnknownView(FhirView):
    """Any other path under /fhir/r4/ (history, operations, compartments): an OperationOutcome 404."""

    def _refuse(self, request, *args, **kwargs):
        raise errors.NotFoundError(f"{request.path} is not served here (see metadata).", issue="not-supported")

    get = post = put = patch = delete = _refuse

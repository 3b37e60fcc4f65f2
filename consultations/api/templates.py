"""``/api/v1/report-templates/``: report templates; ``?consult=<id>`` gives the ones that fit that
consult's study (modality and body part), best first, the first being the one a new draft starts from."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import permissions, reports
from ..errors import FieldError
from ..models import ReportTemplate
from .serializers import ReportTemplateSerializer


class TemplateListView(APIView):
    """Report templates; with ``consult``, those fitting the consult's study, best first."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "consult", int, description="A consult you may see: only the templates fitting its study, best first"
            )
        ],
        responses=ReportTemplateSerializer(many=True),
    )
    def get(self, request):
        consult_id = request.query_params.get("consult")
        if consult_id is None:
            templates = ReportTemplate.objects.all()
        elif not consult_id.isdigit():
            raise FieldError("consult: give a consult's number.", field="consult")
        else:
            templates = reports.templates_for(permissions.get_consult_for_user(request.user, int(consult_id)))
        return Response(ReportTemplateSerializer(templates, many=True).data)

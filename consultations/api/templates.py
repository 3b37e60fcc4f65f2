"""``/api/v1/report-templates/``: report templates by specialty and modality."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import ReportTemplate
from .serializers import ReportTemplateSerializer


class TemplateListView(APIView):
    """Report templates by specialty and modality."""

    @extend_schema(responses=ReportTemplateSerializer(many=True))
    def get(self, request):
        return Response(ReportTemplateSerializer(ReportTemplate.objects.all(), many=True).data)

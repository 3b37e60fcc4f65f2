"""``/api/v1/patients/`` and ``/api/v1/studies/``: the patients and studies the user may see."""

from __future__ import annotations

from django.db.models import Count, Q
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import audit
from ..models import AccessEvent, Patient, Study
from ..permissions import get_patient_for_user, get_study_for_user, visible_patients, visible_studies
from .deletion import DELETE_RESPONSES, delete_response


class StudySummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Study
        fields = [
            "id",
            "study_instance_uid",
            "study_date",
            "study_time",
            "description",
            "accession_number",
            "modalities",
            "referring_physician",
            "num_series",
            "num_instances",
            "patient",
            "created_at",
        ]


class PatientSerializer(serializers.ModelSerializer):
    display_name = serializers.CharField(read_only=True)
    num_studies = serializers.IntegerField(read_only=True)

    class Meta:
        model = Patient
        fields = ["id", "patient_id", "issuer", "name", "display_name", "birth_date", "sex", "num_studies"]


class PatientDetailSerializer(PatientSerializer):
    studies = serializers.SerializerMethodField()

    class Meta(PatientSerializer.Meta):
        fields = [*PatientSerializer.Meta.fields, "studies"]

    @extend_schema_field(StudySummarySerializer(many=True))
    def get_studies(self, patient: Patient) -> list[dict]:
        studies = visible_studies(self.context["request"].user).filter(patient=patient)
        return StudySummarySerializer(studies, many=True).data


def _patients_with_counts(user):
    visible = visible_studies(user).values("pk")
    return visible_patients(user).annotate(num_studies=Count("studies", filter=Q(studies__in=visible), distinct=True))


class PatientListView(generics.ListAPIView):
    """Patients with at least one study the user may see."""

    serializer_class = PatientSerializer

    def get_queryset(self):
        return _patients_with_counts(self.request.user).order_by("name", "patient_id", "pk")


class PatientDetailView(generics.RetrieveAPIView):
    """One patient and the studies of theirs the user may see; 404 for anyone else."""

    serializer_class = PatientDetailSerializer

    def get_object(self):
        patient = get_patient_for_user(self.request.user, self.kwargs["pk"])
        patient.num_studies = visible_studies(self.request.user).filter(patient=patient).count()
        return patient


class StudyListView(generics.ListAPIView):
    """Studies the user may see, newest first."""

    serializer_class = StudySummarySerializer

    def get_queryset(self):
        return visible_studies(self.request.user).order_by("-study_date", "-created_at", "pk")


class StudyDetailView(APIView):
    """One study you may see (404 otherwise); an API read, so it is recorded. DELETE removes it."""

    @extend_schema(responses=StudySummarySerializer)
    def get(self, request, study_uid: str):
        study = get_study_for_user(request.user, study_uid)
        audit.record(request, AccessEvent.Action.API_READ, study, study_uid, user=request.user)
        return Response(StudySummarySerializer(study).data)

    @extend_schema(responses=DELETE_RESPONSES)
    def delete(self, request, study_uid: str):
        """Delete the study (studies.deletion: who may, and when it is refused)."""
        return delete_response(request, study_uid)

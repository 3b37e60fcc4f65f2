"""REST API of licences and specialists (``/api/v1/licences/``, ``/api/v1/specialists/``).

Specialists list, add and change their own licences; administrators list every licence and verify
or reject it, and list, approve, suspend, reinstate and invite specialists. The checks and changes
are ``accounts.licences``, ``accounts.specialists`` and ``accounts.specialist_invitations``, as for
the console's pages; a refusal names the field at fault (``{"detail", "code", "<field>": [...]}``).
A licence or specialist the caller may not see is 404.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from teleconsult.responses import FileStreamResponse

from . import licences, specialist_invitations, specialists
from .models import Licence, Organization, Specialty, User


class LicenceSerializer(serializers.ModelSerializer):
    specialist = serializers.IntegerField(source="specialist_id", read_only=True)
    document = serializers.SerializerMethodField(
        help_text="Where the scan is downloaded (its specialist and administrators)"
    )
    reviewed_by = serializers.IntegerField(source="reviewed_by_id", read_only=True, allow_null=True)
    valid_today = serializers.SerializerMethodField(help_text="Verified and not expired today: counts for routing")

    class Meta:
        model = Licence
        fields = [
            "id",
            "specialist",
            "jurisdiction",
            "number",
            "expires_on",
            "status",
            "valid_today",
            "document",
            "document_name",
            "document_kind",
            "document_size",
            "reviewed_at",
            "reviewed_by",
            "rejection_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_document(self, licence: Licence) -> str:
        return f"/api/v1/licences/{licence.pk}/document/"

    def get_valid_today(self, licence: Licence) -> bool:
        return licence.is_valid_on(licences.today())


class LicenceInputSerializer(serializers.Serializer):
    """What a specialist sends (multipart, for the document). ``jurisdiction``: an ISO 3166 code
    (``DE``, ``US-CA``) or a country's or region's name; ``expires_on`` today or later; ``document``
    a PDF, PNG or JPEG no larger than ``TELECONSULT_LICENCE_DOCUMENT_MAX_SIZE``."""

    jurisdiction = serializers.CharField(max_length=80)
    number = serializers.CharField(max_length=64)
    expires_on = serializers.DateField()
    document = serializers.FileField()


class LicenceChangeSerializer(LicenceInputSerializer):
    jurisdiction = serializers.CharField(max_length=80, required=False)
    number = serializers.CharField(max_length=64, required=False)
    expires_on = serializers.DateField(required=False)
    document = serializers.FileField(required=False)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="Shown to the specialist and kept in the history")


class ProfileSerializer(serializers.Serializer):
    specialties = serializers.ListField(child=serializers.CharField())
    approved_at = serializers.DateTimeField(allow_null=True)
    suspended_at = serializers.DateTimeField(allow_null=True)
    suspension_reason = serializers.CharField()


class SpecialistSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField(source="display_name")
    profile = ProfileSerializer(source="specialist_profile", allow_null=True, default=None)
    licences = LicenceSerializer(many=True)


class InvitationInputSerializer(serializers.Serializer):
    email = serializers.EmailField()
    specialties = serializers.ListField(
        child=serializers.ChoiceField(choices=Specialty.choices), allow_empty=False, help_text="Specialty codes"
    )
    practice = serializers.PrimaryKeyRelatedField(
        queryset=Organization.objects.all(), required=False, allow_null=True, help_text="Joined at sign-up"
    )


class InvitationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    specialties = serializers.ListField(child=serializers.CharField())
    practice = serializers.IntegerField(source="practice_id", allow_null=True)
    status = serializers.CharField()
    created_at = serializers.DateTimeField()


@extend_schema_view(
    list=extend_schema(
        summary="Licences: your own (specialists) or everyone's (administrators)",
        parameters=[
            OpenApiParameter("status", str, enum=Licence.Status.values, description="Only licences in this state"),
            OpenApiParameter("specialist", int, description="Administrators: one specialist's licences"),
        ],
    ),
    retrieve=extend_schema(summary="One licence"),
)
class LicenceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = LicenceSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    queryset = Licence.objects.none()

    def get_queryset(self):
        qs = licences.visible_licences(self.request.user).order_by("expires_on", "pk")
        wanted = self.request.query_params.get("status")
        if wanted:
            if wanted not in Licence.Status.values:
                raise serializers.ValidationError({"status": [f"Choose one of {', '.join(Licence.Status.values)}."]})
            qs = qs.filter(status=wanted)
        specialist = self.request.query_params.get("specialist")
        if specialist:
            if not specialist.isdigit():
                raise serializers.ValidationError({"specialist": ["A specialist's number."]})
            qs = qs.filter(specialist_id=int(specialist))
        return qs

    def get_object(self) -> Licence:
        return licences.get_licence_for_user(self.request.user, self.kwargs["pk"])

    @extend_schema(
        summary="Add a licence (specialists; multipart with the scan)",
        request={"multipart/form-data": LicenceInputSerializer},
        responses={201: LicenceSerializer, 400: OpenApiResponse(description="A field is wrong; the body names it")},
    )
    def create(self, request):
        if not licences.may_hold_licences(request.user):
            raise Http404("Only specialists hold licences.")
        data = LicenceInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        licence = licences.add_licence(request.user, by=request.user, **data.validated_data)
        return Response(LicenceSerializer(licence).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Renew or correct your licence: it is verified again",
        request={"multipart/form-data": LicenceChangeSerializer},
        responses={200: LicenceSerializer},
    )
    def partial_update(self, request, pk=None):
        licence = self.get_object()
        if licence.specialist_id != request.user.pk:
            raise Http404("No such licence.")  # administrators verify; only the specialist changes
        data = LicenceChangeSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        licence = licences.change_licence(licence, by=request.user, **data.validated_data)
        return Response(LicenceSerializer(licence).data)

    @extend_schema(summary="The licence's scan", responses={(200, "application/octet-stream"): bytes})
    @action(detail=True, methods=["get"])
    def document(self, request, pk=None):
        licence = self.get_object()
        response = FileStreamResponse(licence.document.open("rb"), content_type=licence.content_type)
        response["Content-Disposition"] = f'attachment; filename="{licence.document_name.replace(chr(34), "")}"'
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @extend_schema(summary="Verify (administrators)", request=None, responses={200: LicenceSerializer})
    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        licence = self._for_admin()
        return Response(LicenceSerializer(licences.verify_licence(licence, by=request.user)).data)

    @extend_schema(
        summary="Reject with a reason (administrators)", request=ReasonSerializer, responses={200: LicenceSerializer}
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        licence = self._for_admin()
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            LicenceSerializer(licences.reject_licence(licence, by=request.user, **data.validated_data)).data
        )

    def _for_admin(self) -> Licence:
        if not self.request.user.is_admin:
            raise Http404("No such licence.")
        return self.get_object()


@extend_schema_view(
    list=extend_schema(
        summary="Specialists (administrators)",
        parameters=[
            OpenApiParameter("filter", str, enum=list(specialists.FILTERS), description="One of the console's filters")
        ],
    ),
    retrieve=extend_schema(summary="One specialist with their licences (administrators)"),
)
class SpecialistViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = SpecialistSerializer
    queryset = User.objects.none()

    def get_queryset(self):
        if not self.request.user.is_admin:
            raise Http404("No such page.")
        return specialists.specialists(self.request.query_params.get("filter", "")).prefetch_related("licences")

    def get_object(self) -> User:
        return specialists.get_specialist_for_admin(self.request.user, self.kwargs["pk"])

    def _answer(self, specialist: User) -> Response:
        specialist.refresh_from_db()
        return Response(
            SpecialistSerializer(specialists.get_specialist_for_admin(self.request.user, specialist.pk)).data
        )

    @extend_schema(summary="Approve", request=None, responses={200: SpecialistSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        specialist = self.get_object()
        specialists.approve(specialist, by=request.user)
        return self._answer(specialist)

    @extend_schema(summary="Suspend with a reason", request=ReasonSerializer, responses={200: SpecialistSerializer})
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        specialist = self.get_object()
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        specialists.suspend(specialist, by=request.user, **data.validated_data)
        return self._answer(specialist)

    @extend_schema(summary="Reinstate", request=None, responses={200: SpecialistSerializer})
    @action(detail=True, methods=["post"])
    def reinstate(self, request, pk=None):
        specialist = self.get_object()
        specialists.reinstate(specialist, by=request.user)
        return self._answer(specialist)

    @extend_schema(
        summary="Invite a specialist by email",
        request=InvitationInputSerializer,
        responses={201: InvitationSerializer},
    )
    @action(detail=False, methods=["post"])
    def invitations(self, request):
        if not request.user.is_admin:
            raise Http404("No such page.")
        data = InvitationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invitation = specialist_invitations.invite(by=request.user, request=request, **data.validated_data)
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)

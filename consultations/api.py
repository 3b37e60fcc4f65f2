"""Consults REST API: requests, transitions, timeline, attachments, participants, reports, notifications.

Views check access through ``consultations.permissions`` (404 for anyone who may not see the
consult), call one action and shape the answer. A refused transition answers 409 (wrong state) or
403 (wrong person) with ``detail`` saying why and ``code`` naming the reason.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Role, Specialty, User, validate_jurisdiction
from studies import audit
from studies.models import AccessEvent, Study
from studies.permissions import visible_studies
from teleconsult.responses import FileStreamResponse

from . import actions, colleagues, notifications, permissions, reports
from .models import (
    Agreement,
    ConsultAttachment,
    ConsultError,
    ConsultEvent,
    ConsultRequest,
    Notification,
    Priority,
    Report,
    ReportTemplate,
    State,
)
from .pdf import render_report_pdf

# -- serializers -------------------------------------------------------------------------------


class ConsultPersonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="display_name")


class ConsultStudySerializer(serializers.Serializer):
    study_uid = serializers.CharField(source="study_instance_uid")
    description = serializers.CharField()
    study_date = serializers.DateField(allow_null=True)
    modalities = serializers.ListField(source="modality_list", child=serializers.CharField())
    patient_name = serializers.CharField(source="patient.display_name")


class ConsultAttachmentSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = ConsultAttachment
        fields = ["id", "name", "kind", "size", "sha256", "uploaded_at", "url"]

    def get_url(self, obj: ConsultAttachment) -> str:
        return reverse("consultations:attachment", args=[obj.consult_id, obj.pk])


class ConsultSerializer(serializers.ModelSerializer):
    state_label = serializers.CharField(source="get_state_display")
    study = ConsultStudySerializer()
    requester = ConsultPersonSerializer()
    assignee = ConsultPersonSerializer(allow_null=True)
    target_specialist = ConsultPersonSerializer(allow_null=True)
    participants = serializers.SerializerMethodField()
    attachments = ConsultAttachmentSerializer(many=True)
    overdue = serializers.BooleanField(source="is_overdue")
    time_left_seconds = serializers.SerializerMethodField()
    urgency = serializers.SerializerMethodField(help_text="Badge colour: ok, warn (past 75 %), bad (overdue)")
    actions = serializers.SerializerMethodField(help_text="Transitions the current user may make now")

    class Meta:
        model = ConsultRequest
        fields = [
            "id",
            "state",
            "state_label",
            "priority",
            "question",
            "clinical_history",
            "specialty",
            "target_specialist",
            "requester",
            "assignee",
            "study",
            "jurisdiction",
            "outside_report",
            "participants",
            "attachments",
            "created_at",
            "submitted_at",
            "due_at",
            "accepted_at",
            "reported_at",
            "closed_at",
            "overdue",
            "time_left_seconds",
            "urgency",
            "actions",
        ]

    def get_participants(self, obj: ConsultRequest) -> list[dict]:
        # Filtered in Python so a prefetched list serves every consult of a page.
        active = [p for p in obj.participants.all() if p.removed_at is None]
        return [{"id": p.user_id, "name": p.user.display_name} for p in active]

    def get_time_left_seconds(self, obj: ConsultRequest) -> int | None:
        left = obj.time_left()
        return int(left.total_seconds()) if left is not None and obj.is_open else None

    def get_urgency(self, obj: ConsultRequest) -> str:
        return obj.urgency_class()

    def get_actions(self, obj: ConsultRequest) -> list[str]:
        return permissions.allowed_actions(self.context["request"].user, obj)

    # What a specialist who only holds an offer is shown: enough to decide, nothing of whose it is.
    OFFER_FIELDS = ("id", "state", "state_label", "priority", "question", "specialty", "jurisdiction", "study")
    OFFER_FIELDS += ("submitted_at", "due_at", "overdue", "time_left_seconds", "urgency", "actions")

    def _care_team(self, user) -> set[int] | None:
        """In a list, the user's care-team consults, read once for the whole answer; alone, None
        (one consult is checked on its own)."""
        if self.parent is None:
            return None
        if "care_team" not in self.context:
            self.context["care_team"] = permissions.care_team_ids(user)
        return self.context["care_team"]

    def to_representation(self, obj: ConsultRequest) -> dict:
        data = super().to_representation(obj)
        user = self.context["request"].user
        if obj.state == State.SUBMITTED and permissions.is_offer_only(user, obj, care_team=self._care_team(user)):
            data = {name: data[name] for name in self.OFFER_FIELDS}
            data["study"] = {
                "modalities": data["study"]["modalities"],
                "body_parts": sorted({series.body_part for series in obj.study.series.all() if series.body_part}),
            }
            data["offer_only"] = True
        return data


class ConsultCreateSerializer(serializers.Serializer):
    study_uid = serializers.CharField(max_length=64, help_text="StudyInstanceUID of a study you may see")
    question = serializers.CharField(max_length=5000, help_text="The clinical question")
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.ROUTINE)
    specialty = serializers.ChoiceField(choices=Specialty.choices, required=False, allow_blank=True)
    specialist_id = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    clinical_history = serializers.CharField(max_length=10000, required=False, allow_blank=True)
    outside_report = serializers.CharField(max_length=20000, required=False, allow_blank=True)
    jurisdiction = serializers.CharField(
        max_length=10, required=False, allow_blank=True, help_text="ISO 3166; defaults to your institution's"
    )
    submit = serializers.BooleanField(default=True, help_text="false keeps it as a draft")

    def validate_study_uid(self, value: str) -> Study:
        study = visible_studies(self.context["request"].user).filter(study_instance_uid=value.strip()).first()
        if study is None:
            raise serializers.ValidationError("No study with this UID that you may see.")
        return study

    def validate_question(self, value: str) -> str:
        if len(value.strip()) < 5:
            raise serializers.ValidationError("Ask a clinical question (at least 5 characters).")
        return value.strip()

    def validate_specialist_id(self, value: int | None) -> User | None:
        if value is None:
            return None
        user = User.objects.filter(pk=value, role=Role.SPECIALIST, is_active=True).first()
        if user is None or not user.may_take_consults:
            raise serializers.ValidationError("No approved specialist with this id.")
        if not user.specialist_profile.accepting_consults:
            raise serializers.ValidationError(f"{user.display_name} is not accepting consults at the moment.")
        return user

    def validate_jurisdiction(self, value: str) -> str:
        value = value.strip().upper()
        if value:
            try:
                validate_jurisdiction(value)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(exc.messages) from None
        return value

    def validate(self, data: dict) -> dict:
        if not data.get("specialty") and not data.get("specialist_id"):
            raise serializers.ValidationError(
                {"specialty": ["Choose a specialty (or name a specialist with specialist_id)."]}
            )
        if not data.get("jurisdiction"):
            profile = getattr(self.context["request"].user, "physician_profile", None)
            if profile is None or not profile.jurisdiction:
                raise serializers.ValidationError(
                    {"jurisdiction": ["Give the patient's jurisdiction; your profile has none to default to."]}
                )
            data["jurisdiction"] = profile.jurisdiction
        specialist = data.get("specialist_id")
        if specialist is not None and not specialist.specialist_profile.licensed_in(data["jurisdiction"]):
            raise serializers.ValidationError(
                {"specialist_id": [f"{specialist.display_name} is not licensed in {data['jurisdiction']}."]}
            )
        return data


class ConsultReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why")


class ConsultOptionalReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class InfoQuestionSerializer(serializers.Serializer):
    question = serializers.CharField(max_length=5000, help_text="What the specialist needs to know")


class InfoAnswerSerializer(serializers.Serializer):
    answer = serializers.CharField(max_length=10000)


class ConsultEventSerializer(serializers.ModelSerializer):
    actor = ConsultPersonSerializer(allow_null=True)
    kind_label = serializers.CharField(source="get_kind_display")

    class Meta:
        model = ConsultEvent
        fields = ["id", "kind", "kind_label", "actor", "at", "message", "data"]


class ConsultReportSerializer(serializers.ModelSerializer):
    author = ConsultPersonSerializer()
    signed_by = ConsultPersonSerializer(allow_null=True)
    signed = serializers.BooleanField(source="is_signed")
    template = serializers.CharField(source="template.name", allow_null=True, default=None)

    class Meta:
        model = Report
        fields = [
            "id",
            "version",
            "findings",
            "impression",
            "recommendations",
            "agreement",
            "patient_summary",
            "addendum_reason",
            "template",
            "author",
            "signed",
            "signed_by",
            "signed_at",
            "content_sha256",
            "created_at",
            "updated_at",
        ]


class ConsultReportDraftSerializer(serializers.Serializer):
    findings = serializers.CharField(max_length=50000, required=False, allow_blank=True, trim_whitespace=False)
    impression = serializers.CharField(max_length=20000, required=False, allow_blank=True, trim_whitespace=False)
    recommendations = serializers.CharField(max_length=20000, required=False, allow_blank=True, trim_whitespace=False)
    agreement = serializers.ChoiceField(
        choices=Agreement.choices, required=False, allow_blank=True, help_text="Against the outside report"
    )
    patient_summary = serializers.CharField(max_length=10000, required=False, allow_blank=True, trim_whitespace=False)

    def validate(self, data: dict) -> dict:
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError({name: ["Not a report field."] for name in sorted(unknown)})
        return data


class ReportSignSerializer(serializers.Serializer):
    password = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, max_length=512)
    code = serializers.CharField(required=False, allow_blank=True, max_length=64, help_text="TOTP or recovery code")

    def validate(self, data: dict) -> dict:
        if not data.get("password") and not data.get("code"):
            raise serializers.ValidationError({"password": ["Enter your password or an authenticator code to sign."]})
        return data


class ParticipantAddSerializer(serializers.Serializer):
    email = serializers.EmailField(help_text="The colleague's email address: they join once they accept")


ColleagueInvited = inline_serializer(
    "ColleagueInvited",
    {
        "status": serializers.CharField(help_text='Always "invited".'),
        "detail": serializers.CharField(),
        "invitation_id": serializers.IntegerField(),
        "expires_at": serializers.DateTimeField(),
    },
)


class ColleagueInvitationSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    consult_id = serializers.IntegerField()
    invited_by = serializers.CharField(source="invited_by.display_name", allow_null=True, default=None)
    question = serializers.CharField(source="consult.question")
    priority = serializers.CharField(source="consult.priority")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class AttachmentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="PDF, PNG or JPEG")


class NotificationSerializer(serializers.ModelSerializer):
    read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "url", "consult", "created_at", "read"]

    def get_read(self, obj: Notification) -> bool:
        return obj.read_at is not None


class NotificationsReadSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, help_text="Omit to mark all read"
    )


class ReportTemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReportTemplate
        fields = ["id", "name", "specialty", "modality", "findings", "impression", "recommendations"]


class ConsultRefusalSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Why the change was refused")
    code = serializers.CharField(help_text="already_taken, illegal_transition, not_allowed, report_signed, ...")


Conflict = OpenApiResponse(
    description="Refused: 409 wrong state, 403 wrong person; `detail` says why",
    response=ConsultRefusalSerializer,
)


def refused(exc: ConsultError) -> Response:
    return Response({"detail": exc.message, "code": exc.code, **exc.extra}, status=exc.status_code)


# -- consults ----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=State.values, description="Only consults in this state"),
            OpenApiParameter("priority", str, enum=Priority.values),
            OpenApiParameter("specialty", str, enum=Specialty.values),
            OpenApiParameter(
                "scope",
                str,
                enum=["worklist", "mine", "all"],
                description="worklist: offered to me or assigned to me (specialists); "
                "mine: requested by me or with me as a colleague",
            ),
        ]
    ),
    retrieve=extend_schema(responses=ConsultSerializer),
)
class ConsultViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Consult requests. Anyone who may not see a consult gets 404."""

    serializer_class = ConsultSerializer
    queryset = ConsultRequest.objects.none()

    def handle_exception(self, exc):
        if isinstance(exc, reports.ReauthenticationError):
            return Response(
                {"detail": exc.message, "code": exc.code, "password": [exc.message]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        if isinstance(exc, ConsultError):
            return refused(exc)
        return super().handle_exception(exc)

    def get_queryset(self):
        user = self.request.user
        qs = (
            permissions.visible_consults(user)
            .select_related("study__patient", "requester", "assignee", "target_specialist")
            .prefetch_related("participants__user", "attachments", "study__series")
        )
        params = self.request.query_params
        scope = params.get("scope", "all")
        if scope == "worklist":
            qs = qs.filter(pk__in=ConsultRequest.objects.worklist_for(user).values("pk"))
        elif scope == "mine":
            qs = qs.filter(pk__in=ConsultRequest.objects.requested_by(user).values("pk")) | qs.filter(
                participants__user=user, participants__removed_at__isnull=True
            )
        for name in ("state", "priority", "specialty"):
            if params.get(name):
                qs = qs.filter(**{name: params[name]})
        return qs.distinct().in_worklist_order()

    def list(self, request, *args, **kwargs):
        errors = {}
        params = request.query_params
        for name, allowed in (
            ("state", State.values),
            ("priority", Priority.values),
            ("specialty", Specialty.values),
            ("scope", ["worklist", "mine", "all"]),
        ):
            if params.get(name) and params[name] not in allowed:
                errors[name] = [f"Must be one of: {', '.join(allowed)}."]
        if errors:
            raise serializers.ValidationError(errors)
        return super().list(request, *args, **kwargs)

    # Routes a specialist who only holds an offer may use: read the offer, accept or decline it.
    OFFER_ACTIONS = frozenset({"retrieve", "accept", "decline"})

    def get_object(self) -> ConsultRequest:
        offer_view = self.action in self.OFFER_ACTIONS
        return permissions.get_consult_for_user(self.request.user, self.kwargs["pk"], offer_view=offer_view)

    def _answer(self, consult: ConsultRequest, code: int = status.HTTP_200_OK) -> Response:
        # After declining, the offer is gone: the answer shows what the caller still sees.
        try:
            consult = permissions.get_consult_for_user(self.request.user, consult.pk, offer_view=True)
        except Http404:
            return Response({"id": consult.pk, "state": consult.state, "detail": "The offer is no longer yours."})
        return Response(ConsultSerializer(consult, context={"request": self.request}).data, status=code)

    @extend_schema(request=ConsultCreateSerializer, responses={201: ConsultSerializer, 400: OpenApiTypes.OBJECT})
    def create(self, request):
        """Request a consult on a study (submitted at once unless ``submit`` is false)."""
        serializer = ConsultCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        consult = actions.create_consult(
            by=request.user,
            study=data["study_uid"],
            submit=data["submit"],
            question=data["question"],
            priority=data["priority"],
            specialty=data.get("specialty", ""),
            target_specialist=data.get("specialist_id"),
            clinical_history=data.get("clinical_history", ""),
            outside_report=data.get("outside_report", ""),
            jurisdiction=data["jurisdiction"],
        )
        return self._answer(consult, status.HTTP_201_CREATED)

    @extend_schema(responses=ConsultEventSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def events(self, request, pk=None):
        """The consult's timeline, oldest first."""
        consult = self.get_object()
        return Response(ConsultEventSerializer(consult.events.select_related("actor"), many=True).data)

    @extend_schema(request=None, responses={200: ConsultSerializer, 403: Conflict, 409: Conflict})
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        consult = self.get_object()
        actions.submit_consult(consult, by=request.user)
        return self._answer(consult)

    @extend_schema(request=None, responses={200: ConsultSerializer, 403: Conflict, 409: Conflict})
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        """Claim the consult; when someone was faster, 409 with ``taken_by``."""
        consult = permissions.get_consult_to_claim(request.user, pk)
        actions.accept_consult(consult, by=request.user)
        return self._answer(consult)

    @extend_schema(request=ConsultReasonSerializer, responses={200: ConsultSerializer, 403: Conflict, 409: Conflict})
    @action(detail=True, methods=["post"])
    def decline(self, request, pk=None):
        consult = self.get_object()
        serializer = ConsultReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        actions.decline_consult(consult, by=request.user, reason=serializer.validated_data["reason"])
        return self._answer(consult)

    @extend_schema(
        request=ConsultOptionalReasonSerializer, responses={200: ConsultSerializer, 403: Conflict, 409: Conflict}
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        consult = self.get_object()
        serializer = ConsultOptionalReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        actions.cancel_consult(consult, by=request.user, reason=serializer.validated_data["reason"])
        return self._answer(consult)

    @extend_schema(request=InfoQuestionSerializer, responses={200: ConsultSerializer, 403: Conflict, 409: Conflict})
    @action(detail=True, methods=["post"], url_path="request-info")
    def request_info(self, request, pk=None):
        consult = self.get_object()
        serializer = InfoQuestionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        actions.request_info(consult, by=request.user, question=serializer.validated_data["question"])
        return self._answer(consult)

    @extend_schema(request=InfoAnswerSerializer, responses={200: ConsultSerializer, 403: Conflict, 409: Conflict})
    @action(detail=True, methods=["post"], url_path="answer-info")
    def answer_info(self, request, pk=None):
        consult = self.get_object()
        serializer = InfoAnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        actions.answer_info(consult, by=request.user, answer=serializer.validated_data["answer"])
        return self._answer(consult)

    @extend_schema(request=None, responses={200: ConsultSerializer, 403: Conflict, 409: Conflict})
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        consult = self.get_object()
        actions.close_consult(consult, by=request.user)
        return self._answer(consult)

    @extend_schema(request=ParticipantAddSerializer, responses={202: ColleagueInvited, 403: Conflict})
    @action(detail=True, methods=["post"])
    def participants(self, request, pk=None):
        """Invite a colleague (physician or specialist) by email; they see the case and its study once
        they accept. The answer is the same whoever the address belongs to."""
        consult = self.get_object()
        serializer = ParticipantAddSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation, answer = colleagues.invite_colleague(
            consult, by=request.user, email=serializer.validated_data["email"]
        )
        body = {
            "status": "invited",
            "detail": answer,
            "invitation_id": invitation.pk,
            "expires_at": invitation.expires_at,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: ConsultSerializer, 403: Conflict, 409: Conflict})
    @action(detail=True, methods=["delete"], url_path=r"participants/(?P<user_id>\d+)")
    def remove_participant(self, request, pk=None, user_id=None):
        consult = self.get_object()
        user = get_object_or_404(User, pk=user_id)
        actions.remove_participant(consult, by=request.user, user=user)
        return self._answer(consult)

    @extend_schema(
        request={"multipart/form-data": AttachmentUploadSerializer},
        responses={201: ConsultAttachmentSerializer, 400: OpenApiTypes.OBJECT, 403: Conflict},
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def attachments(self, request, pk=None):
        """Attach a PDF or image (checked by content; size limited)."""
        consult = self.get_object()
        serializer = AttachmentUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            attachment = actions.add_attachment(consult, by=request.user, upload=serializer.validated_data["file"])
        except actions.AttachmentRefusedError as exc:
            return Response({"detail": exc.message, "file": [exc.message]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(ConsultAttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None, responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 404: OpenApiTypes.OBJECT}
    )
    @action(detail=True, methods=["get"], url_path=r"attachments/(?P<attachment_id>\d+)")
    def attachment(self, request, pk=None, attachment_id=None):
        """Download one attachment (PDF, PNG or JPEG)."""
        consult = self.get_object()
        return attachment_response(consult, int(attachment_id))

    # -- report --------------------------------------------------------------------------------

    @extend_schema(methods=["GET"], request=None, responses={200: ConsultReportSerializer, 404: OpenApiTypes.OBJECT})
    @extend_schema(
        methods=["PUT"],
        request=ConsultReportDraftSerializer,
        responses={200: ConsultReportSerializer, 400: OpenApiTypes.OBJECT, 403: Conflict, 409: Conflict},
    )
    @action(detail=True, methods=["get", "put"], parser_classes=[JSONParser])
    def report(self, request, pk=None):
        """GET the newest version you may read (signed only, unless you are its author);
        PUT saves the draft (fields you leave out stay as they are)."""
        consult = self.get_object()
        if request.method == "PUT":
            serializer = ConsultReportDraftSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            report = reports.save_draft(consult, by=request.user, **serializer.validated_data)
            return Response(ConsultReportSerializer(report).data)
        report = permissions.report_for_user(request.user, consult)
        if report is None:
            raise Http404("No report yet.")
        audit.record(request, AccessEvent.Action.REPORT_VIEW, consult.study, f"report:{report.pk}")
        return Response(ConsultReportSerializer(report).data)

    @extend_schema(request=None, responses=ConsultReportSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="report/versions", pagination_class=None)
    def report_versions(self, request, pk=None):
        """Every version you may read, oldest first (addenda after the report they amend)."""
        consult = self.get_object()
        return Response(ConsultReportSerializer(permissions.visible_reports(request.user, consult), many=True).data)

    @extend_schema(
        request=ReportSignSerializer,
        responses={200: ConsultReportSerializer, 400: OpenApiTypes.OBJECT, 403: Conflict, 409: Conflict},
    )
    @action(detail=True, methods=["post"], url_path="report/sign")
    def sign(self, request, pk=None):
        """Sign the draft; asks again for the password or a TOTP code."""
        consult = self.get_object()
        serializer = ReportSignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            report = reports.sign_report(consult, by=request.user, **serializer.validated_data)
        except reports.ReauthenticationError as exc:
            field = "code" if serializer.validated_data.get("code") else "password"
            return Response({"detail": exc.message, field: [exc.message]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(ConsultReportSerializer(report).data)

    @extend_schema(
        request=ConsultReasonSerializer, responses={201: ConsultReportSerializer, 403: Conflict, 409: Conflict}
    )
    @action(detail=True, methods=["post"], url_path="report/addendum")
    def addendum(self, request, pk=None):
        """Start an addendum: a new draft version with a reason; sign it like the report."""
        consult = self.get_object()
        serializer = ConsultReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report = reports.start_addendum(consult, by=request.user, reason=serializer.validated_data["reason"])
        return Response(ConsultReportSerializer(report).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={(200, "application/pdf"): OpenApiTypes.BINARY, 404: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"], url_path="report/pdf")
    def pdf(self, request, pk=None):
        """The signed report and its addenda as a PDF."""
        consult = self.get_object()
        response = report_pdf_response(consult)
        audit.record(request, AccessEvent.Action.REPORT_PDF, consult.study, f"consult:{consult.pk}")
        return response


def report_pdf_response(consult: ConsultRequest) -> HttpResponse:
    signed = list(consult.reports.filter(signed_at__isnull=False).select_related("signed_by"))
    if not signed:
        raise Http404("No signed report yet.")
    response = HttpResponse(render_report_pdf(consult, signed), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="consult-{consult.pk}-report.pdf"'
    return response


def attachment_response(consult: ConsultRequest, attachment_pk: int) -> FileStreamResponse:
    attachment = consult.attachments.filter(pk=attachment_pk).first()
    if attachment is None:
        raise Http404("No such attachment.")
    response = FileStreamResponse(attachment.file.open("rb"), content_type=attachment.content_type)
    response["Content-Disposition"] = f'attachment; filename="{attachment.name.replace(chr(34), "")}"'
    return response


# -- notifications and templates ---------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("unread", bool, description="true: only unread notifications")],
    )
)
class NotificationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Your notifications, newest first."""

    serializer_class = NotificationSerializer
    queryset = Notification.objects.none()

    def get_queryset(self):
        qs = Notification.objects.filter(user=self.request.user)
        unread = self.request.query_params.get("unread")
        if unread in ("true", "1"):
            qs = qs.filter(read_at__isnull=True)
        elif unread not in (None, "", "false", "0"):
            raise serializers.ValidationError({"unread": ["Must be true or false."]})
        return qs

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        response.data["unread"] = notifications.unread_count(request.user)
        return response

    @extend_schema(
        request=NotificationsReadSerializer,
        responses=inline_serializer(
            "MarkReadResult", {"marked": serializers.IntegerField(), "unread": serializers.IntegerField()}
        ),
    )
    @action(detail=False, methods=["post"])
    def read(self, request):
        """Mark some (``ids``) or all of your notifications read."""
        serializer = NotificationsReadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        marked = notifications.mark_read(request.user, serializer.validated_data.get("ids"))
        return Response({"marked": marked, "unread": notifications.unread_count(request.user)})


class TemplateListView(APIView):
    """Report templates by specialty and modality."""

    @extend_schema(responses=ReportTemplateSerializer(many=True))
    def get(self, request):
        return Response(ReportTemplateSerializer(ReportTemplate.objects.all(), many=True).data)


class ColleagueInvitationListView(APIView):
    """Your pending invitations to join consults."""

    @extend_schema(responses=ColleagueInvitationSerializer(many=True))
    def get(self, request):
        return Response(ColleagueInvitationSerializer(colleagues.invitations_for(request.user), many=True).data)


class ColleagueInvitationAnswerView(APIView):
    """``accept`` makes you a participant of the consult; ``decline`` does not."""

    @extend_schema(
        request=None, responses={200: inline_serializer("ColleagueAnswer", {"status": serializers.CharField()})}
    )
    def post(self, request, pk: int, answer: str):
        if answer not in colleagues.ANSWERS:
            raise Http404("Answer accept or decline.")
        invitation = colleagues.get_invitation_for_user(request.user, pk)
        try:
            colleagues.ANSWERS[answer](invitation, user=request.user)
        except ConsultError as exc:
            return refused(exc)
        return Response({"status": "joined" if answer == "accept" else "declined"})

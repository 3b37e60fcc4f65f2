"""The consult API's serializers: consults, their timeline, reports, colleagues, attachments,
notifications and templates, and the refusal body every endpoint documents."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from accounts.models import Role, Specialty, User, validate_jurisdiction
from studies.models import Study
from studies.permissions import visible_studies

from .. import actions, permissions, versions
from ..models import (
    Agreement,
    ConsultAttachment,
    ConsultEvent,
    ConsultRequest,
    Notification,
    Priority,
    Report,
    ReportTemplate,
    State,
)


class ConsultPersonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="display_name")


class ConsultStudySerializer(serializers.Serializer):
    study_uid = serializers.CharField(source="study_instance_uid")
    description = serializers.CharField()
    study_date = serializers.DateField(allow_null=True)
    modalities = serializers.ListField(source="modality_list", child=serializers.CharField())
    patient_name = serializers.CharField(source="patient.display_name")
    identities = serializers.IntegerField(
        help_text="How many patients the study's images name; more than 1: check whose images they are "
        "(signing then needs confirm_identity)"
    )


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

    def create(self, validated_data: dict):
        """``save(by=user)``: the consult, requested through the one writer (consultations.actions),
        whichever way in (the REST API, FHIR's ServiceRequest)."""
        data = validated_data
        return actions.create_consult(
            by=data["by"],
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


class ReportVersionListSerializer(serializers.ListSerializer):
    """Versions listed together (what one reader may read) name each other: an older one the
    version that superseded it (consultations.versions.labelled)."""

    def to_representation(self, data):
        return super().to_representation(versions.labelled(data.all() if hasattr(data, "all") else data))


class ConsultReportSerializer(serializers.ModelSerializer):
    author = ConsultPersonSerializer()
    signed_by = ConsultPersonSerializer(allow_null=True)
    signed = serializers.BooleanField(source="is_signed")
    template = serializers.CharField(source="template.name", allow_null=True, default=None)
    amended = serializers.BooleanField(
        source="is_addendum", help_text="This version amends an earlier one (addendum_reason says why)"
    )
    supersedes = serializers.SerializerMethodField(help_text="The version this one replaces (null for version 1)")
    superseded_by = serializers.SerializerMethodField(
        help_text="The signed version that replaced this one, among those you may read (null: this is the current one)"
    )
    superseded_at = serializers.SerializerMethodField(help_text="When that version was signed")

    class Meta:
        model = Report
        list_serializer_class = ReportVersionListSerializer
        fields = [
            "id",
            "version",
            "findings",
            "impression",
            "recommendations",
            "agreement",
            "patient_summary",
            "addendum_reason",
            "amended",
            "supersedes",
            "superseded_by",
            "superseded_at",
            "template",
            "author",
            "signed",
            "signed_by",
            "signed_at",
            "release_at",
            "content_sha256",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {"release_at": {"help_text": "When the patient may read this signed version"}}

    def get_supersedes(self, obj: Report) -> int | None:
        return versions.supersedes(obj)

    def get_superseded_by(self, obj: Report) -> int | None:
        successor = getattr(obj, "successor", None)  # set when listed with the newer versions
        return successor.version if successor is not None else None

    def get_superseded_at(self, obj: Report) -> datetime | None:
        successor = getattr(obj, "successor", None)
        return successor.signed_at if successor is not None else None


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
    confirm_identity = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Needed when the patient or study changed since the consult was made (409 identity_changed)",
    )

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

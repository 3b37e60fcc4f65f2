"""``/api/v1/consults/{id}/questions/``: a patient's questions about their signed report, and the
care team's answers (``consultations.questions``).

The patient lists their own questions and asks; the care team lists them all and answers one at
``.../questions/{question_id}/answer/``. Anyone who may not see the consult gets 404.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import actions, permissions, questions
from ..models import PatientQuestion
from .serializers import Conflict

# Bad text (400), not the patient / not the care team (403), not yours to see (404), no released
# report yet, too many waiting or answered already (409).
REFUSALS = {400: OpenApiTypes.OBJECT, 403: Conflict, 404: OpenApiTypes.OBJECT, 409: Conflict}


class QuestionPersonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="display_name")


class PatientQuestionSerializer(serializers.ModelSerializer):
    asked_by = QuestionPersonSerializer(read_only=True)
    answered_by = QuestionPersonSerializer(read_only=True, allow_null=True)
    answered = serializers.BooleanField(source="is_answered", read_only=True)

    class Meta:
        model = PatientQuestion
        fields = ["id", "text", "asked_by", "asked_at", "answered", "answer", "answered_by", "answered_at"]
        read_only_fields = fields


class QuestionTextSerializer(serializers.Serializer):
    """The question or the answer."""

    # Described here; checked by consultations.questions.clean_text, the pages' rule, so the API and
    # the pages refuse alike (a number or a list is refused, not turned into text).
    text = serializers.CharField(min_length=1, max_length=questions.MAX_TEXT, help_text="Plain text")


def _text(request) -> object:
    data = request.data if isinstance(request.data, dict) else {}
    return data.get("text")


class QuestionListView(APIView):
    @extend_schema(
        request=None,
        responses={200: PatientQuestionSerializer(many=True), 404: OpenApiTypes.OBJECT},
        summary="The patient's questions about the report",
        description="The patient sees their own questions and the answers; the care team sees every question.",
    )
    def get(self, request, pk: int):
        consult = permissions.get_consult_for_user(request.user, pk)
        return Response(PatientQuestionSerializer(questions.visible_questions(request.user, consult), many=True).data)

    @extend_schema(
        request=QuestionTextSerializer,
        responses={201: PatientQuestionSerializer, **REFUSALS},
        summary="Ask the care team about the signed report (the consult's patient)",
        description="Once a signed report is released to the patient. The question also goes into the "
        "consult's chat, marked as the patient's; the care team answers it.",
    )
    def post(self, request, pk: int):
        consult = permissions.get_consult_for_user(request.user, pk)
        question = actions.ask_question(consult, by=request.user, text=_text(request))
        return Response(PatientQuestionSerializer(question).data, status=status.HTTP_201_CREATED)


class QuestionAnswerView(APIView):
    @extend_schema(
        request=QuestionTextSerializer,
        responses={200: PatientQuestionSerializer, **REFUSALS},
        summary="Answer the patient's question (the care team); the answer is visible to the patient",
    )
    def post(self, request, pk: int, question_id: int):
        consult = permissions.get_consult_for_user(request.user, pk)
        question = actions.answer_question(consult, question_id, by=request.user, text=_text(request))
        return Response(PatientQuestionSerializer(question).data)

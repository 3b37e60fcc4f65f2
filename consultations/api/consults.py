"""``/api/v1/consults/``: requests, transitions, timeline, attachments, colleagues and the report.

Views check access through ``consultations.permissions`` (404 for anyone who may not see the
consult), call one action and shape the answer. A refusal is a ``PortalError`` that the API's
exception handler answers: 409 (wrong state) or 403 (wrong person) with ``detail`` saying why and
``code`` naming the reason.
"""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from accounts.models import Specialty, User
from studies import audit
from studies.models import AccessEvent

from .. import actions, permissions, release, reports
from ..models import ConsultRequest, Priority, State
from ..portal import signed_versions
from ..responses import attachment_response, report_pdf_response
from .serializers import (
    AttachmentUploadSerializer,
    ColleagueInvited,
    Conflict,
    ConsultAttachmentSerializer,
    ConsultCreateSerializer,
    ConsultEventSerializer,
    ConsultOptionalReasonSerializer,
    ConsultReasonSerializer,
    ConsultReportDraftSerializer,
    ConsultReportSerializer,
    ConsultSerializer,
    InfoAnswerSerializer,
    InfoQuestionSerializer,
    ParticipantAddSerializer,
    ReportSignSerializer,
)


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
        consult = serializer.save(by=request.user)
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
        invitation, answer = actions.invite_colleague(
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
        attachment = actions.add_attachment(consult, by=request.user, upload=serializer.validated_data["file"])
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
        """GET the newest version you may read (signed only, unless you are its author; a patient only
        once it is released to them, 404 before); PUT saves the draft (fields you leave out stay as they are)."""
        consult = self.get_object()
        if request.method == "PUT":
            serializer = ConsultReportDraftSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            report = reports.save_draft(consult, by=request.user, **serializer.validated_data)
            return Response(ConsultReportSerializer(report).data)
        readable = release.for_reader(request.user, permissions.visible_reports(request.user, consult))
        report = readable.order_by("-version").first()
        if report is None:
            raise Http404("No report yet.")
        audit.record(request, AccessEvent.Action.REPORT_VIEW, consult.study, f"report:{report.pk}")
        return Response(ConsultReportSerializer(report).data)

    @extend_schema(request=None, responses=ConsultReportSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="report/versions", pagination_class=None)
    def report_versions(self, request, pk=None):
        """Every version you may read, oldest first (addenda after the report they amend)."""
        consult = self.get_object()
        readable = release.for_reader(request.user, permissions.visible_reports(request.user, consult))
        return Response(ConsultReportSerializer(readable, many=True).data)

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
        report = reports.sign_report(consult, by=request.user, **serializer.validated_data)
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
        response = report_pdf_response(consult, signed_versions(request.user, consult))
        audit.record(request, AccessEvent.Action.REPORT_PDF, consult.study, f"consult:{consult.pk}")
        return response

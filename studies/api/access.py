"""REST API for who may reach a study: share links and the access history.

- ``/api/v1/shares/``: make (POST), list (GET) and revoke (``DELETE /api/v1/shares/{id}/``) links.
- ``/api/v1/access-events/?study_uid=...``: the access history the caller may read.
"""

from __future__ import annotations

from django.db.models import Count, Max
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import audit, sharing
from ..models import AccessEvent, ShareLink
from ..permissions import get_study_for_user


class ShareLinkSerializer(serializers.ModelSerializer):
    study_uid = serializers.CharField(source="study.study_instance_uid", read_only=True)
    status = serializers.CharField(read_only=True, help_text="active, expired, revoked or locked")
    has_passcode = serializers.BooleanField(read_only=True)
    uses = serializers.SerializerMethodField(help_text="How many times the link was used (access events)")
    last_used_at = serializers.SerializerMethodField()

    class Meta:
        model = ShareLink
        fields = [
            "id",
            "study_uid",
            "token_prefix",
            "label",
            "created_at",
            "expires_at",
            "has_passcode",
            "allow_download",
            "include_report",
            "failed_attempts",
            "status",
            "revoked_at",
            "uses",
            "last_used_at",
        ]

    def get_uses(self, link: ShareLink) -> int:
        if hasattr(link, "use_count"):
            return link.use_count
        return link.access_events.count()

    def get_last_used_at(self, link: ShareLink) -> str | None:
        if hasattr(link, "last_used"):
            last = link.last_used
        else:
            last = link.access_events.order_by("-at").values_list("at", flat=True).first()
        return serializers.DateTimeField().to_representation(last) if last else None


class NewShareLinkSerializer(ShareLinkSerializer):
    url = serializers.CharField(read_only=True, help_text="The link, /s/<token>. Shown only in this answer.")

    class Meta(ShareLinkSerializer.Meta):
        fields = [*ShareLinkSerializer.Meta.fields, "url"]


class ShareCreateSerializer(serializers.Serializer):
    study_uid = serializers.CharField(max_length=64)
    expires_in_days = serializers.IntegerField(
        min_value=1, max_value=sharing.MAX_DAYS, default=sharing.DEFAULT_DAYS, help_text="1 to 90, default 7"
    )
    passcode = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        min_length=sharing.MIN_PASSCODE,
        max_length=sharing.MAX_PASSCODE,
        help_text="Optional; the recipient must enter it. Five wrong tries lock the link.",
    )
    allow_download = serializers.BooleanField(default=False)
    include_report = serializers.BooleanField(
        default=False,
        help_text="The holder also reads the study's latest signed report and its PDF, also one signed later.",
    )
    label = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="Who it is for")


class AccessEventSerializer(serializers.ModelSerializer):
    share_link = serializers.IntegerField(source="share_link_id", allow_null=True, read_only=True)
    user = serializers.IntegerField(source="user_id", allow_null=True, read_only=True)
    action_label = serializers.CharField(source="get_action_display", read_only=True)
    object = serializers.CharField(source="object_id", read_only=True)

    class Meta:
        model = AccessEvent
        fields = ["id", "at", "actor", "user", "share_link", "action", "action_label", "study_uid", "object", "ip"]


class EventPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class ShareListCreateView(APIView):
    """Your share links with their uses (GET); make one (POST).

    The answer to POST is the only time the full link (``url``) is shown: the server keeps a hash
    of its token, not the token. Send the passcode, if any, by another channel than the link.
    """

    @extend_schema(responses=ShareLinkSerializer(many=True))
    def get(self, request):
        links = sharing.links_of(request.user).annotate(
            use_count=Count("access_events"), last_used=Max("access_events__at")
        )
        study_uid = request.query_params.get("study_uid")
        if study_uid:
            links = links.filter(study__study_instance_uid=study_uid)
        return Response(ShareLinkSerializer(links, many=True).data)

    @extend_schema(request=ShareCreateSerializer, responses={201: NewShareLinkSerializer})
    def post(self, request):
        serializer = ShareCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        study = get_study_for_user(request.user, data["study_uid"])
        new = sharing.create_share(
            study=study,
            by=request.user,
            expires_in_days=data["expires_in_days"],
            passcode=data.get("passcode", ""),
            allow_download=data["allow_download"],
            include_report=data["include_report"],
            label=data.get("label", ""),
        )
        body = NewShareLinkSerializer(new.link).data
        body["url"] = new.path
        return Response(body, status=status.HTTP_201_CREATED)


class ShareDetailView(APIView):
    """One of your links with each use (GET); revoke it (DELETE): it stops working at once."""

    def get_link(self, request, pk: int) -> ShareLink:
        link = sharing.links_of(request.user).filter(pk=pk).first()
        if link is None:
            raise Http404("No such share link.")
        return link

    @extend_schema(
        responses=inline_serializer(
            "ShareLinkWithUses", {"link": ShareLinkSerializer(), "events": AccessEventSerializer(many=True)}
        )
    )
    def get(self, request, pk: int):
        link = self.get_link(request, pk)
        events = link.access_events.order_by("-at")[:500]
        return Response(
            {"link": ShareLinkSerializer(link).data, "events": AccessEventSerializer(events, many=True).data}
        )

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        self.get_link(request, pk).revoke(by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AccessEventListView(generics.ListAPIView):
    """Access history you may read: patients their own studies, clinicians the studies they
    uploaded and their share links, administrators everything. Newest first, paginated."""

    serializer_class = AccessEventSerializer
    pagination_class = EventPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("study_uid", str, description="Only this study"),
            OpenApiParameter("action", str, description="Only this action, e.g. viewer_load"),
            OpenApiParameter("share_link", int, description="Only this share link"),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        events = audit.visible_events(self.request.user)
        params = self.request.query_params
        if params.get("study_uid"):
            # A study the caller may not see is a 404, as everywhere else.
            study = get_study_for_user(self.request.user, params["study_uid"][:64])
            events = events.filter(study=study)
        if params.get("action"):
            if params["action"] not in AccessEvent.Action.values:
                raise serializers.ValidationError(
                    {"action": [f"Unknown action; one of {', '.join(AccessEvent.Action.values)}."]}
                )
            events = events.filter(action=params["action"])
        if params.get("share_link"):
            try:
                events = events.filter(share_link_id=int(params["share_link"]))
            except ValueError:
                raise serializers.ValidationError({"share_link": ["A share link id is a number."]}) from None
        return events

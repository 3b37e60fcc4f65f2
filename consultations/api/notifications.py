"""``/api/v1/notifications/``: your notifications, and marking them read."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .. import notifications
from ..models import Notification
from .serializers import NotificationSerializer, NotificationsReadSerializer


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

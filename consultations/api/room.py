"""``/api/v1/consults/{id}/messages/``: the consult room's chat for API clients.

Listing pages backwards from the newest message; posting goes through the same action as the
WebSocket (``actions.post_message``), so API and room clients see the same messages, broadcast the same way.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import actions, room


class AuthorSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    role = serializers.CharField()


class MessageSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    client_id = serializers.CharField(required=False, allow_blank=True, max_length=room.MAX_CLIENT_ID)
    author = AuthorSerializer(read_only=True)
    text = serializers.CharField(max_length=room.MAX_TEXT)
    sent_at = serializers.DateTimeField(read_only=True)


class MessagePageSerializer(serializers.Serializer):
    results = MessageSerializer(many=True)
    next_before_id = serializers.IntegerField(allow_null=True, help_text="Pass as before_id for older messages")
    unread = serializers.IntegerField(help_text="Messages from others after your read mark")


class ConsultMessagesView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("before_id", int, description="Only messages older than this id"),
            OpenApiParameter("limit", int, description=f"At most this many (1-{room.HISTORY_PAGE})"),
        ],
        responses=MessagePageSerializer,
    )
    def get(self, request, pk: int):
        consult = room.get_room_for_user(request.user, pk)
        before_id = _positive_int(request.query_params.get("before_id"), "before_id")
        limit = _positive_int(request.query_params.get("limit"), "limit") or room.HISTORY_PAGE
        limit = min(limit, room.HISTORY_PAGE)
        messages = room.history(consult, before_id=before_id, limit=limit)
        next_before = messages[0]["id"] if len(messages) == limit else None
        return Response(
            {"results": messages, "next_before_id": next_before, "unread": room.unread_count(consult, request.user)}
        )

    @extend_schema(request=MessageSerializer, responses={201: MessageSerializer})
    def post(self, request, pk: int):
        consult = room.get_room_for_user(request.user, pk)
        serializer = MessageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        message = actions.post_message(
            consult,
            author=request.user,
            text=serializer.validated_data["text"],
            client_id=serializer.validated_data.get("client_id", ""),
        )
        return Response(room.message_payload(message), status=status.HTTP_201_CREATED)


def _positive_int(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise serializers.ValidationError({name: [f"{name} must be a positive integer."]})
    return number

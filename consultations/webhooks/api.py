"""``/api/v1/webhooks/``: the same as the webhooks pages, for practice admins and administrators.

The secret is in the answer of a create and of ``rotate-secret`` only. Another practice's
subscription, its actions and its log are 404s. Refusals (a URL that is not https or not public,
an unknown event, a practice one does not administer) are 400s naming the field.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from ..api.serializers import ConsultPersonSerializer, ConsultRefusalSerializer
from ..models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEvent, WebhookSubscription
from . import events, log, subscriptions

REFUSALS = {400: ConsultRefusalSerializer, 404: ConsultRefusalSerializer}


class WebhookSerializer(serializers.ModelSerializer):
    practice = serializers.IntegerField(
        source="practice_id", allow_null=True, required=False, help_text="null: every practice (administrators only)"
    )
    url = serializers.CharField(max_length=2000, help_text="https:// URL resolving to public addresses")
    events = serializers.ListField(
        child=serializers.CharField(max_length=40), help_text=f"Any of: {', '.join(WebhookEvent.values)}"
    )
    # A plain string, so the schema's consult "state" enum keeps its name.
    state = serializers.CharField(read_only=True, help_text="active, or paused (nothing is sent until resumed)")
    created_by = ConsultPersonSerializer(read_only=True, allow_null=True)
    secret_hint = serializers.CharField(read_only=True)

    class Meta:
        model = WebhookSubscription
        fields = [
            "id",
            "practice",
            "url",
            "description",
            "events",
            "include_resource",
            "state",
            "paused_at",
            "paused_reason",
            "consecutive_failures",
            "secret_hint",
            "secret_rotated_at",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "state",
            "paused_at",
            "paused_reason",
            "consecutive_failures",
            "secret_rotated_at",
            "created_at",
            "updated_at",
        ]


class WebhookWithSecretSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown here once: keep it to verify signatures")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "at", "status_code", "error", "duration_ms"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid")
    attempts = WebhookAttemptSerializer(source="attempt_log", many=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "event", "status", "created_at", "completed_at", "attempts"]


class WebhookViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Webhook subscriptions of the practices you administer (all of them, and global ones, for
    administrators)."""

    serializer_class = WebhookSerializer
    queryset = WebhookSubscription.objects.none()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if not subscriptions.may_manage_webhooks(self.request.user):
            raise Http404("No such page.")
        return subscriptions.subscriptions_for(self.request.user)

    def get_object(self):
        return subscriptions.get_subscription_to_manage(self.request.user, self.kwargs["pk"])

    @extend_schema(request=WebhookSerializer, responses={201: WebhookWithSecretSerializer, **REFUSALS})
    def create(self, request, *args, **kwargs):
        """Subscribe a URL to events; the answer holds the secret, shown this once."""
        if not subscriptions.may_manage_webhooks(request.user):
            raise Http404("No such page.")
        serializer = WebhookSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        subscription = subscriptions.create(
            request.user,
            url=data["url"],
            events=data["events"],
            practice_id=data.get("practice_id"),
            include_resource=data.get("include_resource", False),
            description=data.get("description", ""),
        )
        return Response(WebhookWithSecretSerializer(subscription).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: WebhookSerializer, **REFUSALS})
    def partial_update(self, request, *args, **kwargs):
        """Change the URL, events, description or include_resource."""
        subscription = self.get_object()
        serializer = WebhookSerializer(subscription, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = ("url", "description", "include_resource", "events")
        changes = {name: value for name, value in serializer.validated_data.items() if name in fields}
        subscriptions.update(subscription, **changes)
        return Response(WebhookSerializer(subscription).data)

    def update(self, request, *args, **kwargs):
        return self.partial_update(request, *args, **kwargs)

    def perform_destroy(self, instance):
        subscriptions.delete(instance)

    @extend_schema(request=None, responses={200: WebhookSerializer, 404: ConsultRefusalSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        subscription = self.get_object()
        subscriptions.pause(subscription)
        return Response(WebhookSerializer(subscription).data)

    @extend_schema(request=None, responses={200: WebhookSerializer, 404: ConsultRefusalSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Active again; the count of failed deliveries starts anew."""
        subscription = self.get_object()
        subscriptions.resume(subscription)
        return Response(WebhookSerializer(subscription).data)

    @extend_schema(request=None, responses={200: WebhookWithSecretSerializer, 404: ConsultRefusalSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        """A new secret, in force at once; the answer holds it, shown this once."""
        subscription = self.get_object()
        subscriptions.rotate_secret(subscription)
        return Response(WebhookWithSecretSerializer(subscription).data)

    @extend_schema(
        request=None,
        responses={
            202: inline_serializer("WebhookTestQueued", {"delivery": serializers.UUIDField()}),
            404: ConsultRefusalSerializer,
        },
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Queue a ``webhook.test`` delivery (sent even while paused); follow it in the log."""
        delivery = events.send_test(self.get_object())
        return Response({"delivery": str(delivery.uuid)}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: WebhookDeliverySerializer(many=True), 404: ConsultRefusalSerializer})
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        """The delivery log, newest first, each delivery with its tries (status code or error)."""
        subscription = self.get_object()
        return Response(WebhookDeliverySerializer(log.recent(subscription, limit=log.KEEP_DELIVERIES), many=True).data)

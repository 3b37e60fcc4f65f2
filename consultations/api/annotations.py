"""``/api/v1/consults/{id}/annotations/``: list, create, update and delete annotations.

Readers: whoever may see the consult and its study (404 for anyone else). Writers: the care team,
each their own annotations (403 otherwise). An update naming an older ``version`` is a 409.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from studies.permissions import can_view_study

from .. import annotations
from ..models import Annotation
from ..permissions import get_consult_for_user


class AnnotationSerializer(serializers.Serializer):
    """The shape of an annotation (documentation; the action module validates)."""

    id = serializers.UUIDField(required=False, help_text="Chosen by the client; a resend finds the same row")
    sop_instance_uid = serializers.CharField()
    frame = serializers.IntegerField(min_value=1, default=1)
    tool = serializers.ChoiceField(choices=Annotation.Tool.choices)
    geometry = serializers.JSONField(help_text='{"points": [[x, y], ...]} in image pixels')
    values = serializers.JSONField(required=False, help_text="Computed values, e.g. length in mm")
    label = serializers.CharField(required=False, allow_blank=True, max_length=annotations.MAX_LABEL)
    version = serializers.IntegerField(read_only=True)
    author = inline_serializer("AnnotationAuthor", {"id": serializers.IntegerField(), "name": serializers.CharField()})


def consult_with_images(user, pk):
    consult = get_consult_for_user(user, pk)
    if not can_view_study(user, consult.study):
        raise Http404("No such consult.")
    return consult


def body_of(request) -> dict:
    if not isinstance(request.data, dict):
        raise annotations.AnnotationError("Send a JSON object.")
    return request.data


class AnnotationListView(APIView):
    @extend_schema(responses=AnnotationSerializer(many=True))
    def get(self, request, pk: int):
        consult = consult_with_images(request.user, pk)
        rows = consult.annotations.select_related("author")
        uid = request.query_params.get("sop_instance_uid")
        if uid:
            rows = rows.filter(sop_instance_uid=uid)
        return Response([annotations.payload(a) for a in rows])

    @extend_schema(request=AnnotationSerializer, responses={201: AnnotationSerializer, 200: AnnotationSerializer})
    def post(self, request, pk: int):
        consult = consult_with_images(request.user, pk)
        annotation, created = annotations.do_create(consult, by=request.user, data=body_of(request))
        return Response(annotations.payload(annotation), status=status.HTTP_201_CREATED if created else 200)


class AnnotationDetailView(APIView):
    @extend_schema(responses=AnnotationSerializer)
    def get(self, request, pk: int, annotation_id: str):
        consult = consult_with_images(request.user, pk)
        annotation = consult.annotations.select_related("author").filter(pk=annotation_id).first()
        if annotation is None:
            raise Http404("No such annotation.")
        return Response(annotations.payload(annotation))

    @extend_schema(request=AnnotationSerializer, responses=AnnotationSerializer)
    def put(self, request, pk: int, annotation_id: str):
        consult = consult_with_images(request.user, pk)
        annotation = annotations.do_update(consult, by=request.user, annotation_id=annotation_id, data=body_of(request))
        return Response(annotations.payload(annotation))

    patch = put

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int, annotation_id: str):
        consult = consult_with_images(request.user, pk)
        annotations.do_delete(consult, by=request.user, annotation_id=annotation_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

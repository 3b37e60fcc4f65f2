"""``/api/v1/colleague-invitations/``: your invitations to join consults, and answering them."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import actions, colleagues
from .serializers import ColleagueInvitationSerializer


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
        if answer not in actions.INVITATION_ANSWERS:
            raise Http404("Answer accept or decline.")
        invitation = colleagues.get_invitation_for_user(request.user, pk)
        actions.INVITATION_ANSWERS[answer](invitation, user=request.user)
        return Response({"status": "joined" if answer == "accept" else "declined"})

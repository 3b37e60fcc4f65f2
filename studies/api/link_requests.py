"""Linking a patient's portal account to a practice's record, with the patient's consent (see
``studies.invitations``).

- ``/api/v1/patients/{id}/invite/``: ask a patient to link their portal account (members of the
  record's practice); ``/api/v1/patients/{id}/link/``: unlink.
- ``/api/v1/link-requests/``: a patient's pending requests, answered with ``.../accept/`` or
  ``.../decline/``.

A refused request answers ``{"detail", "code"}``: 403 for someone outside the practice, 409 when
the record or the request changed meanwhile (``InviteError``, rendered by the API's handler).
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import invitations
from ..permissions import get_patient_for_user


class InviteSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class PatientInviteView(APIView):
    """Ask the patient to link their portal account to this record (members of its practice).

    The answer is the same whoever the address belongs to: an email tells its owner what to do, and
    the record is linked only when a patient account that confirmed the address accepts."""

    @extend_schema(
        request=InviteSerializer,
        responses={
            201: inline_serializer(
                "LinkRequested",
                {
                    "status": serializers.CharField(help_text='Always "requested".'),
                    "detail": serializers.CharField(),
                    "expires_at": serializers.DateTimeField(help_text="Until when the request may be accepted."),
                },
            ),
        },
    )
    def post(self, request, pk: int):
        patient = get_patient_for_user(request.user, pk)
        serializer = InviteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = invitations.invite(
            patient, email=serializer.validated_data["email"], by=request.user, request=request
        )
        answer = {"status": "requested", "detail": outcome.message, "expires_at": outcome.invitation.expires_at}
        return Response(answer, status=status.HTTP_201_CREATED)


class PatientUnlinkView(APIView):
    """End the link between this record and a portal account (the linked patient, or a member of
    the record's practice)."""

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, pk: int):
        patient = get_patient_for_user(request.user, pk)
        invitations.unlink(patient, by=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LinkRequestSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    practice = serializers.CharField(source="patient.practice.name")
    patient_name = serializers.CharField(source="patient.display_name")
    birth_date = serializers.DateField(source="patient.birth_date", allow_null=True)
    asked_by = serializers.CharField(source="invited_by.display_name", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class LinkRequestListView(generics.ListAPIView):
    """Patients: the pending requests to link your account to a practice's record."""

    serializer_class = LinkRequestSerializer
    pagination_class = None

    def get_queryset(self):
        return invitations.requests_for(self.request.user)


class LinkRequestAnswerView(APIView):
    """Patients: ``accept`` links your account to the record; ``decline`` leaves it unlinked."""

    @extend_schema(request=None, responses={200: inline_serializer("LinkAnswer", {"status": serializers.CharField()})})
    def post(self, request, pk: int, answer: str):
        if answer not in invitations.ANSWERS:
            raise Http404("Answer accept or decline.")
        invitation = invitations.get_request_for_user(request.user, pk)
        invitations.ANSWERS[answer](invitation, user=request.user, request=request)
        return Response({"status": "linked" if answer == "accept" else "declined"})

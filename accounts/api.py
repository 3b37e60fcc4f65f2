"""Accounts API: API tokens and the current user."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from . import throttle
from .mfa import has_code_mfa, has_mfa, verify_code


class TokenRequestSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(trim_whitespace=False)
    code = serializers.CharField(required=False, allow_blank=True, help_text="TOTP or recovery code")


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField(source="display_name")
    role = serializers.CharField()


TokenResponse = inline_serializer("TokenResponse", {"token": serializers.CharField()})


class TokenView(APIView):
    """Exchange email, password (and a second-factor code when the account has MFA) for an API token."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenResponse})
    def post(self, request):
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email = serializer.validated_data["email"].lower()
        ip = throttle.client_ip(request)
        if throttle.is_locked(email, ip):
            return Response(
                {"detail": "Too many failed attempts. Try again in 15 minutes."},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
            )
        user = authenticate(request, email=email, password=serializer.validated_data["password"])
        if user is None:
            throttle.record_failure(email, ip)
            return Response(
                {"detail": "Email or password is wrong.", "password": ["Email or password is wrong."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        if has_mfa(user) or has_code_mfa(user):
            code = serializer.validated_data.get("code", "")
            if not code:
                return Response(
                    {
                        "detail": 'This account uses two-factor authentication: send "code".',
                        "code": ["A TOTP or recovery code is required for this account."],
                    },
                    status=status.HTTP_400_BAD_REQUEST,
                )
            if not verify_code(user, code):
                throttle.record_failure(email, ip)
                return Response(
                    {
                        "detail": "The code is wrong or was already used.",
                        "code": ["The code is wrong or was already used."],
                    },
                    status=status.HTTP_400_BAD_REQUEST,
                )
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        """Revoke the token sent in the Authorization header."""
        from .authentication import BearerlessTokenAuthentication

        result = BearerlessTokenAuthentication().authenticate(request)
        if result is None:
            return Response({"detail": "Send the token to revoke in the Authorization header."}, status=401)
        result[1].delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        return Response(MeSerializer(request.user).data)

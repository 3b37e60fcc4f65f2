"""Accounts API: API tokens and the current user."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from . import throttle
from .authentication import EitherSchemeTokenAuthentication
from .mfa import has_code_mfa, has_mfa, verify_code


class TokenRequestSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(trim_whitespace=False)
    code = serializers.CharField(required=False, allow_blank=True, help_text="TOTP or recovery code")


class MembershipSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="practice_id", help_text="The practice's number (uploads name it)")
    name = serializers.CharField(source="practice.name")
    role = serializers.CharField(help_text="clinician or admin")


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField(source="display_name")
    role = serializers.CharField()
    practices = MembershipSerializer(source="memberships", many=True, read_only=True)
    default_practice = serializers.IntegerField(source="default_practice_id", allow_null=True)


TokenResponse = inline_serializer("TokenResponse", {"token": serializers.CharField()})


WRONG_CREDENTIALS = "Email or password is wrong, or the email address is not confirmed yet."


def _error(field: str, message: str, http_status: int = status.HTTP_400_BAD_REQUEST) -> Response:
    """The error shape of the API: a top-level ``detail`` and the field at fault."""
    return Response({"detail": message, field: [message]}, status=http_status)


class TokenView(APIView):
    """Exchange email, password (and a second-factor code when the account has MFA) for an API token.

    ``DELETE`` revokes the token sent in the ``Authorization: Bearer <key>`` (or ``Token <key>``) header.
    """

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            200: TokenResponse,
            400: OpenApiResponse(description="Missing field, wrong credentials, or missing/wrong code"),
            403: OpenApiResponse(description="The account must set up two-factor authentication first"),
            429: OpenApiResponse(description="Too many failures for this account or address"),
        },
    )
    def post(self, request):
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email = serializer.validated_data["email"].lower()
        # Failures count per account and per client address (teleconsult.client_address: the
        # address the trusted proxies saw, never an X-Forwarded-For entry the client wrote).
        # Each try is counted before it is checked (given back when it is right), so simultaneous
        # guesses cannot check more than the limit.
        attempt = throttle.take_try(request, email)
        if attempt is None:
            minutes = max(1, settings.TELECONSULT_TOKEN_FAILURE_WINDOW // 60)
            return Response(
                {"detail": f"Too many failed attempts. Try again in {minutes} minutes."},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
            )
        user = authenticate(request, email=email, password=serializer.validated_data["password"])
        # An account whose address is unconfirmed answers as a wrong password does: the endpoint
        # never confirms that a password is right for an address nobody has proven to own.
        if user is None or not EmailAddress.objects.filter(user=user, email__iexact=user.email, verified=True).exists():
            return _error("password", WRONG_CREDENTIALS)
        if has_mfa(user) or has_code_mfa(user):
            code = serializer.validated_data.get("code", "")
            if not code:
                throttle.give_back(attempt)  # the password was right: asking for the code is no failure
                return _error(
                    "code", 'This account uses two-factor authentication: send "code" (TOTP or recovery code).'
                )
            if not verify_code(user, code):
                return _error("code", "The code is wrong or was already used.")
        elif settings.TELECONSULT_MFA_REQUIRED and user.needs_mfa:
            throttle.give_back(attempt)
            return _error(
                "code",
                "This account must set up two-factor authentication in the browser before using the API.",
                status.HTTP_403_FORBIDDEN,
            )
        throttle.give_back(attempt)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

    @extend_schema(
        request=None,
        responses={204: None, 401: OpenApiResponse(description="No valid token in the Authorization header")},
    )
    def delete(self, request):
        """Revoke the token sent in the Authorization header (also one whose user still lacks MFA)."""
        # Either scheme, and no second-factor check: a token must be revocable whatever its user's state.
        authenticator = EitherSchemeTokenAuthentication()
        try:
            result = authenticator.authenticate(request)
        except exceptions.AuthenticationFailed as exc:
            result, reason = None, str(exc.detail)
        else:
            reason = "Send the token to revoke in the Authorization header: Bearer <key> (or Token <key>)."
        if result is None:
            response = Response({"detail": reason}, status=status.HTTP_401_UNAUTHORIZED)
            response["WWW-Authenticate"] = authenticator.authenticate_header(request)
            return response
        result[1].delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        return Response(MeSerializer(request.user).data)

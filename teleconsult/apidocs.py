"""The API's description (OpenAPI schema, Swagger UI, ReDoc) is for people and programs that may
use the API: signed in, or sending a token.

drf-spectacular serves it to anyone by default. Public, it maps every route, parameter and error
of a patient-data API for whoever asks, and no user of it lacks an account. So the schema answers
401 (with the token challenge) without credentials, and the two documentation pages, which a
browser opens, send the visitor to the sign-in page and back. The same holds with DEBUG on: a
developer signs in with a demo account.
"""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework import exceptions
from rest_framework.permissions import IsAuthenticated


class SchemaView(SpectacularAPIView):
    permission_classes = [IsAuthenticated]


class _SignInPage:
    """A documentation page: an anonymous browser is sent to sign in, then back here."""

    permission_classes = [IsAuthenticated]

    def handle_exception(self, exc):
        if isinstance(exc, exceptions.NotAuthenticated):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)


class SwaggerView(_SignInPage, SpectacularSwaggerSplitView):
    pass


class RedocView(_SignInPage, SpectacularRedocView):
    pass

"""Send users who must use a second factor to set one up before anything else."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse

from .mfa import has_mfa

# Paths a user without MFA may still reach: MFA setup itself, signing out, static files, the API
# (token auth has its own check) and the account pages allauth needs to finish a login.
ALLOWED_PREFIXES = ("/accounts/", "/static/", "/api/", "/dicomweb/", "/favicon.ico")


class RequireMFAMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            settings.TELECONSULT_MFA_REQUIRED
            and user is not None
            and user.is_authenticated
            and user.needs_mfa
            and not request.path.startswith(ALLOWED_PREFIXES)
            and not has_mfa(user)
        ):
            return redirect(f"{reverse('mfa_activate_totp')}?next={request.path}")
        return self.get_response(request)

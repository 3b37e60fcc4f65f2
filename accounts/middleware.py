"""Send users who must use a second factor to set one up before anything else."""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from .mfa import must_set_up_mfa

# Paths a user without MFA may still reach: allauth's pages (MFA setup itself, reauthentication,
# email confirmation, signing out), static files, and the token endpoint (it checks MFA itself).
ALLOWED_PREFIXES = ("/accounts/", "/static/", "/favicon.ico", "/api/v1/auth/token/")
# Machine-facing paths answer with JSON instead of a redirect to an HTML page.
API_PREFIXES = ("/api/", "/dicomweb/", "/fhir/")
# Where the user was going when sent to set up MFA; the recovery-codes page links back to it.
SESSION_NEXT_KEY = "mfa_setup_next"
SETUP_MESSAGE = "Set up two-factor authentication on the Security page before using the portal."


class RequireMFAMiddleware:
    """Redirects (or, for API paths, refuses with 403) until the user has a second factor.

    Sets ``request.mfa_setup_required`` so the MFA pages can explain why the user is there.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # The provider's second factor counts for the session it signed in (accounts.mfa).
        required = must_set_up_mfa(getattr(request, "user", None), getattr(request, "session", None))
        request.mfa_setup_required = required
        path = request.path
        if not required or path.startswith(ALLOWED_PREFIXES):
            return self.get_response(request)
        if path.startswith(API_PREFIXES):
            return JsonResponse({"detail": SETUP_MESSAGE, "code": "mfa_setup_required"}, status=403)
        if request.method == "GET":
            target = request.get_full_path()
            if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
                request.session[SESSION_NEXT_KEY] = target
        return redirect("mfa_activate_totp")

"""Second-factor checks shared by the token endpoint and report signing."""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from django.conf import settings


def has_mfa(user) -> bool:
    """True when the user has a TOTP authenticator or a passkey (recovery codes alone do not count)."""
    return Authenticator.objects.filter(user=user).exclude(type=Authenticator.Type.RECOVERY_CODES).exists()


def has_code_mfa(user) -> bool:
    """True when the user has an authenticator that checks typed codes (TOTP or recovery codes)."""
    return Authenticator.objects.filter(
        user=user, type__in=[Authenticator.Type.TOTP, Authenticator.Type.RECOVERY_CODES]
    ).exists()


def verify_code(user, code: str) -> bool:
    """Check a TOTP or recovery code; each code works once (allauth marks it used)."""
    code = (code or "").strip().replace(" ", "")
    if not code:
        return False
    for authenticator in Authenticator.objects.filter(
        user=user, type__in=[Authenticator.Type.TOTP, Authenticator.Type.RECOVERY_CODES]
    ):
        if authenticator.wrap().validate_code(code):
            authenticator.record_usage()
            return True
    return False


def must_set_up_mfa(user) -> bool:
    """True when policy requires a second factor for this signed-in user and they have none yet.

    Such a user reaches only the pages that set one up: no other page, API call or WebSocket.
    """
    return bool(
        settings.TELECONSULT_MFA_REQUIRED
        and user is not None
        and user.is_authenticated
        and user.needs_mfa
        and not has_mfa(user)
    )

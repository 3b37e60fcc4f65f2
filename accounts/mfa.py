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


# Set at sign-in (accounts.social_adapter's login stage) to the account's id when the identity
# provider said that sign-in used a second factor (its ``amr`` claim); any other sign-in clears it.
PROVIDER_MFA_SESSION_KEY = "teleconsult_provider_mfa"


def remember_provider_mfa(session, user, did_mfa: bool) -> None:
    """Note, for this session only, whether the provider did the second factor of ``user``'s sign-in."""
    if did_mfa and user is not None and user.pk is not None:
        session[PROVIDER_MFA_SESSION_KEY] = str(user.pk)
    else:
        session.pop(PROVIDER_MFA_SESSION_KEY, None)


def provider_did_mfa(session, user) -> bool:
    """Did this session's sign-in of ``user`` use a second factor at their identity provider?"""
    if session is None or user is None or not getattr(user, "is_authenticated", False):
        return False
    return session.get(PROVIDER_MFA_SESSION_KEY) == str(user.pk)


def must_set_up_mfa(user, session=None) -> bool:
    """True when policy requires a second factor for this signed-in user and they have none yet.

    Such a user reaches only the pages that set one up: no other page, API call or WebSocket. A
    session whose sign-in used a second factor at the hospital's identity provider satisfies the
    policy without a factor of the portal's own.
    """
    return bool(
        settings.TELECONSULT_MFA_REQUIRED
        and user is not None
        and user.is_authenticated
        and user.needs_mfa
        and not provider_did_mfa(session, user)
        and not has_mfa(user)
    )

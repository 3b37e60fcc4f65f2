"""Fixtures for account tests: second factors with codes computed the way an authenticator app does."""

from __future__ import annotations

import time

import pytest
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters and allauth's used-TOTP marks live in the cache: start each test clean."""
    cache.clear()
    yield
    cache.clear()


def totp_code(secret: str, at: float | None = None, period: int = 30) -> str:
    """The code an authenticator app shows at ``at`` (default now)."""
    counter = int(time.time() if at is None else at) // period
    return format_hotp_value(hotp_value(secret, counter))


@pytest.fixture
def totp_secret() -> str:
    return generate_totp_secret()


@pytest.fixture
def mfa_physician(physician, totp_secret):
    """The physician with an authenticator app and recovery codes."""
    TOTP.activate(physician, totp_secret)
    RecoveryCodes.activate(physician)
    physician.totp_secret = totp_secret
    return physician


def recovery_codes(user) -> list[str]:
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES).wrap().get_unused_codes()

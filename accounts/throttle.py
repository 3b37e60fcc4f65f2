"""Counting failed sign-ins on the token endpoint, per account and per client address.

The counting is allauth's rate limiting, the same the browser sign-in uses (``login_failed``), under
an action of its own (``api_token_failed``): ``TELECONSULT_TOKEN_FAILURE_LIMIT`` failures in a sliding
window of ``TELECONSULT_TOKEN_FAILURE_WINDOW_SECONDS``, counted per client address and per account,
kept in the cache (Redis in production, so every daphne shares them), IPv6 counted per /64. The
address is the portal's one answer, ``teleconsult.client_address``, which allauth asks for through
``AccountAdapter.get_client_ip``. The rates are given with each call (read from the settings then),
through allauth's ``core.internal.ratelimit``: the public ``allauth.core.ratelimit`` takes them only
from ``ACCOUNT_RATE_LIMITS``, fixed when settings load. allauth is pinned (requirements.txt).

Why allauth's and not django-axes: axes locks through ``AxesBackend`` and a middleware on every
``authenticate()`` call, so it would add a second lockout to the browser sign-in, which allauth
already limits; it needs its own models, an authentication backend first in the list and its own
client-address settings (django-ipware, which does not check the socket peer). allauth's limits
already count per address and per key, in the cache, and work from a DRF view: a wrong second-factor
code is one more failure, recorded by the same call.
"""

from __future__ import annotations

from allauth.core.internal import ratelimit
from django.conf import settings

APP = "allauth.account"
ACTION = "api_token_failed"


def _config() -> dict[str, str]:
    window = f"{settings.TELECONSULT_TOKEN_FAILURE_LIMIT}/{settings.TELECONSULT_TOKEN_FAILURE_WINDOW}s"
    return {ACTION: f"{window}/ip,{window}/key"}


def take_try(request, email: str):
    """Count one try for this address and this account before its password is checked, in one
    locked step per counter (allauth's cache lock): simultaneous guesses never check more than the
    limit. None when the limit is used up (nothing to check); else the usage, which ``give_back``
    returns when the try turns out right."""
    return ratelimit.consume(request, app=APP, action=ACTION, config=_config(), key=email.lower())


def give_back(usage) -> None:
    """A right try is not a failure: its count is removed again."""
    usage.rollback()

"""Counting failed sign-in attempts on the token endpoint, per account and per client address."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.lower().encode()).hexdigest()[:32]
    return f"token-failures:{kind}:{digest}"


def _keys(email: str, ip: str) -> list[str]:
    keys = [_key("ip", ip)]
    if email:
        keys.append(_key("account", email))
    return keys


def is_locked(email: str, ip: str) -> bool:
    limit = settings.TELECONSULT_TOKEN_FAILURE_LIMIT
    counts = cache.get_many(_keys(email, ip))
    return any(count >= limit for count in counts.values())


def record_failure(email: str, ip: str) -> None:
    window = settings.TELECONSULT_TOKEN_FAILURE_WINDOW
    for key in _keys(email, ip):
        # add() starts the window on the first failure; incr() keeps its expiry.
        if not cache.add(key, 1, timeout=window):
            try:
                cache.incr(key)
            except ValueError:  # expired between add() and incr()
                cache.add(key, 1, timeout=window)


def client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"

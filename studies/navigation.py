"""Navigation entries this app adds for a user (see teleconsult.context_processors)."""

from __future__ import annotations


def nav_items(user) -> list[dict]:
    return []

"""Channel layer group names: the one place they are spelled."""

from __future__ import annotations


def consult_group(consult_id: int) -> str:
    """Everyone viewing one consult (chat, shared viewing, annotations)."""
    return f"consult.{int(consult_id)}"


def notifications_group(user_id: int) -> str:
    """One user's open tabs, for their notifications and unread count."""
    return f"notifications.{int(user_id)}"

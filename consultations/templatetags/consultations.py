"""Template helpers for consult pages: time-left badges."""

from __future__ import annotations

from django import template
from django.utils import timezone

register = template.Library()


def _span(seconds: float) -> str:
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


@register.filter
def time_left(consult) -> str:
    """'3 h 12 min left' or 'overdue by 20 min'; empty when no clock runs."""
    if consult.due_at is None or not consult.is_open:
        return ""
    seconds = (consult.due_at - timezone.now()).total_seconds()
    return f"{_span(seconds)} left" if seconds > 0 else f"overdue by {_span(seconds)}"

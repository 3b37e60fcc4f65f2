"""The time filters every template has (a builtin, see TEMPLATES in settings): ``when`` for an
instant, ``day`` for a calendar date. The format itself lives in ``accounts.timeformat``."""

from __future__ import annotations

from django import template

from ..timeformat import format_date, format_instant, instant_html

register = template.Library()


@register.filter
def when(value, mode: str = ""):
    """``{{ consult.due_at|when }}``: a ``<time>`` element; ``|when:"text"`` for attributes."""
    if value in (None, ""):
        return ""
    return format_instant(value) if mode == "text" else instant_html(value)


@register.filter
def day(value) -> str:
    """``{{ study.study_date|day }}``: "7 Dec 2026", not shifted by time zone."""
    if value in (None, ""):
        return ""
    return format_date(value)

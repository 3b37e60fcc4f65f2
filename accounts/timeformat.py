"""The one way the portal shows a point in time, and a calendar date.

An instant (a due time, a signature, an access event) reads "7 Dec 2026, 14:30 CET": always with
its date, so a line means the same in a flash message, an email read next week or a printed PDF,
in the active time zone (``accounts.timezones``) with that zone's abbreviation ("UTC+04" where the
zone has none). Pages wrap it in ``<time datetime="2026-12-07T14:30:00+01:00">`` so machines and
screen readers get the exact instant.

A date that is not an instant (a study date, a birth date) reads "7 Dec 2026" and is never shifted
by time zone: a study's date and time are the imaging site's wall clock, not an instant.

Templates use the builtin filters ``{{ value|when }}`` (``{{ value|when:"text" }}`` inside an
attribute) and ``{{ value|day }}`` (``accounts/templatetags/times.py``); Python uses
``format_instant`` and ``format_date``; CSV exports keep ISO 8601.
"""

from __future__ import annotations

import datetime as dt

from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

INSTANT_FORMAT = "j M Y, H:i"
DATE_FORMAT = "j M Y"


def _local(value: dt.datetime, zone: dt.tzinfo | None) -> dt.datetime:
    if timezone.is_naive(value):  # not an instant we can place: shown as it is
        return value
    return timezone.localtime(value, zone)


def zone_abbreviation(value: dt.datetime) -> str:
    """The zone's abbreviation ("CET", "EDT", "UTC"); "UTC+04" where it has only an offset."""
    name = value.tzname() or ""
    return f"UTC{name}" if name[:1] in "+-" and name else name


def format_instant(value: dt.datetime | None, zone: dt.tzinfo | None = None) -> str:
    """An instant as "7 Dec 2026, 14:30 CET" in ``zone``, else the active zone; "" for None."""
    if value is None:
        return ""
    if not isinstance(value, dt.datetime):
        return format_date(value)
    local = _local(value, zone)
    return f"{dateformat.format(local, INSTANT_FORMAT)} {zone_abbreviation(local)}".rstrip()


def iso_instant(value: dt.datetime, zone: dt.tzinfo | None = None) -> str:
    return _local(value, zone).isoformat(timespec="seconds")


def instant_html(value: dt.datetime | None, zone: dt.tzinfo | None = None) -> SafeString | str:
    """``<time datetime="ISO">7 Dec 2026, 14:30 CET</time>``."""
    if value is None:
        return ""
    if not isinstance(value, dt.datetime):
        return format_html('<time datetime="{}">{}</time>', value.isoformat(), format_date(value))
    return format_html('<time datetime="{}">{}</time>', iso_instant(value, zone), format_instant(value, zone))


def format_date(value: dt.date | None) -> str:
    """A calendar date as "7 Dec 2026", as it is (an instant gives its day in the active zone)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = _local(value, None).date()
    return dateformat.format(value, DATE_FORMAT)

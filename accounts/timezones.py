"""Which time zone a person reads instants in.

A specialist's profile zone when they chose one; else their browser's, which
``static/js/timezone.js`` writes to the ``tz`` cookie; else the portal's (``settings.TIME_ZONE``).
``TimeZoneMiddleware`` activates it for each page request, so ``accounts.timeformat`` (the ``when``
filter, flash messages, the report PDF) shows instants in it. Emails, sent outside a request, use
``zone_for_user``: the profile's zone, else the portal's.
"""

from __future__ import annotations

import re
import zoneinfo

from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone

COOKIE_NAME = "tz"
# The profile field's default: a specialist who never chose a zone keeps their browser's.
UNCHOSEN_PROFILE_ZONE = "UTC"
# IANA names only ("Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"): never a path.
ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")
# Machine-facing paths keep their instants in the portal's zone whoever asks.
SKIPPED_PREFIXES = ("/api/", "/dicomweb/", "/static/")


def zone_named(name: str | None) -> zoneinfo.ZoneInfo | None:
    """The zone called ``name``, or None for anything that is not a known IANA zone name."""
    if not name or len(name) > 64 or not ZONE_NAME.match(name):
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return None


def profile_zone(user) -> zoneinfo.ZoneInfo | None:
    """The zone a specialist chose on their profile, or None."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_specialist", False):
        return None
    try:
        name = user.specialist_profile.time_zone
    except ObjectDoesNotExist:
        return None
    return None if name == UNCHOSEN_PROFILE_ZONE else zone_named(name)


def zone_for_request(request) -> zoneinfo.ZoneInfo | None:
    """The profile's zone, else the browser's (the cookie), else None (the portal's)."""
    return profile_zone(getattr(request, "user", None)) or zone_named(request.COOKIES.get(COOKIE_NAME))


def zone_for_user(user) -> zoneinfo.ZoneInfo:
    """For what is written outside a request (emails): the profile's zone, else the portal's."""
    return profile_zone(user) or timezone.get_default_timezone()


class TimeZoneMiddleware:
    """Activates the reader's zone for the request (after authentication), and the portal's again after."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = None if request.path.startswith(SKIPPED_PREFIXES) else zone_for_request(request)
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()

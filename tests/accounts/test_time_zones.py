"""The reader's time zone (accounts.timezones) and the one time format (accounts.timeformat)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template
from django.test import RequestFactory
from django.utils import timezone

from accounts.models import SpecialistProfile
from accounts.timeformat import format_date, format_instant
from accounts.timezones import TimeZoneMiddleware, zone_for_user

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def zone_during_request(user, *, path: str = "/", cookie: str | None = None) -> str:
    """The zone active while the view runs, for ``user`` with the ``tz`` cookie ``cookie``."""
    request = RequestFactory().get(path)
    if cookie is not None:
        request.COOKIES["tz"] = cookie
    request.user = user
    seen = []
    TimeZoneMiddleware(lambda r: seen.append(timezone.get_current_timezone_name()))(request)
    return seen[0]


# -- which zone ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_specialists_profile_zone_wins_over_the_browsers(specialist):
    SpecialistProfile.objects.filter(user=specialist).update(time_zone="Asia/Tokyo")
    specialist.refresh_from_db()
    assert zone_during_request(specialist, cookie="Europe/Berlin") == "Asia/Tokyo"


@pytest.mark.django_db
def test_specialist_who_never_chose_a_zone_gets_the_browsers(specialist):
    assert specialist.specialist_profile.time_zone == "UTC"  # the field's default
    assert zone_during_request(specialist, cookie="Europe/Berlin") == "Europe/Berlin"


@pytest.mark.django_db
def test_the_browsers_zone_from_the_cookie_is_used(physician):
    assert zone_during_request(physician, cookie="America/Argentina/Buenos_Aires") == "America/Argentina/Buenos_Aires"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "cookie", ["Mars/Olympus_Mons", "../../../etc/passwd", "/etc/localtime", "Europe/Berlin;x=1", "", "a" * 300]
)
def test_a_bad_cookie_is_ignored(physician, cookie, settings):
    assert zone_during_request(physician, cookie=cookie) == settings.TIME_ZONE


def test_anonymous_visitor_without_cookie_gets_the_portals_zone(settings):
    assert zone_during_request(AnonymousUser()) == settings.TIME_ZONE == "UTC"


def test_anonymous_visitor_with_a_cookie_gets_the_browsers_zone():
    assert zone_during_request(AnonymousUser(), cookie="Europe/Berlin") == "Europe/Berlin"


@pytest.mark.django_db
def test_api_keeps_the_portals_zone(physician, settings):
    assert zone_during_request(physician, path="/api/v1/me/", cookie="Europe/Berlin") == settings.TIME_ZONE


@pytest.mark.django_db
def test_the_zone_is_the_portals_again_after_the_request(physician, settings):
    zone_during_request(physician, cookie="Europe/Berlin")
    assert timezone.get_current_timezone_name() == settings.TIME_ZONE


@pytest.mark.django_db
def test_emails_use_the_profile_zone_else_the_portals(specialist, physician):
    SpecialistProfile.objects.filter(user=specialist).update(time_zone="Asia/Tokyo")
    specialist.refresh_from_db()
    assert str(zone_for_user(specialist)) == "Asia/Tokyo"
    assert str(zone_for_user(physician)) == "UTC"


# -- the format ---------------------------------------------------------------------------------


def test_an_instant_reads_day_month_year_time_and_zone():
    at = dt.datetime(2026, 12, 7, 13, 30, tzinfo=dt.UTC)
    assert format_instant(at) == "7 Dec 2026, 13:30 UTC"
    assert format_instant(at, BERLIN) == "7 Dec 2026, 14:30 CET"
    with timezone.override(BERLIN):
        assert format_instant(at) == "7 Dec 2026, 14:30 CET"


def test_summer_time_shows_in_hour_and_abbreviation():
    assert format_instant(dt.datetime(2026, 7, 7, 12, 30, tzinfo=dt.UTC), BERLIN) == "7 Jul 2026, 14:30 CEST"
    # New York springs forward at 02:00 on 8 March 2026: one minute apart, an hour and a name apart.
    before = dt.datetime(2026, 3, 8, 6, 59, tzinfo=dt.UTC)
    assert format_instant(before, NEW_YORK) == "8 Mar 2026, 01:59 EST"
    assert format_instant(before + dt.timedelta(minutes=1), NEW_YORK) == "8 Mar 2026, 03:00 EDT"


def test_a_zone_without_an_abbreviation_names_its_offset():
    at = dt.datetime(2026, 12, 7, 13, 30, tzinfo=dt.UTC)
    assert format_instant(at, zoneinfo.ZoneInfo("Asia/Dubai")) == "7 Dec 2026, 17:30 UTC+04"


def test_the_date_is_kept_across_midnight():
    at = dt.datetime(2026, 12, 7, 23, 30, tzinfo=dt.UTC)
    assert format_instant(at, zoneinfo.ZoneInfo("Asia/Tokyo")) == "8 Dec 2026, 08:30 JST"


def test_nothing_is_an_empty_string():
    assert format_instant(None) == format_date(None) == ""


def render(text: str, **context) -> str:
    return Template(text).render(Context(context))


def test_when_filter_wraps_the_instant_in_a_time_element():
    at = dt.datetime(2026, 12, 7, 13, 30, tzinfo=dt.UTC)
    with timezone.override(BERLIN):
        assert (
            render("{{ at|when }}", at=at) == '<time datetime="2026-12-07T14:30:00+01:00">7 Dec 2026, 14:30 CET</time>'
        )
        assert render('<b title="Due {{ at|when:"text" }}">', at=at) == '<b title="Due 7 Dec 2026, 14:30 CET">'
    assert render("{{ at|when }}|{{ at|day }}", at=None) == "|"


def test_a_calendar_date_is_never_shifted_by_the_zone():
    born = dt.date(1970, 5, 6)
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):  # +14 and -11
        with timezone.override(zoneinfo.ZoneInfo(zone)):
            assert render("{{ born|day }}", born=born) == "6 May 1970"
            assert format_date(born) == "6 May 1970"

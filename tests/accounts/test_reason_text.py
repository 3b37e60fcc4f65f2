"""Reasons administrators type (a suspension, a licence rejection) are free text: line breaks and
tabs fold into spaces, but NUL and other control characters are refused with a clear message on
the console and through the API (PostgreSQL would refuse a NUL in text: a 500)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import Licence, validate_free_text
from tests.accounts.test_console import add_licence
from tests.factories import SpecialistFactory

pytestmark = pytest.mark.django_db

BAD_REASONS = ["Board\x00inquiry", "Board \x1b[31minquiry", "Board\x7finquiry", "Board\x85\x00"]


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.mark.parametrize("text", ["Two\nlines", "A\ttab", "Windows\r\nline", "Ünïcödé – 名前 ✓"])
def test_free_text_keeps_line_breaks_tabs_and_any_script(text):
    validate_free_text(text)


@pytest.mark.parametrize(("text", "found"), [("a\x00b", "U+0000"), ("a\x1bb", "U+001B"), ("a\ud800b", "U+D800")])
def test_free_text_refuses_control_characters_and_lone_surrogates_naming_them(text, found):
    with pytest.raises(ValidationError) as refused:
        validate_free_text(text)
    assert found in refused.value.messages[0]
    assert "control characters other than line breaks and tabs" in refused.value.messages[0]


@pytest.mark.parametrize("reason", BAD_REASONS)
def test_a_suspension_reason_with_control_characters_is_refused_on_the_console(client, admin_user, reason):
    specialist = SpecialistFactory(email="held@example.com")
    client.force_login(admin_user)
    client.raise_request_exception = False
    page = client.post(
        reverse("console:specialist_action", args=[specialist.pk, "suspend"]), {"reason": reason}, follow=True
    )
    assert page.status_code == 200
    assert "control characters other than line breaks and tabs" in page.content.decode()
    specialist.specialist_profile.refresh_from_db()
    assert not specialist.specialist_profile.is_suspended
    # Line breaks and tabs are not refused: they fold into spaces.
    client.post(
        reverse("console:specialist_action", args=[specialist.pk, "suspend"]), {"reason": "Board\r\ninquiry\tpending"}
    )
    specialist.specialist_profile.refresh_from_db()
    assert specialist.specialist_profile.suspension_reason == "Board inquiry pending"


@pytest.mark.parametrize("reason", BAD_REASONS)
def test_a_rejection_reason_with_control_characters_is_refused_on_the_console(client, admin_user, reason):
    licence = add_licence(SpecialistFactory(email="held@example.com"))
    client.force_login(admin_user)
    client.raise_request_exception = False
    page = client.post(reverse("console:review_licence", args=[licence.pk, "reject"]), {"reason": reason}, follow=True)
    assert page.status_code == 200
    assert "control characters other than line breaks and tabs" in page.content.decode()
    licence.refresh_from_db()
    assert licence.status == Licence.Status.PENDING


def test_reasons_with_control_characters_are_a_400_through_the_api(auth_client, admin_user):
    # (DRF's CharField refuses NUL itself; the escape character got through.)
    specialist = SpecialistFactory(email="held@example.com")
    licence = add_licence(specialist)
    api = auth_client(admin_user)
    suspended = api.post(f"/api/v1/specialists/{specialist.pk}/suspend/", {"reason": "a\x1bb"}, format="json")
    assert suspended.status_code == 400
    assert suspended.json()["code"] == "reason_invalid" and "U+001B" in suspended.json()["reason"][0]
    rejected = api.post(f"/api/v1/licences/{licence.pk}/reject/", {"reason": "a\x1bb"}, format="json")
    assert rejected.status_code == 400 and "U+001B" in rejected.json()["reason"][0]


def test_reasons_with_a_nul_are_refused_not_a_500_on_postgresql(postgres, client, admin_user):
    specialist = SpecialistFactory(email="held@example.com")
    licence = add_licence(specialist)
    client.force_login(admin_user)
    client.raise_request_exception = False
    suspend = client.post(reverse("console:specialist_action", args=[specialist.pk, "suspend"]), {"reason": "a\x00b"})
    reject = client.post(reverse("console:review_licence", args=[licence.pk, "reject"]), {"reason": "a\x00b"})
    assert suspend.status_code < 500 and reject.status_code < 500

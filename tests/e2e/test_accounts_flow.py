"""A person signs up, confirms their email, signs in and out; a physician signs in with TOTP."""

from __future__ import annotations

import re

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from playwright.sync_api import expect

from tests.e2e.conftest import login, logout, totp_code

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "a-long-unusual-passphrase-42"


def sign_up(page, email: str, name: str, *, role: str | None = None) -> None:
    """Fill in and send the sign-up form (``role`` left at its default unless given); ends on the
    page that asks to confirm the e-mail address."""
    page.goto("/accounts/signup/")
    page.fill("input[name=email]", email)
    page.fill("input[name=name]", name)
    if role is not None:
        page.select_option("select[name=role]", role)
    page.fill("input[name=password1]", NEW_PASSWORD)
    page.fill("input[name=password2]", NEW_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/accounts/confirm-email/")


def test_patient_signs_up_confirms_email_signs_in_and_out(page, server_outbox):
    sign_up(page, "sam.patient@example.com", "Sam Patient", role="patient")

    message = server_outbox.wait_for("sam.patient@example.com", subject="confirm")
    link = next(link for link in server_outbox.links(message) if "/accounts/confirm-email/" in link)
    page.goto(link)
    page.get_by_role("button", name=re.compile("confirm", re.I)).click()
    page.wait_for_url("**/accounts/login/**")

    login(page, "sam.patient@example.com", NEW_PASSWORD)
    expect(page.locator(".whoami")).to_contain_text("Sam Patient")
    expect(page.locator(".whoami")).to_contain_text("Patient")

    logout(page)
    expect(page.locator(".whoami")).to_have_count(0)
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()


def test_unconfirmed_email_cannot_sign_in(page, server_outbox):
    sign_up(page, "unconfirmed@example.com", "Una Confirmed")

    page.goto("/accounts/login/")
    page.fill("input[name=login]", "unconfirmed@example.com")
    page.fill("input[name=password]", NEW_PASSWORD)
    page.locator("form[action='/accounts/login/'] button[type=submit]").click()

    page.wait_for_url("**/accounts/confirm-email/")
    expect(page.locator(".whoami")).to_have_count(0)


def test_physician_with_totp_signs_in_with_a_code_where_mfa_is_required(
    browser_context, live_server_mfa_url, live_user
):
    physician = live_user("physician", email="totp.physician@example.com", name="Dr Totp")
    secret = generate_totp_secret()
    TOTP.activate(physician, secret)
    page = browser_context(base_url=live_server_mfa_url).new_page()

    login(page, physician, totp_secret=secret)

    expect(page.locator(".whoami")).to_contain_text("Dr Totp")
    assert "/2fa/" not in page.url


def test_wrong_totp_code_is_refused(page, live_user, password):
    physician = live_user("physician", email="wrong.code@example.com")
    secret = generate_totp_secret()
    TOTP.activate(physician, secret)
    wrong = f"{(int(totp_code(secret)) + 1) % 1_000_000:06d}"

    page.goto("/accounts/login/")
    page.fill("input[name=login]", physician.email)
    page.fill("input[name=password]", password)
    page.locator("form[action='/accounts/login/'] button[type=submit]").click()
    page.wait_for_url("**/accounts/2fa/authenticate/**")
    page.fill("input[name=code]", wrong)
    page.locator("form[action='/accounts/2fa/authenticate/'] button[type=submit]").first.click()

    expect(page.locator("input[name=code]")).to_be_visible()
    expect(page.locator("body")).to_contain_text(re.compile("incorrect|invalid|wrong", re.I))
    expect(page.locator(".whoami")).to_have_count(0)

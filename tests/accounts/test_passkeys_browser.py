"""Passkeys in a real browser (chromium's virtual authenticator): the static scripts do the WebAuthn work.

Runs against the MFA-required live server: a physician without a second factor adds a passkey
instead of an authenticator app, sees the recovery codes, and later signs in with the passkey alone.
Any Content-Security-Policy violation on the way fails the test.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.browser import browser_fixture, playwright_driver_fixture  # noqa: F401 - fixtures used here
from tests.e2e.conftest import _e2e_database  # noqa: F401 - fixtures used here

pytestmark = pytest.mark.e2e


@pytest.fixture
def passkey_page(request, browser, live_server_mfa_url):  # noqa: F811 - the imported fixture
    # WebAuthn refuses IP addresses as the relying party: reach the same server as "localhost".
    context = browser.new_context(
        base_url=live_server_mfa_url.replace("127.0.0.1", "localhost"), viewport={"width": 400, "height": 800}
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    page.csp_violations = []
    page.on(
        "console",
        lambda message: page.csp_violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.on("pageerror", lambda error: page.csp_violations.append(f"script error: {error}"))
    yield page
    context.close()


def test_physician_sets_up_a_passkey_when_forced_and_signs_in_with_it(passkey_page, live_user):
    from allauth.mfa.models import Authenticator

    page = passkey_page
    user = live_user("physician", email="passkey.doc@example.com", name="Dr Passkey")
    page.goto("/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", "correct-horse-battery-staple")
    page.locator("form[action='/accounts/login/'] button[type=submit]").click()
    page.wait_for_url("**/accounts/2fa/totp/activate/")
    expect(page.locator(".notice")).to_contain_text("second factor")

    page.goto("/accounts/2fa/webauthn/add/")
    page.fill("input[name=name]", "Phone")
    page.check("input[name=passwordless]")
    page.get_by_role("button", name="Add").click()
    page.wait_for_url("**/accounts/2fa/recovery-codes/")
    expect(page.locator("textarea[data-recovery-codes]")).to_be_visible()
    key = Authenticator.objects.get(user=user, type=Authenticator.Type.WEBAUTHN)
    assert key.wrap().is_passwordless

    page.goto("/accounts/2fa/webauthn/")
    expect(page.locator("main table")).to_contain_text("Phone")
    expect(page.locator("main table")).to_contain_text("Passkey")
    for name in ("mfa_edit_webauthn", "mfa_remove_webauthn"):
        page.goto(reverse(name, args=[key.pk]))
        expect(page.locator("main h1")).to_contain_text("Security Key")  # no reauthentication for a new key
    page.goto("/accounts/2fa/recovery-codes/")
    page.get_by_role("link", name="Continue to the portal").click()
    expect(page.locator(".whoami")).to_contain_text("Dr Passkey")

    page.locator(".nav-toggle-label").click()  # phone width: the menu is folded
    page.get_by_role("button", name="Sign out").click()
    page.goto("/accounts/login/")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(lambda url: "/accounts/" not in url)
    expect(page.locator(".whoami")).to_contain_text("Dr Passkey")

    # With the password, the key is the second factor.
    page.locator(".nav-toggle-label").click()
    page.get_by_role("button", name="Sign out").click()
    page.goto("/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", "correct-horse-battery-staple")
    page.locator("form[action='/accounts/login/'] button[type=submit]").click()
    page.wait_for_url("**/accounts/2fa/authenticate/")
    page.get_by_role("button", name="Use a security key or passkey").click()
    page.wait_for_url(lambda url: "/accounts/" not in url)
    expect(page.locator(".whoami")).to_contain_text("Dr Passkey")
    assert page.csp_violations == []


def test_cancelled_passkey_request_shows_an_error_instead_of_failing_silently(passkey_page, live_user):
    page = passkey_page
    live_user("patient", email="nokey@example.com")
    page.goto("/accounts/login/")
    # No passkey exists for this site in the virtual authenticator, so the browser request fails.
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.locator("[data-webauthn-error]")).to_be_visible(timeout=60_000)
    assert "/accounts/login/" in page.url
    assert page.csp_violations == []

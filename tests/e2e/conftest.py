"""Browser fixtures: Playwright's sync API driving Debian's chromium against a real daphne.

- ``browser``: one headless chromium per test module (from tests/browser.py; see ``playwright_driver``
  there for why not per session).
- ``browser_context()``: a fresh context (own cookies) whose relative URLs go to the live server;
  ``browser_context(base_url=live_server_mfa_url)`` for the MFA-required server.
- ``page``: a page in a fresh context.
- ``login(page, user_or_email, password=PASSWORD, totp_secret=None)`` and ``logout(page)``.
- ``totp_code(secret)``: the current code for an authenticator secret.

Every test here is marked ``e2e`` and runs with ``transactional_db`` so the server sees its rows.
A failing test leaves a screenshot under var/test/e2e/.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.browser import browser_fixture, playwright_driver_fixture  # noqa: F401  (module-scoped on purpose, see there)
from tests.conftest import PASSWORD

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "var" / "test" / "e2e"
DEFAULT_TIMEOUT_MS = 20_000


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/e2e/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _e2e_database(transactional_db, monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the ORM calls a test makes between
    # browser steps are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser_context(request, browser, live_server_url):
    """``browser_context(base_url=None, **options)`` -> a new BrowserContext, closed after the test."""
    contexts = []

    def make(base_url: str | None = None, **options):
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = browser.new_context(base_url=base_url or live_server_url, **options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        contexts.append(context)
        return context

    yield make
    failed = getattr(request.node, "report_call", None) is not None and request.node.report_call.failed
    for number, context in enumerate(contexts):
        if failed:
            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"\W+", "-", request.node.name)
            for index, open_page in enumerate(context.pages):
                open_page.screenshot(path=str(SCREENSHOT_DIR / f"{name}-{number}-{index}.png"), full_page=True)
        context.close()


@pytest.fixture
def page(browser_context):
    return browser_context().new_page()


def totp_code(secret: str, *, at: float | None = None) -> str:
    from allauth.mfa import app_settings
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    counter = int(at if at is not None else time.time()) // app_settings.TOTP_PERIOD
    return format_hotp_value(hotp_value(secret, counter))


def fresh_totp_code(secret: str, *, margin: float = 8.0) -> str:
    """A code that stays valid for at least ``margin`` seconds (the server allows no clock drift)."""
    from allauth.mfa import app_settings

    left = app_settings.TOTP_PERIOD - time.time() % app_settings.TOTP_PERIOD
    if left < margin:
        time.sleep(left + 0.2)
    return totp_code(secret)


def login(page, user, password: str = PASSWORD, *, totp_secret: str | None = None) -> None:
    """Sign in through the login form (and the second-factor form when ``totp_secret`` is given)."""
    email = user if isinstance(user, str) else user.email
    page.goto("/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.locator("form[action='/accounts/login/'] button[type=submit]").click()
    if totp_secret:
        page.wait_for_url("**/accounts/2fa/authenticate/**")
        page.fill("input[name=code]", fresh_totp_code(totp_secret))
        page.locator("form[action='/accounts/2fa/authenticate/'] button[type=submit]").first.click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url and "/2fa/authenticate/" not in url)


def logout(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()


@pytest.fixture(name="login")
def login_fixture():
    return login


@pytest.fixture(name="logout")
def logout_fixture():
    return logout


@pytest.fixture(name="totp_code")
def totp_code_fixture():
    return totp_code

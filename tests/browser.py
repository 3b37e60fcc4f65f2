"""Headless Chromium for the browser tests and the viewer benchmark: where the binary is, the flags
it starts with, and the module-scoped Playwright fixtures.

- ``chromium_path()``: Debian's chromium (or ``$TELECONSULT_CHROMIUM``), or None.
- ``CHROMIUM_ARGS``: the launch flags every headless run uses.
- ``playwright_driver`` / ``browser``: one Playwright driver and one chromium per test module.
  tests/e2e/conftest.py imports them; a test module elsewhere imports them too (as
  ``browser_fixture`` and ``playwright_driver_fixture``: pytest finds a fixture by its ``name``).
- ``allow_orm_beside_playwright``: module-scoped ``DJANGO_ALLOW_ASYNC_UNSAFE=true`` for test modules
  that do ORM work in fixtures while the driver runs (tests/e2e sets it per test instead).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path(
    *, env_vars: Iterable[str] = ("TELECONSULT_CHROMIUM",), fallbacks: Iterable[str] = ("/usr/bin/chromium",)
) -> str | None:
    """The first executable file among the named environment variables, ``chromium`` on PATH and
    ``fallbacks``; None when there is none."""
    candidates = (*(os.environ.get(name) for name in env_vars), shutil.which("chromium"), *fallbacks)
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


# Module scope, not session: while the driver runs, this thread has a running asyncio loop, which
# makes Django refuse ORM calls and async_to_sync in every other test. Stopping it after each module
# leaves the tests that follow untouched.
@pytest.fixture(scope="module", name="playwright_driver")
def playwright_driver_fixture():
    from tests.conftest import require_service  # not at the top: bench.viewer imports this module

    executable = chromium_path()
    if executable is None:
        require_service("chromium", "install Debian's chromium (apt-get install chromium) or set TELECONSULT_CHROMIUM")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        require_service("playwright", f"pip install -r requirements-dev.txt ({exc})")
    driver = sync_playwright().start()
    yield driver
    driver.stop()


@pytest.fixture(scope="module", name="browser")
def browser_fixture(playwright_driver):
    browser = playwright_driver.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


@pytest.fixture(scope="module", name="allow_orm_beside_playwright")
def allow_orm_beside_playwright_fixture():
    # Playwright's sync API keeps an event loop in this thread; the ORM work between browser
    # steps is still plain synchronous code. Request it before ``browser`` so it outlives the driver.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield

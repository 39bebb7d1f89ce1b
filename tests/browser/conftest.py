"""Browser fixtures shared by every portal's browser tests: Debian's chromium driven by Playwright.

    from tests.browser.conftest import login

    @pytest.mark.browser
    @pytest.mark.django_db(transaction=True)
    def test_something(browser_page, live_server, make_member, org):
        make_member(org, role="credit_analyst", username="ana", password="pass-1234")
        login(browser_page, live_server, "ana", "pass-1234")
        browser_page.click("text=Credit risk")

Chromium comes from the operating system (`/usr/bin/chromium`, apt), never from a Playwright
download. Without it, browser tests are skipped with the reason, except under `CI=true`, where
a missing browser fails them: CI must not go green by skipping.

The live server (pytest-django's `live_server`) runs in a thread of the test process, so tests
need `django_db(transaction=True)`: the server thread only sees committed rows. It answers one
request at a time (`_serial_live_server`, in tests/conftest.py): the test database is SQLite in memory, one connection
shared with the server, and a browser's parallel requests (a viewer's thumbnails, OHIF's frames)
writing at once on it failed with "database table is locked".
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DEFAULT_TIMEOUT_MS = 10_000


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    """One headless chromium for the whole session."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is not installed (apt-get install chromium)"
        if _in_ci():
            pytest.fail(f"CI=true and browser tests need chromium: {reason}", pytrace=False)
        pytest.skip(reason)
    # Playwright's sync API runs an event loop in this thread; Django would then refuse ORM calls
    # made by the test itself ("SynchronousOnlyOperation"). The calls are in fact synchronous.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def browser_page(chromium_browser: Any) -> Iterator[Any]:
    """A fresh page in its own browser context (own cookies), closed after the test."""
    context = chromium_browser.new_context()
    page = context.new_page()
    page.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def login(page: Any, live_server: Any, username: str, password: str) -> None:
    """Sign in through the portal's login page and wait for the dashboard."""
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def logout(page: Any, live_server: Any) -> None:
    """Sign out with the header's button and wait for the login page."""
    page.click("header button:has-text('Log out')")
    page.wait_for_url(f"{live_server.url}/login/")


def nav_labels(page: Any) -> list[str]:
    """The labels of the portal navigation, in order."""
    return [label.strip() for label in page.locator("nav.portal-nav a").all_inner_texts()]

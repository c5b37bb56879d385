"""A real browser for the end-to-end tests: Debian's chromium driven by Playwright for Python.

``playwright install`` cannot download browsers here, so the tests use the distribution's
``/usr/bin/chromium``; ``scripts/test`` (through ``scripts/setup --dev``) apt-installs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container: the setuid sandbox is unavailable
    "--disable-gpu",
    "--disable-background-networking",  # no calls home: the only network target is loopback
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PHONE: ViewportSize = {"width": 390, "height": 844}
"""A phone-sized viewport (iPhone 12-15 class): the pages are meant for the phone in your hand."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module-scoped on purpose: Playwright's sync API runs an asyncio loop in this thread for as
    long as it is started, and every later async test in the same worker would then fail with
    "Cannot run the event loop while another loop is running". Stopping it after each module
    gives the thread back."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/test (it apt-installs Debian's chromium), "
            "or `apt-get install -y chromium`.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browser_page(browser: Browser) -> Iterator[Page]:
    """A fresh context (no cookies: nobody signed in) and page per test, phone-sized."""
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="en-GB",
        timezone_id="UTC",
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()

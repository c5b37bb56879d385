"""The operator's site name and brand colour on every page, error pages too, and times in the
operator's display time zone with the zone named, in the format of the browser's language
(issue 12), as a real browser shows them.

The server here has its own settings (``brand_color``, ``site_name``, ``display_time_zone``),
so it is a server of this module's own, not the shared ``live_server``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from coloraide import Color
from playwright.sync_api import Browser, Page, expect
from tests.conftest import LiveServer, make_settings
from tests.e2e.conftest import PHONE
from tests.e2e.test_browser_flow import PASSWORD, Party

from deviceflow.server.embedded import serve_in_thread

pytestmark = pytest.mark.browser

SITE_NAME = "Acme Devices"
BRAND = "#ffd400"  # a light yellow: only dark text reads on it
ZONE = "Europe/Berlin"
TITLE = re.compile(r" · Acme Devices$")


@pytest.fixture(scope="module")
def branded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path_factory.mktemp("branded"), site_name=SITE_NAME,
                             brand_color=BRAND, display_time_zone=ZONE)
    with serve_in_thread(settings) as base:
        httpx.get(base + "/healthz", timeout=5).raise_for_status()
        yield LiveServer(issuer=base, db_url=settings.db, settings=settings)


def page_in(browser: Browser, locale: str) -> Page:
    """A phone whose browser sends ``Accept-Language`` for ``locale`` (Playwright's locale)."""
    context = browser.new_context(viewport=PHONE, locale=locale, timezone_id="UTC")
    context.set_default_timeout(15_000)
    return context.new_page()


def computed(page: Page, selector: str, prop: str) -> str:
    value: str = page.locator(selector).evaluate(
        "(el, p) => getComputedStyle(el).getPropertyValue(p)", prop)
    return value


def assert_branded(page: Page) -> None:
    expect(page).to_have_title(TITLE)
    expect(page.locator("header.site .brand")).to_have_text(SITE_NAME)
    background = computed(page, "header.site", "background-color")
    text = computed(page, "header.site .brand", "color")
    assert Color(background).to_string(hex=True) == BRAND
    assert Color(text).contrast(background, method="wcag21") >= 4.5, (text, background)


def berlin(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(ZONE))


@pytest.mark.parametrize(
    ("locale", "shape"),
    [
        # "2. Dezember 2026, 15:05:09 MEZ": German order and words, Berlin's zone by name.
        ("de-DE", r"\d{1,2}\. [A-Za-zä]+ \d{4}, {hh}:{mm}:{ss} (MEZ|MESZ)"),
        # "December 2, 2026, 3:05:09 PM +0100": US order, 12-hour clock, the zone's offset.
        ("en-US", r"[A-Z][a-z]+ \d{1,2}, \d{4}, {h12}:{mm}:{ss}\s[AP]M \+0[12]00"),
    ],
    ids=["german", "american"],
)
def test_branding_and_times_through_the_whole_flow(
    browser: Browser, branded_server: LiveServer, locale: str, shape: str, tmp_path: Path,
) -> None:
    page = page_in(browser, locale)
    try:
        party = Party(branded_server)
        grant = party.device_authorization()
        page.goto(grant["verification_uri_complete"])
        assert_branded(page)  # the code page
        page.get_by_role("button", name="Continue", exact=True).click()
        expect(page.get_by_label("Username", exact=True)).to_be_visible()
        assert_branded(page)  # the sign-in page
        page.get_by_label("Username", exact=True).fill(party.username)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()

        approve_button = page.get_by_role("button", name="Approve", exact=True)
        expect(approve_button).to_be_visible()
        assert_branded(page)  # the consent page
        requested = page.locator("dl.origin time")
        assert_local_time(requested.get_attribute("datetime"), requested.inner_text(), shape)
        page.screenshot(path=str(tmp_path / f"consent-{locale}.png"), full_page=True)

        with page.expect_navigation():
            approve_button.click()
        expect(page.get_by_role("status")).to_contain_text("Device connected")
        assert_branded(page)  # the result page
        decided = page.get_by_role("status").locator("time")
        assert_local_time(decided.get_attribute("datetime"), decided.inner_text(), shape)
        assert party.poll(grant).get("access_token")

        with page.expect_navigation():
            page.get_by_role("link", name="Your devices").first.click()
        assert_branded(page)  # "Your devices"
        times = page.locator("li.device time")
        expect(times).to_have_count(2)  # approved, last used
        for index in range(2):
            element = times.nth(index)
            assert_local_time(element.get_attribute("datetime"), element.inner_text(), shape)

        page.goto(branded_server.issuer + "/device/no-such-page")
        expect(page.get_by_role("alert")).to_contain_text("There is no page at this address.")
        assert_branded(page)  # an error page
    finally:
        page.context.close()


def assert_local_time(iso: str | None, shown: str, shape: str) -> None:
    """``shown`` is ``iso`` (UTC, from ``<time datetime>``) as Berlin's wall clock, in the
    locale's shape, with the zone named."""
    assert iso is not None
    moment = berlin(iso)
    hour12 = moment.hour % 12 or 12
    pattern = (shape.replace("{hh}", f"{moment.hour:02d}").replace("{h12}", str(hour12))
               .replace("{mm}", f"{moment.minute:02d}").replace("{ss}", f"{moment.second:02d}"))
    assert re.fullmatch(pattern, shown), (shown, pattern)


def test_the_plain_server_has_the_default_name_and_no_brand_stylesheet(
    browser_page: Page, live_server: Any,
) -> None:
    browser_page.goto(live_server.issuer + "/device")
    expect(browser_page).to_have_title(re.compile(r" · Device sign-in$"))
    expect(browser_page.locator("header.site .brand")).to_have_text("Device sign-in")
    expect(browser_page.locator('link[href*="brand.css"]')).to_have_count(0)
    assert httpx.get(live_server.issuer + "/brand.css", timeout=10).status_code == 404


def test_the_brand_stylesheet_is_css_from_this_origin(branded_server: LiveServer) -> None:
    """The pages' CSP allows styles only from 'self' and none inline: the colour comes as a
    stylesheet of its own."""
    page = httpx.get(branded_server.issuer + "/device", timeout=10)
    link = re.search(r'<link rel="stylesheet" href="(/brand\.css\?v=[0-9a-f]+)">', page.text)
    assert link, page.text
    assert "style-src 'self'" in page.headers["content-security-policy"]
    css = httpx.get(branded_server.issuer + link.group(1), timeout=10)
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert f"--brand: {BRAND};" in css.text
    assert "--brand-fg: #000000;" in css.text

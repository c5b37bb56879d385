"""The proximity warning in a real browser at phone width (issue 10): a device authorization
"from" a data centre abroad, opened from a home network elsewhere, shows the risk in plain words
in ``role="alert"`` above the buttons, with **Deny** first and focused; under ``enforce`` there
is no **Approve** at all. Both sides reach the server through a trusted proxy on loopback
(``X-Forwarded-For``), the network facts come from MaxMind-format files the test writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from tests.conftest import LiveServer, make_settings
from tests.e2e.conftest import PHONE
from tests.support.networkdb import write_databases

from deviceflow.protocol.models import ClientChanges
from deviceflow.protocol.proximity import ProximityPolicy
from deviceflow.server.embedded import serve_in_thread

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
AWS_US, HOME_DE = "3.5.140.2", "91.64.10.1"
WARNING = ("This request was started from a data centre (Amazon AWS) in the United States. "
           "You are in Germany.")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("proximity")
    asn, country = write_databases(tmp)
    settings = make_settings(tmp, network_asn_database=str(asn),
                             network_country_database=str(country),
                             forwarded_allow_ips="127.0.0.1")
    with serve_in_thread(settings) as base:
        live = LiveServer(issuer=base, db_url=settings.db, settings=settings)
        live.add_user("alice", PASSWORD)
        yield live


@pytest.fixture
def phone_at_home(browser: Browser) -> Iterator[Page]:
    """A phone-sized page whose requests the proxy says came from a home line in Germany."""
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="en-GB",
        timezone_id="UTC", extra_http_headers={"X-Forwarded-For": HOME_DE},
    )
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def _authorize_from_a_data_centre(server: LiveServer, client_id: str) -> dict[str, Any]:
    response = httpx.post(server.issuer + "/device_authorization",
                          data={"client_id": client_id, "scope": "openid profile"},
                          headers={"X-Forwarded-For": AWS_US}, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _open_consent(page: Page, grant: dict[str, Any]) -> None:
    page.goto(grant["verification_uri_complete"])
    with page.expect_navigation():
        page.get_by_role("button", name="Continue", exact=True).click()
    page.get_by_label("Username", exact=True).fill("alice")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in", exact=True).click()


def test_the_warning_is_above_the_buttons_and_deny_comes_first(
        server: LiveServer, phone_at_home: Page, tmp_path: Path) -> None:
    server.add_client("tv-warn", name="Living-room TV")
    grant = _authorize_from_a_data_centre(server, "tv-warn")
    page = phone_at_home
    _open_consent(page, grant)

    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(WARNING)
    expect(alert).to_contain_text("If someone sent you this code or link, choose Deny.")
    buttons = page.locator("form.decision button")
    expect(buttons).to_have_text(["Deny", "Approve"])
    deny = page.get_by_role("button", name="Deny", exact=True)
    expect(deny).to_be_focused()
    box, deny_box = alert.bounding_box(), deny.bounding_box()
    assert box is not None
    assert deny_box is not None
    assert box["y"] + box["height"] <= deny_box["y"]  # said before the choice is offered
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"]  # the whole sentence fits the phone
    page.screenshot(path=str(tmp_path / "proximity-warning.png"), full_page=True)

    with page.expect_navigation():
        deny.click()
    expect(page.get_by_role("status")).to_contain_text("Request denied")
    poll = httpx.post(server.issuer + "/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "client_id": "tv-warn", "device_code": grant["device_code"]}, timeout=10)
    assert poll.json()["error"] == "access_denied"


def test_enforce_offers_no_approve(server: LiveServer, phone_at_home: Page) -> None:
    server.add_client("tv-enforce", name="Hotel TV")
    server._admin(lambda admin: admin.update_client("tv-enforce", ClientChanges(
        proximity_policy=ProximityPolicy.ENFORCE)))
    grant = _authorize_from_a_data_centre(server, "tv-enforce")
    page = phone_at_home
    _open_consent(page, grant)
    expect(page.get_by_role("alert")).to_contain_text(
        "For your safety this request can't be approved here.")
    expect(page.locator("form.decision button")).to_have_text(["Deny"])
    expect(page.get_by_role("button", name="Approve", exact=True)).to_have_count(0)

""""Your devices" in a real browser: sign a device in, find it on the page the success page
links to, press its **Sign out** button, and the device's next refresh is refused and its access
token introspects inactive (RFC 7662) at a resource server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from tests.e2e.pages import approve
from tests.e2e.test_browser_flow import PASSWORD, Party

pytestmark = pytest.mark.browser


def refresh(party: Party, refresh_token: str) -> dict[str, Any]:
    response = httpx.post(party.issuer + "/token", data={
        "grant_type": "refresh_token", "client_id": party.client_id,
        "refresh_token": refresh_token,
    }, timeout=10)
    body: dict[str, Any] = response.json()
    return body


def test_sign_a_device_out_on_your_devices(
    live_server: Any, browser_page: Page, tmp_path: Path,
) -> None:
    party = Party(live_server)
    api_secret = live_server.add_client(f"api-{party.client_id}", name="Orders API",
                                        public=False, grants=())
    assert api_secret is not None
    grant = party.device_authorization()
    approve(browser_page, grant["verification_uri_complete"], party.username, PASSWORD)
    tokens = party.poll(grant)
    assert "refresh_token" in tokens, tokens

    def introspect() -> dict[str, Any]:
        response = httpx.post(party.issuer + "/introspect", data={"token": tokens["access_token"]},
                              auth=(f"api-{party.client_id}", api_secret), timeout=10)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    assert introspect()["active"] is True

    with browser_page.expect_navigation():
        browser_page.get_by_role("link", name="Your devices").click()
    expect(browser_page.get_by_role("heading", name="Your devices", level=1)).to_be_visible()
    device = browser_page.locator("li.device")
    expect(device).to_have_count(1)
    expect(device).to_contain_text("E2E Living-room TV")
    expect(device).to_contain_text("e2e-tv/1.0")
    expect(device).to_contain_text("127.0.0.1")
    expect(browser_page.get_by_role("button", name="Sign out all devices")).to_be_visible()
    browser_page.screenshot(path=str(tmp_path / "your-devices.png"), full_page=True)

    with browser_page.expect_navigation():
        device.get_by_role("button", name="Sign out").click()
    expect(browser_page.get_by_role("status")).to_have_text("Signed out.")
    expect(browser_page.locator("li.device")).to_have_count(0)
    expect(browser_page.get_by_text("No devices are signed in")).to_be_visible()

    assert refresh(party, tokens["refresh_token"])["error"] == "invalid_grant"
    assert introspect() == {"active": False}

"""Remembered consent in a real browser (issue 11): the first approval shows the full
permissions list; the next sign-in of the same client asking for no more shows the short
confirmation (client, code, where and when, Approve / Deny — a page every time, RFC 8628 §5.4);
asking for more shows the full list with the new scopes marked; withdrawing the consent on
"Your devices" signs the device out (its refresh token is refused)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from tests.e2e.pages import DEVICE_CONNECTED, decide, sign_in_if_asked, submit_code
from tests.e2e.test_browser_flow import PASSWORD, Party
from tests.e2e.test_your_devices_browser import refresh

pytestmark = pytest.mark.browser


def ask(party: Party, scope: str) -> dict[str, Any]:
    response = httpx.post(party.issuer + "/device_authorization",
                          data={"client_id": party.client_id, "scope": scope},
                          headers={"User-Agent": "e2e-tv/1.0"}, timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def open_consent(page: Page, party: Party, grant: dict[str, Any]) -> None:
    page.goto(grant["verification_uri_complete"])
    submit_code(page)
    sign_in_if_asked(page, party.username, PASSWORD)


def test_short_confirmation_then_new_scopes_marked_then_withdrawn(
    live_server: Any, browser_page: Page, tmp_path: Path,
) -> None:
    party = Party(live_server)
    page = browser_page

    # First time: the full list, nothing marked (everything is new).
    first = ask(party, "openid")
    open_consent(page, party, first)
    expect(page.get_by_role("heading", name="What it asks for")).to_be_visible()
    expect(page.locator(".new-mark")).to_have_count(0)
    decide(page, "Approve", DEVICE_CONNECTED)
    party.poll(first)

    # Second time, no more than granted: the short confirmation, still a page to confirm.
    second = ask(party, "openid")
    open_consent(page, party, second)
    expect(page.get_by_text("It asks for nothing more.")).to_be_visible()
    expect(page.get_by_role("heading", name="What it asks for")).to_have_count(0)
    expect(page.locator("ul.scopes")).to_have_count(0)
    expect(page.locator("p.code")).to_have_text(second["user_code"])
    expect(page.get_by_role("heading", name="Where and when it was asked")).to_be_visible()
    expect(page.get_by_role("button", name="Deny", exact=True)).to_be_visible()
    page.screenshot(path=str(tmp_path / "short-confirmation.png"), full_page=True)
    decide(page, "Approve", DEVICE_CONNECTED)
    party.poll(second)

    # More scopes: the full list, the new ones marked.
    third = ask(party, "openid profile offline_access")
    open_consent(page, party, third)
    expect(page.get_by_role("heading", name="What it asks for")).to_be_visible()
    expect(page.locator("ul.scopes li.new")).to_have_count(2)
    expect(page.locator("ul.scopes li:not(.new)")).to_have_count(1)
    expect(page.locator("ul.scopes li.new").first).to_contain_text("new")
    page.screenshot(path=str(tmp_path / "new-scopes.png"), full_page=True)
    decide(page, "Approve", DEVICE_CONNECTED)
    tokens = party.poll(third)
    assert "refresh_token" in tokens, tokens

    # Withdraw it on "Your devices": the device is signed out.
    with page.expect_navigation():
        page.get_by_role("link", name="Your devices").click()
    allowed = page.locator("li.consent")
    expect(allowed).to_have_count(1)
    expect(allowed).to_contain_text("E2E Living-room TV")
    with page.expect_navigation():
        allowed.get_by_role("button", name="Withdraw").click()
    expect(page.get_by_role("status")).to_have_text(
        "Permission withdrawn. Its devices were signed out: 1.")
    expect(page.locator("li.consent")).to_have_count(0)
    expect(page.locator("li.device")).to_have_count(0)
    assert refresh(party, tokens["refresh_token"])["error"] == "invalid_grant"

    # Asked again, the full list returns.
    fourth = ask(party, "openid")
    open_consent(page, party, fourth)
    expect(page.get_by_role("heading", name="What it asks for")).to_be_visible()

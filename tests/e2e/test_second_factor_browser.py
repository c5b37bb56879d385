"""The second factor in a real browser: a person sets up an authenticator app from "Sign-in
security" (scanning is replaced by reading the key shown beside the QR code; the codes come from
pyotp, as from an app), then connects a device through the "Verification code" step; a recovery
code signs in once and is refused the second time."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Page, expect
from tests.e2e.pages import DEVICE_CONNECTED, RefusedError, approve, second_factor
from tests.e2e.test_browser_flow import PASSWORD, Party

pytestmark = pytest.mark.browser

_RECOVERY = re.compile(r"^[a-z2-9]{5}-[a-z2-9]{5}$")


def claims_of(token: str) -> dict[str, Any]:
    """A JWT's claims, read without checking the signature (the server's own tests do that)."""
    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return claims


def next_code(app: pyotp.TOTP) -> str:
    """The code of the next time step: the current one was spent confirming the app (a code is
    accepted once), and one step of drift is allowed (RFC 6238 §6)."""
    return app.at(time.time() + app.interval)


def enrol(page: Page, party: Party, shots: Path) -> tuple[pyotp.TOTP, list[str]]:
    page.goto(party.issuer + "/account/security")
    page.get_by_label("Username", exact=True).fill(party.username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Sign-in security", level=1)).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Set up an authenticator app", exact=True).click()
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    expect(qr).to_be_visible()
    assert qr.bounding_box() is not None
    page.screenshot(path=str(shots / "totp-setup.png"), full_page=True)
    app = pyotp.TOTP(page.locator("#totp_secret").inner_text().replace(" ", ""))
    page.get_by_label("Verification code", exact=True).fill(app.now())
    with page.expect_navigation():
        page.get_by_role("button", name="Turn on", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Two-step verification is on")
    codes = [c.strip() for c in page.locator(".recovery-codes code").all_inner_texts()]
    assert len(codes) == 10
    assert all(_RECOVERY.match(c) for c in codes), codes
    page.screenshot(path=str(shots / "recovery-codes.png"), full_page=True)
    return app, codes


def sign_out(page: Page, party: Party) -> None:
    page.goto(party.issuer + "/device")
    signout = page.get_by_role("button", name="Sign out", exact=True)
    if signout.count():
        with page.expect_navigation():
            signout.click()


def test_totp_enrolment_then_a_device_approved_with_a_code(
    live_server: Any, browser_page: Page, tmp_path: Path,
) -> None:
    party = Party(live_server)
    app, _ = enrol(browser_page, party, tmp_path)
    sign_out(browser_page, party)
    grant = party.device_authorization()
    approve(browser_page, grant["verification_uri_complete"], party.username, PASSWORD,
            screenshot_dir=tmp_path, otp=lambda: next_code(app))
    tokens = party.poll(grant)
    assert "access_token" in tokens, tokens
    # RFC 8176: the approval was made with a password and a one-time code.
    assert claims_of(tokens["access_token"])["amr"] == ["pwd", "otp", "mfa"]
    assert claims_of(tokens["id_token"])["amr"] == ["pwd", "otp", "mfa"]


def test_a_recovery_code_is_used_once(
    live_server: Any, browser_page: Page, tmp_path: Path,
) -> None:
    party = Party(live_server)
    _, codes = enrol(browser_page, party, tmp_path)
    sign_out(browser_page, party)
    grant = party.device_authorization()
    approve(browser_page, grant["verification_uri_complete"], party.username, PASSWORD,
            otp=lambda: codes[0])
    expect(browser_page.get_by_role("status")).to_contain_text(DEVICE_CONNECTED)
    sign_out(browser_page, party)
    again = party.device_authorization()
    with pytest.raises(RefusedError, match="That code didn't work"):
        approve(browser_page, again["verification_uri_complete"], party.username, PASSWORD,
                otp=lambda: codes[0])
    box = browser_page.get_by_label("Verification code", exact=True)
    expect(box).to_have_attribute("aria-invalid", "true")
    browser_page.screenshot(path=str(tmp_path / "recovery-refused.png"), full_page=True)
    second_factor(browser_page, codes[1])  # another of the codes still works
    expect(browser_page.get_by_role("button", name="Approve", exact=True)).to_be_visible()

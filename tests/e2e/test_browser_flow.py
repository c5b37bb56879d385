"""The device flow with a real browser (RFC 8628 §3.1–§3.5): a device asks for a code, a person
opens the link in chromium, signs in, approves or denies, and the device's polling ends with
tokens that verify against the server's JWKS, or with ``access_denied``."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry
from playwright.sync_api import Page, expect
from tests.e2e.pages import approve, decide, deny, sign_in_if_asked, submit_code

pytestmark = pytest.mark.browser

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PASSWORD = "a long enough test password"


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


class Party:
    """One device (a fresh public client) and one person (a fresh user) on the live server."""

    def __init__(self, live_server: Any) -> None:
        suffix = secrets.token_hex(4)
        self.issuer: str = live_server.issuer
        self.client_id = f"e2e-tv-{suffix}"
        self.username = f"e2e-person-{suffix}"
        live_server.add_client(self.client_id, name="E2E Living-room TV")
        self.sub: str = live_server.add_user(self.username, PASSWORD, "Alex Example")

    def device_authorization(self) -> dict[str, Any]:
        response = httpx.post(
            self.issuer + "/device_authorization",
            data={"client_id": self.client_id, "scope": "openid profile offline_access"},
            headers={"User-Agent": "e2e-tv/1.0"},
            timeout=10,
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def poll(self, grant: dict[str, Any]) -> dict[str, Any]:
        """Poll the token endpoint as RFC 8628 §3.5 asks: wait ``interval``, +5 s on slow_down."""
        interval = int(grant.get("interval", 5))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            response = httpx.post(self.issuer + "/token", data={
                "grant_type": DEVICE_GRANT, "client_id": self.client_id,
                "device_code": grant["device_code"],
            }, timeout=10)
            body: dict[str, Any] = response.json()
            if body.get("error") == "authorization_pending":
                time.sleep(interval)
            elif body.get("error") == "slow_down":
                interval += 5
                time.sleep(interval)
            else:
                return body
        raise AssertionError("the device never got an answer")


def verify_tokens(party: Party, tokens: dict[str, Any]) -> None:
    """Both JWTs verify against the JWKS that discovery points to, with the right iss/aud/sub."""
    metadata = httpx.get(party.issuer + "/.well-known/openid-configuration", timeout=10).json()
    assert metadata["issuer"] == party.issuer
    keys = KeySet.import_key_set(httpx.get(metadata["jwks_uri"], timeout=10).json())
    algorithms = metadata["id_token_signing_alg_values_supported"]

    access = jwt.decode(tokens["access_token"], keys, algorithms=algorithms)
    assert access.header["typ"].lower() == "at+jwt"
    JWTClaimsRegistry(
        iss={"essential": True, "value": party.issuer},
        aud={"essential": True, "value": party.issuer},
        sub={"essential": True, "value": party.sub},
        client_id={"essential": True, "value": party.client_id},
        exp={"essential": True},
    ).validate(access.claims)

    identity = jwt.decode(tokens["id_token"], keys, algorithms=algorithms)
    JWTClaimsRegistry(
        iss={"essential": True, "value": party.issuer},
        aud={"essential": True, "value": party.client_id},
        sub={"essential": True, "value": party.sub},
        auth_time={"essential": True},
    ).validate(identity.claims)
    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"]


def assert_screenshots(directory: Path, *names: str) -> None:
    for name in names:
        shot = directory / f"{name}.png"
        assert shot.is_file(), shot
        assert shot.stat().st_size > 0, shot


def test_approve_with_a_real_browser(
    live_server: Any, browser_page: Page, screenshots: Path,
) -> None:
    party = Party(live_server)
    grant = party.device_authorization()
    approve(browser_page, grant["verification_uri_complete"], party.username, PASSWORD,
            screenshot_dir=screenshots / "approve")
    tokens = party.poll(grant)
    assert "error" not in tokens, tokens
    verify_tokens(party, tokens)
    assert_screenshots(screenshots / "approve", "1-code", "2-signin", "3-consent",
                       "4-device-connected")


def test_deny_with_a_real_browser(
    live_server: Any, browser_page: Page, screenshots: Path,
) -> None:
    party = Party(live_server)
    grant = party.device_authorization()
    deny(browser_page, grant["verification_uri_complete"], party.username, PASSWORD,
         screenshot_dir=screenshots / "deny")
    assert party.poll(grant)["error"] == "access_denied"
    assert_screenshots(screenshots / "deny", "4-request-denied")


def test_a_code_typed_lowercase_with_a_space_still_works(
    live_server: Any, browser_page: Page,
) -> None:
    """RFC 8628 §6.1: "WDJB-MJHT" typed as "wdjb mjht" is the same code."""
    party = Party(live_server)
    grant = party.device_authorization()
    typed = grant["user_code"].lower().replace("-", " ")
    browser_page.goto(grant["verification_uri"])
    expect(browser_page.get_by_label("Code", exact=True)).to_have_value("")
    submit_code(browser_page, typed)
    sign_in_if_asked(browser_page, party.username, PASSWORD)
    expect(browser_page.get_by_text(grant["user_code"], exact=True)).to_be_visible()
    decide(browser_page, "Approve", "Device connected")
    verify_tokens(party, party.poll(grant))


def test_a_refused_code_is_shown_on_the_same_page(
    live_server: Any, browser_page: Page, screenshots: Path,
) -> None:
    browser_page.goto(live_server.issuer + "/device")
    browser_page.get_by_label("Code", exact=True).fill("bcdf ghjk")
    with browser_page.expect_navigation():
        browser_page.get_by_role("button", name="Continue", exact=True).click()
    expect(browser_page.get_by_role("alert")).to_contain_text("That code didn't work")
    expect(browser_page.get_by_label("Code", exact=True)).to_be_editable()
    browser_page.screenshot(path=str(screenshots / "5-refused.png"), full_page=True)
    assert_screenshots(screenshots, "5-refused")

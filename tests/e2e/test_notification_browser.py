"""The recovery path in a real browser (issue 10 §4): a person approves a device on the pages,
the server e-mails them through a real SMTP server (aiosmtpd) "A device signed in to your
account", and the link in that e-mail, opened in another browser that is signed in nowhere,
leads to the sign-in and then to "Your devices", where the device is signed out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from tests.conftest import LiveServer, make_settings
from tests.e2e.conftest import PHONE
from tests.e2e.pages import approve
from tests.e2e.test_browser_flow import PASSWORD, Party
from tests.support.receivers import smtp_server

from deviceflow.server.embedded import serve_in_thread

pytestmark = pytest.mark.browser

ADDRESS = "alex@example.com"


def test_the_emails_link_leads_to_your_devices_where_the_device_is_signed_out(
    browser: Browser, browser_page: Page, tmp_path: Path,
) -> None:
    with smtp_server() as (mailbox, smtp_port):
        settings = make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=smtp_port,
                                 smtp_security="none", smtp_from="auth@example.com")
        with serve_in_thread(settings) as issuer:
            server = LiveServer(issuer=issuer, db_url=settings.db, settings=settings)
            party = Party(server)
            server._admin(lambda admin: admin.set_email(party.username, ADDRESS))
            grant = party.device_authorization()
            approve(browser_page, grant["verification_uri_complete"], party.username, PASSWORD)
            tokens = party.poll(grant)
            assert "refresh_token" in tokens, tokens

            with mailbox.arrived:
                assert mailbox.arrived.wait_for(lambda: mailbox.messages, timeout=60)
            [message] = mailbox.messages
            assert mailbox.recipients == [[ADDRESS]]
            html = message.get_body(("html",))
            assert html is not None
            body = html.get_content()
            assert "E2E Living-room TV" in body
            assert "e2e-tv/1.0" in body
            [link] = re.findall(r'href="([^"]+)"', body)
            assert link == issuer + "/account/devices"

            # The person reads the mail elsewhere: a browser signed in nowhere.
            context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                          locale="en-GB", timezone_id="UTC")
            try:
                page = context.new_page()
                page.set_default_timeout(15_000)
                page.goto(link)
                expect(page.get_by_label("Username", exact=True)).to_be_visible()
                page.get_by_label("Username", exact=True).fill(party.username)
                page.get_by_label("Password", exact=True).fill(PASSWORD)
                with page.expect_navigation():
                    page.get_by_role("button", name="Sign in", exact=True).click()
                expect(page.get_by_role("heading", name="Your devices", level=1)).to_be_visible()
                device = page.locator("li.device")
                expect(device).to_have_count(1)  # opening the link revoked nothing
                expect(device).to_contain_text("E2E Living-room TV")
                page.screenshot(path=str(tmp_path / "from-the-email.png"), full_page=True)
                with page.expect_navigation():
                    device.get_by_role("button", name="Sign out").click()
                expect(page.get_by_role("status")).to_have_text("Signed out.")
            finally:
                context.close()

            refreshed: dict[str, Any] = httpx.post(issuer + "/token", data={
                "grant_type": "refresh_token", "client_id": party.client_id,
                "refresh_token": tokens["refresh_token"]}, timeout=10).json()
            assert refreshed["error"] == "invalid_grant"

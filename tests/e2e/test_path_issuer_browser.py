"""The browser flows against an issuer with a path (``http://127.0.0.1:PORT/tenant``): every
page, link, form and cookie under the path, in Debian's chromium."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page
from tests.conftest import LiveServer, make_settings
from tests.e2e.pages import approve
from tests.e2e.test_browser_flow import PASSWORD, Party, verify_tokens

from deviceflow.config.server import ServerSettings
from deviceflow.server.embedded import serve_in_thread

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def tenant_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    base = make_settings(tmp_path_factory.mktemp("tenant-server"))
    settings = ServerSettings(**{**base.model_dump(), "issuer": base.issuer + "/tenant"})
    with serve_in_thread(settings) as issuer:
        httpx.get(issuer + "/healthz", timeout=5).raise_for_status()
        yield LiveServer(issuer=issuer, db_url=settings.db, settings=settings)


def test_device_flow_in_a_real_browser_under_a_path_issuer(
    tenant_server: LiveServer, browser_page: Page,
) -> None:
    party = Party(tenant_server)
    grant = party.device_authorization()
    assert grant["verification_uri"] == tenant_server.issuer + "/device"
    approve(browser_page, grant["verification_uri_complete"], party.username, PASSWORD)
    assert browser_page.url.startswith(tenant_server.issuer + "/device/done")
    cookies = browser_page.context.cookies()
    assert [c["path"] for c in cookies if c["name"] == "deviceflow_session"] == ["/tenant"]
    tokens = party.poll(grant)
    assert "error" not in tokens, tokens
    verify_tokens(party, tokens)
    # "Your devices" shares the sign-in under the same path.
    browser_page.goto(tenant_server.issuer + "/account/devices")
    assert browser_page.get_by_text("E2E Living-room TV").first.is_visible()

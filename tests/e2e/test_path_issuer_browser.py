"""The browser flows against an issuer with a path (``http://127.0.0.1:PORT/tenant``): every
page, link, form and cookie under the path, in Debian's chromium."""

from __future__ import annotations

import base64
import hashlib
import queue
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Page, expect
from tests.conftest import LiveServer, make_settings
from tests.e2e.pages import approve
from tests.e2e.test_browser_flow import PASSWORD, Party, verify_tokens

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.models import ClientType
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


class LoopbackListener:
    """The client's side of RFC 8252 §7.3: a one-shot HTTP listener on 127.0.0.1 with a port the
    system picked, catching the authorization response the browser is redirected to."""

    def __init__(self) -> None:
        self.received: queue.Queue[dict[str, str]] = queue.Queue()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/callback":
                    received.put({k: v[0] for k, v in parse_qs(url.query).items()})
                body = b"<!doctype html><title>Done</title><p>You can close this tab.</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackListener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_authorization_code_with_pkce_in_a_real_browser_under_a_path_issuer(
    tenant_server: LiveServer, browser_page: Page,
) -> None:
    """The test is the client: it makes the PKCE pair, opens /authorize, and catches the
    redirect on its loopback listener; the person signs in and approves in chromium."""
    suffix = secrets.token_hex(4)
    client_id, username = f"e2e-cli-{suffix}", f"e2e-person-{suffix}"
    tenant_server._admin(lambda admin: admin.add_client(
        client_id, "E2E Desktop App", ClientType.PUBLIC, ["authorization_code", "refresh_token"],
        ["openid", "profile", "offline_access"], redirect_uris=["http://127.0.0.1/callback"]))
    sub = tenant_server.add_user(username, PASSWORD, "Alex Example")
    issuer = tenant_server.issuer
    meta = httpx.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
    assert meta["authorization_endpoint"] == issuer + "/authorize"
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    with LoopbackListener() as listener:
        redirect_uri = f"http://127.0.0.1:{listener.port}/callback"
        browser_page.goto(meta["authorization_endpoint"] + "?" + urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
            "scope": "openid profile offline_access", "state": state, "nonce": nonce,
            "code_challenge": challenge, "code_challenge_method": "S256"}))
        browser_page.get_by_label("Username", exact=True).fill(username)
        browser_page.get_by_label("Password", exact=True).fill(PASSWORD)
        with browser_page.expect_navigation():
            browser_page.get_by_role("button", name="Sign in", exact=True).click()
        expect(browser_page.get_by_text("E2E Desktop App").first).to_be_visible()
        with browser_page.expect_navigation(url=redirect_uri + "?*"):
            browser_page.get_by_role("button", name="Approve", exact=True).click()
        expect(browser_page.get_by_text("You can close this tab.")).to_be_visible()
        answer = listener.received.get(timeout=10)
    assert answer["state"] == state
    assert answer["iss"] == issuer  # RFC 9207: the client checks it came from this issuer
    redeem = {"grant_type": "authorization_code", "client_id": client_id,
              "code": answer["code"], "redirect_uri": redirect_uri, "code_verifier": verifier}
    tokens = httpx.post(meta["token_endpoint"], data=redeem, timeout=10).json()
    assert "error" not in tokens, tokens
    keys = KeySet.import_key_set(httpx.get(meta["jwks_uri"], timeout=10).json())
    identity = jwt.decode(tokens["id_token"], keys).claims
    assert (identity["iss"], identity["aud"], identity["sub"], identity["nonce"]) == (
        issuer, client_id, sub, nonce)
    assert identity["at_hash"]
    assert identity["auth_time"]
    # The code again: refused, and what it issued is revoked (RFC 6749 §4.1.2).
    replay = httpx.post(meta["token_endpoint"], data=redeem, timeout=10)
    assert replay.json()["error"] == "invalid_grant"
    refreshed = httpx.post(meta["token_endpoint"], data={
        "grant_type": "refresh_token", "client_id": client_id,
        "refresh_token": tokens["refresh_token"]}, timeout=10)
    assert refreshed.json()["error"] == "invalid_grant"

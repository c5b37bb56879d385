"""The authorization code flow with PKCE through HTTP (RFC 6749 §4.1, RFC 7636, RFC 9207,
RFC 8252 §7.3): /authorize, the shared sign-in, the consent page, the redirect back with
``code``, ``state`` and ``iss``, and the token request; every refusal the right kind (a page,
or an error at the redirect URI); codes single use, short-lived and stored hashed."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pyotp
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.models import ClientType
from deviceflow.server.service import AdminService, FactorRefused, Throttled
from deviceflow.server.web.app import create_app
from deviceflow.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

HOST = "http://127.0.0.1:8000"
ISSUER = HOST + "/tenant"
PASSWORD = "correct horse battery staple"
REGISTERED = "http://127.0.0.1/callback"
WEB = "https://app.example/cb?from=deviceflow"
GRANTS = ["authorization_code", "refresh_token"]
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')
GENEROUS = {"limit_login_per_account": "1000/hour", "limit_login_per_ip": "1000/hour"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def field(pattern: re.Pattern[str], html: str) -> str:
    match = pattern.search(html)
    assert match, html
    return match.group(1)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Server:
    app: Starlette
    admin: AdminService
    store: MemoryStore
    clock: Clock

    def browser(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=("198.51.100.7", 5000))
        return httpx.AsyncClient(transport=transport, base_url=HOST,
                                 headers={"User-Agent": "Browser/1.0"})

    async def token(self, **data: str) -> httpx.Response:
        async with self.browser() as http:
            return await http.post("/tenant/token", data={"grant_type": "authorization_code",
                                                          **data})

    async def keys(self) -> KeySet:
        async with self.browser() as http:
            return KeySet.import_key_set((await http.get("/tenant/jwks.json")).json())


@pytest.fixture
async def server(anyio_backend: str) -> AsyncIterator[Server]:
    store, clock = MemoryStore(), Clock()
    settings = ServerSettings(issuer=ISSUER, db="sqlite:///unused.sqlite3", log_format="text",
                              **GENEROUS)
    app = create_app(settings, store=store, clock=clock)
    async with app.router.lifespan_context(app):
        admin = AdminService(store, clock)
        await admin.add_client("cli", "Example CLI", ClientType.PUBLIC, GRANTS,
                               ["openid", "profile", "offline_access"],
                               redirect_uris=[REGISTERED])
        await admin.add_user("alice", PASSWORD, "Alice Example")
        yield Server(app, admin, store, clock)


def authorize_url(challenge: str | None = None, **extra: str) -> str:
    params = {"response_type": "code", "client_id": "cli",
              "redirect_uri": "http://127.0.0.1:50123/callback",
              "scope": "openid profile offline_access", "state": "st-123", "nonce": "n-456"}
    if challenge is not None:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    params.update(extra)
    return "/tenant/authorize?" + urlencode({k: v for k, v in params.items() if v != "-"})


async def sign_in(browser: httpx.AsyncClient, location: str) -> httpx.Response:
    assert location == "/tenant/device/signin"
    page = await browser.get(location)
    assert "Sign in with your account on this server." in page.text
    return await browser.post(location, data={"csrf_token": field(_CSRF, page.text),
                                              "username": "alice", "password": PASSWORD})


async def consent(browser: httpx.AsyncClient, decision: str = "approve") -> httpx.Response:
    page = await browser.get("/tenant/authorize/consent")
    assert page.status_code == 200, page.text
    return await browser.post("/tenant/authorize/consent", data={
        "csrf_token": field(_CSRF, page.text), "request_id": field(_REQUEST_ID, page.text),
        "decision": decision})


async def code_for(server: Server, challenge: str, **extra: str) -> dict[str, str]:
    async with server.browser() as browser:
        started = await browser.get(authorize_url(challenge, **extra))
        assert started.status_code == 303, started.text
        signed = await sign_in(browser, started.headers["location"])
        assert signed.headers["location"] == "/tenant/authorize/consent"
        decided = await consent(browser)
    assert decided.status_code == 303
    location = decided.headers["location"]
    return {"location": location, **query_of(location)}


async def test_the_whole_flow_ends_with_verified_tokens(server: Server) -> None:
    verifier, challenge = pkce_pair()
    async with server.browser() as browser:
        started = await browser.get(authorize_url(challenge))
        signed = await sign_in(browser, started.headers["location"])
        page = await browser.get(signed.headers["location"])
        assert "Example CLI" in page.text
        assert "127.0.0.1:50123" in page.text  # where the browser goes next
        # The POST's redirect goes to the client: CSP form-action must allow that origin.
        assert "form-action 'self' http://127.0.0.1:50123;" in (
            page.headers["content-security-policy"])
        decided = await consent(browser)
    location = decided.headers["location"]
    assert location.startswith("http://127.0.0.1:50123/callback?")
    assert decided.headers["cache-control"] == "no-store"
    answer = query_of(location)
    assert answer["state"] == "st-123"
    assert answer["iss"] == ISSUER  # RFC 9207 §2
    # Stored only as an HMAC.
    stored = list(server.store._state.authorization_codes)
    assert answer["code"] not in stored
    assert len(stored) == 1
    response = await server.token(client_id="cli", code=answer["code"],
                                  redirect_uri="http://127.0.0.1:50123/callback",
                                  code_verifier=verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert {"access_token", "id_token", "refresh_token"} <= set(body)
    keys = await server.keys()
    identity = jwt.decode(body["id_token"], keys).claims
    assert identity["iss"] == ISSUER
    assert identity["aud"] == "cli"
    assert identity["nonce"] == "n-456"
    assert identity["auth_time"] == int(server.clock.now)
    digest = hashlib.sha256(body["access_token"].encode()).digest()[:16]
    assert identity["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    access = jwt.decode(body["access_token"], keys).claims
    assert access["gty"] == "authorization_code"
    assert identity["amr"] == access["amr"] == ["pwd"]  # RFC 8176: the password alone
    refreshed = await server.token(grant_type="refresh_token", client_id="cli",
                                   refresh_token=body["refresh_token"])
    assert refreshed.status_code == 200


async def test_a_second_factor_is_in_the_amr_of_both_tokens_and_kept_on_refresh(
    server: Server,
) -> None:
    service = server.app.state.service
    async with server.store.unit_of_work(read_only=True) as uow:
        alice = await uow.users.get_by_username("alice")
    assert alice is not None
    enrolment = await service.factors.begin_totp(alice.user_id, "alice", "Example")
    app = pyotp.TOTP(enrolment.secret)
    assert not isinstance(await service.factors.confirm_totp(
        alice.user_id, app.at(server.clock.now)), (Throttled, FactorRefused))
    server.clock.now += 30
    verifier, challenge = pkce_pair()
    async with server.browser() as browser:
        started = await browser.get(authorize_url(challenge))
        signed = await sign_in(browser, started.headers["location"])
        assert signed.headers["location"] == "/tenant/device/signin/verify"
        page = await browser.get(signed.headers["location"])
        verified = await browser.post(signed.headers["location"], data={
            "csrf_token": field(_CSRF, page.text), "otp": app.at(server.clock.now)})
        assert verified.headers["location"] == "/tenant/authorize/consent"
        decided = await consent(browser)
    response = await server.token(client_id="cli", code=query_of(decided.headers["location"])[
        "code"], redirect_uri="http://127.0.0.1:50123/callback", code_verifier=verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    keys = await server.keys()
    factors = ["pwd", "otp", "mfa"]
    assert jwt.decode(body["id_token"], keys).claims["amr"] == factors
    assert jwt.decode(body["access_token"], keys).claims["amr"] == factors
    refreshed = await server.token(grant_type="refresh_token", client_id="cli",
                                   refresh_token=body["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert jwt.decode(refreshed.json()["access_token"], keys).claims["amr"] == factors


async def test_a_replayed_code_is_refused_and_revokes_what_it_issued(server: Server) -> None:
    verifier, challenge = pkce_pair()
    answer = await code_for(server, challenge)
    redeem = {"client_id": "cli", "code": answer["code"], "code_verifier": verifier,
              "redirect_uri": "http://127.0.0.1:50123/callback"}
    first = (await server.token(**redeem)).json()
    again = await server.token(**redeem)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    refreshed = await server.token(grant_type="refresh_token", client_id="cli",
                                   refresh_token=first["refresh_token"])
    assert refreshed.json()["error"] == "invalid_grant"
    async with server.browser() as http:
        info = await http.get("/tenant/userinfo",
                              headers={"Authorization": f"Bearer {first['access_token']}"})
    assert info.status_code == 401


@pytest.mark.parametrize(("change", "why"), [
    ({"code_verifier": "x" * 43}, "wrong verifier"),
    ({"code_verifier": "-"}, "no verifier"),
    ({"redirect_uri": "http://127.0.0.1:50124/callback"}, "another redirect URI"),
    ({"redirect_uri": "-"}, "no redirect URI though the request named one"),
    ({"client_id": "other"}, "another client"),
])
async def test_a_redemption_that_does_not_match_is_invalid_grant(
    server: Server, change: dict[str, str], why: str,
) -> None:
    await server.admin.add_client("other", "Other", ClientType.PUBLIC, GRANTS, ["openid"],
                                  redirect_uris=[REGISTERED])
    verifier, challenge = pkce_pair()
    answer = await code_for(server, challenge)
    redeem = {"client_id": "cli", "code": answer["code"], "code_verifier": verifier,
              "redirect_uri": "http://127.0.0.1:50123/callback"} | change
    response = await server.token(**{k: v for k, v in redeem.items() if v != "-"})
    assert response.json()["error"] == "invalid_grant", why


async def test_a_code_lives_sixty_seconds_at_most(server: Server) -> None:
    verifier, challenge = pkce_pair()
    answer = await code_for(server, challenge)
    server.clock.now += 60
    response = await server.token(client_id="cli", code=answer["code"], code_verifier=verifier,
                                  redirect_uri="http://127.0.0.1:50123/callback")
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(("extra", "error"), [
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": "-"}, "invalid_request"),  # absent means plain (RFC 7636 §4.3)
    ({"code_challenge": "-", "code_challenge_method": "-"}, "invalid_request"),  # public: PKCE
    ({"code_challenge": "too-short"}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "openid admin"}, "invalid_scope"),
    ({"response_mode": "fragment"}, "invalid_request"),
    ({"prompt": "none"}, "consent_required"),
])
async def test_other_errors_go_back_to_the_client_with_state_and_iss(
    server: Server, extra: dict[str, str], error: str,
) -> None:
    _, challenge = pkce_pair()
    async with server.browser() as browser:
        response = await browser.get(authorize_url(challenge, **extra))
    assert response.status_code == 303
    answer = query_of(response.headers["location"])
    assert response.headers["location"].startswith("http://127.0.0.1:50123/callback?")
    assert answer["error"] == error
    assert answer["state"] == "st-123"
    assert answer["iss"] == ISSUER


async def test_a_repeated_parameter_is_invalid_request(server: Server) -> None:
    _, challenge = pkce_pair()
    async with server.browser() as browser:
        response = await browser.get(authorize_url(challenge) + "&scope=openid")
    assert query_of(response.headers["location"])["error"] == "invalid_request"


@pytest.mark.parametrize("extra", [
    {"client_id": "nobody"},
    {"client_id": "-"},
    {"redirect_uri": "https://evil.example/callback"},
    {"redirect_uri": "http://127.0.0.1:50123/callback/other"},
    {"redirect_uri": "http://localhost:50123/callback"},
    {"redirect_uri": "http://127.0.0.1:50123/callback#frag"},
], ids=["unknown-client", "no-client", "foreign", "other-path", "localhost", "fragment"])
async def test_an_untrusted_client_or_redirect_uri_gets_a_page_and_no_redirect(
    server: Server, extra: dict[str, str],
) -> None:
    _, challenge = pkce_pair()
    async with server.browser() as browser:
        response = await browser.get(authorize_url(challenge, **extra))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert 'role="alert"' in response.text


async def test_deny_sends_access_denied(server: Server) -> None:
    _, challenge = pkce_pair()
    async with server.browser() as browser:
        started = await browser.get(authorize_url(challenge))
        await sign_in(browser, started.headers["location"])
        decided = await consent(browser, "deny")
        answer = query_of(decided.headers["location"])
        assert answer == {"error": "access_denied", "error_description": answer[
            "error_description"], "state": "st-123", "iss": ISSUER}
        # The request is used up: Back and Approve decide nothing.
        again = await browser.get("/tenant/authorize/consent")
    assert again.status_code == 400


async def test_a_web_client_keeps_its_query_and_a_single_uri_may_be_omitted(
    server: Server,
) -> None:
    _, secret = await server.admin.add_client("web", "Web app", ClientType.CONFIDENTIAL,
                                              GRANTS, ["openid"], redirect_uris=[WEB])
    assert secret is not None
    async with server.browser() as browser:
        # A confidential client may go without PKCE (RFC 9700 §2.1.1 requires it of public ones).
        started = await browser.get("/tenant/authorize?response_type=code&client_id=web"
                                    "&state=abc")
        await sign_in(browser, started.headers["location"])
        decided = await consent(browser)
    location = decided.headers["location"]
    assert location.startswith("https://app.example/cb?from=deviceflow&code=")
    code = query_of(location)["code"]
    basic = base64.b64encode(f"web:{secret}".encode()).decode()
    async with server.browser() as http:
        # A verifier with no challenge in the request is a PKCE downgrade: refused.
        downgraded = await http.post("/tenant/token", headers={"Authorization": "Basic " + basic},
                                     data={"grant_type": "authorization_code", "code": code,
                                           "code_verifier": "v" * 43})
        assert downgraded.json()["error"] == "invalid_grant"


async def test_an_older_tab_cannot_approve_a_newer_request(server: Server) -> None:
    _, challenge = pkce_pair()
    async with server.browser() as browser:
        started = await browser.get(authorize_url(challenge))
        await sign_in(browser, started.headers["location"])
        old = await browser.get("/tenant/authorize/consent")
        await browser.get(authorize_url(challenge, state="newer"))
        response = await browser.post("/tenant/authorize/consent", data={
            "csrf_token": field(_CSRF, old.text), "request_id": field(_REQUEST_ID, old.text),
            "decision": "approve"})
    assert response.status_code == 409
    assert not server.store._state.authorization_codes


async def test_a_stale_sign_in_is_asked_for_the_password_before_approving(
    server: Server,
) -> None:
    _, challenge = pkce_pair()
    async with server.browser() as browser:
        started = await browser.get(authorize_url(challenge))
        await sign_in(browser, started.headers["location"])
        server.clock.now += 20 * 60  # past approval_max_age, within the session lifetime
        again = await browser.get(authorize_url(challenge))
        assert again.headers["location"] == "/tenant/device/signin"
        page = await browser.get("/tenant/device/signin")
    assert "to approve this sign-in" in page.text


async def test_an_overlong_state_is_refused_without_echoing_it(server: Server) -> None:
    _, challenge = pkce_pair()
    async with server.browser() as browser:
        response = await browser.get(authorize_url(challenge, state="s" * 513))
    answer = query_of(response.headers["location"])
    assert answer["error"] == "invalid_request"
    assert "state" not in answer

"""The authorization code + PKCE flow's sans-I/O core (browser_flow.py): the request, the
redirect's checks (state, iss, errors) and the token request."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
from tests.unit.client.flowkit import FakeClock, Script, js

from deviceflow.client.browser_flow import (
    AuthorizationRequest,
    AwaitRedirect,
    ForeignRedirectError,
    Listen,
    Listening,
    Redirected,
    browser_sign_in,
    code_challenge,
    loopback_redirect_uri,
    new_authorization,
    obtain_browser_token,
)
from deviceflow.client.errors import (
    AccessDeniedError,
    ConfigurationError,
    InvalidGrantError,
    ServerResponseError,
)
from deviceflow.client.flow import (
    ClientAuth,
    Event,
    HttpRequest,
    Reply,
    SendRequest,
    ServerMetadata,
)
from deviceflow.client.providers import ProviderKind, Quirks, provider_for

META = ServerMetadata(
    issuer="https://id.example.com",
    token_endpoint="https://id.example.com/token",
    device_authorization_endpoint="https://id.example.com/device",
    authorization_endpoint="https://id.example.com/authorize",
    code_challenge_methods_supported=("S256",),
    authorization_response_iss_parameter_supported=True,
)
REDIRECT = "http://127.0.0.1:50123/callback"


def counter_entropy() -> object:
    """Deterministic "random" bytes: 32 bytes of 1, then of 2, then of 3..."""
    calls = [0]

    def entropy(n: int) -> bytes:
        calls[0] += 1
        return bytes([calls[0]]) * n

    return entropy


def authorization(**meta: object) -> AuthorizationRequest:
    metadata = replace(META, **meta)  # type: ignore[arg-type]
    return new_authorization(
        metadata, "cli", REDIRECT, ("openid", "profile"), entropy=counter_entropy()  # type: ignore[arg-type]
    )


def test_s256_matches_rfc_7636_appendix_b() -> None:
    assert (
        code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_the_authorization_request_carries_pkce_state_and_nonce() -> None:
    authz = authorization()
    parts = urlsplit(authz.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://id.example.com/authorize"
    query = parse_qs(parts.query, strict_parsing=True)
    assert {k: v[0] for k, v in query.items()} == {
        "response_type": "code",
        "client_id": "cli",
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": authz.state,
        "code_challenge": code_challenge(authz.code_verifier),
        "code_challenge_method": "S256",
        "nonce": authz.nonce,
    }
    # 256 bits each, base64url without padding: a 43-character verifier (RFC 7636 §4.1).
    assert len(authz.code_verifier) == 43
    assert len({authz.code_verifier, authz.state, authz.nonce}) == 3
    assert authz.iss_required is True
    assert authz.code_verifier not in authz.url


def test_no_nonce_without_openid_and_the_endpoints_query_is_kept() -> None:
    metadata = replace(META, authorization_endpoint="https://id.example.com/authorize?p=x")
    authz = new_authorization(metadata, "cli", REDIRECT, ("repo",))
    query = parse_qs(urlsplit(authz.url).query)
    assert query["p"] == ["x"]
    assert "nonce" not in query
    assert authz.nonce is None


def test_a_server_without_an_authorization_endpoint_or_s256_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="no authorization endpoint"):
        authorization(authorization_endpoint=None)
    with pytest.raises(ConfigurationError, match="S256"):
        authorization(code_challenge_methods_supported=("plain",))


@pytest.mark.parametrize(
    ("quirks", "expected"),
    [
        (Quirks(), "http://127.0.0.1:4711/callback"),
        (provider_for(ProviderKind.ENTRA).quirks, "http://localhost:4711"),
        (provider_for(ProviderKind.GOOGLE).quirks, "http://127.0.0.1:4711/callback"),
        (provider_for(ProviderKind.GITHUB).quirks, "http://127.0.0.1:4711/callback"),
        (Quirks(loopback_host="::1"), "http://[::1]:4711/callback"),
    ],
    ids=["rfc8252", "entra", "google", "github", "ipv6"],
)
def test_loopback_redirect_uri_per_provider(quirks: Quirks, expected: str) -> None:
    assert loopback_redirect_uri(4711, quirks) == expected


def query(authz: AuthorizationRequest, **params: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"state": authz.state, "iss": authz.issuer, **params})


def test_the_code_comes_back_with_state_and_iss() -> None:
    authz = authorization()
    assert authz.check(query(authz, code="c0de")) == "c0de"


@pytest.mark.parametrize(
    "raw",
    ["code=c0de", "code=c0de&state=another", "code=c0de&state="],
    ids=["no-state", "other-state", "empty-state"],
)
def test_a_redirect_with_another_state_is_foreign(raw: str) -> None:
    authz = authorization()
    with pytest.raises(ForeignRedirectError):
        authz.check(raw)


def test_a_repeated_parameter_is_foreign() -> None:
    authz = authorization()
    with pytest.raises(ForeignRedirectError, match="twice"):
        authz.check(query(authz, code="c0de") + "&code=other")


def test_another_issuer_stops_the_sign_in_rfc_9207() -> None:
    authz = authorization()
    with pytest.raises(ServerResponseError, match="evil"):
        authz.check(query(authz, code="c0de", iss="https://evil.example.com"))


def test_a_missing_iss_is_refused_when_the_server_advertises_it() -> None:
    authz = authorization()
    with pytest.raises(ServerResponseError, match="no 'iss'"):
        authz.check(f"state={authz.state}&code=c0de")
    relaxed = authorization(authorization_response_iss_parameter_supported=False)
    assert relaxed.check(f"state={relaxed.state}&code=c0de") == "c0de"


def test_an_error_response_is_the_servers_error() -> None:
    authz = authorization()
    with pytest.raises(AccessDeniedError):
        authz.check(query(authz, error="access_denied", error_description="No\x1b[2J thanks"))


def test_neither_code_nor_error_is_a_server_error() -> None:
    authz = authorization()
    with pytest.raises(ServerResponseError, match="neither a code nor an error"):
        authz.check(query(authz))


def fake_jwt(claims: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


class Browser:
    """Answers Listen and AwaitRedirect like the loopback driver, with a scripted redirect."""

    def __init__(self, script: Script, redirect: str | None = None) -> None:
        self.script = script
        self.redirect = redirect
        self.seen: list[AwaitRedirect] = []

    def __call__(self, event: object) -> Reply | Listening | Redirected:
        if isinstance(event, Listen):
            return Listening(50123)
        if isinstance(event, AwaitRedirect):
            self.seen.append(event)
            authz = event.authorization
            return Redirected(authz.check(self.redirect or query(authz, code="the-code")))
        assert isinstance(event, SendRequest)
        return self.script(event)  # type: ignore[arg-type]


def drive(flow: object, answer: Browser) -> object:
    try:
        event = next(flow)  # type: ignore[call-overload]
        while True:
            event = flow.send(answer(event))  # type: ignore[attr-defined]
    except StopIteration as stop:
        return stop.value


def test_the_whole_sign_in_exchanges_the_code_with_the_verifier() -> None:
    clock = FakeClock()
    sent_nonce: list[str] = []

    def token_endpoint(request: HttpRequest) -> object:
        return js(
            200,
            {
                "access_token": "at",
                "token_type": "Bearer",
                "expires_in": 3600,
                "refresh_token": "rt",
                "id_token": fake_jwt({"nonce": sent_nonce[0]}),
            },
        )

    script = Script(clock, handler=token_endpoint)  # type: ignore[arg-type]
    browser = Browser(script)
    original_call = browser.__call__

    def answer(event: object) -> object:
        if isinstance(event, AwaitRedirect) and event.authorization.nonce:
            sent_nonce.append(event.authorization.nonce)
        return original_call(event)

    flow = browser_sign_in(META, ClientAuth("cli"), ("openid",), clock)
    token = drive(flow, answer)  # type: ignore[arg-type]
    assert token.access_token == "at"  # type: ignore[attr-defined]
    (request,) = script.requests
    authz = browser.seen[0].authorization
    assert request.url == "https://id.example.com/token"
    assert dict(request.form or ()) == {
        "client_id": "cli",
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "http://127.0.0.1:50123/callback",
        "code_verifier": authz.code_verifier,
    }
    assert browser.seen[0].timeout == 300
    # --debug output: neither the code nor the verifier.
    assert "code=***" in request.redacted_form()
    assert "code_verifier=***" in request.redacted_form()
    assert authz.code_verifier not in repr(request)


def test_an_id_token_with_another_nonce_is_refused() -> None:
    clock = FakeClock()
    reply = js(200, {"access_token": "at", "id_token": fake_jwt({"nonce": "not-mine"})})
    script = Script(clock, [reply])
    with pytest.raises(ServerResponseError, match="nonce"):
        drive(browser_sign_in(META, ClientAuth("cli"), ("openid",), clock), Browser(script))


def test_a_refused_code_is_invalid_grant() -> None:
    clock = FakeClock()
    script = Script(clock, [js(400, {"error": "invalid_grant"})])
    with pytest.raises(InvalidGrantError):
        drive(browser_sign_in(META, ClientAuth("cli"), ("profile",), clock), Browser(script))


def test_refresh_first_then_the_browser_when_refused() -> None:
    clock = FakeClock()
    script = Script(
        clock,
        [js(400, {"error": "invalid_grant"}), js(200, {"access_token": "new", "expires_in": 60})],
    )
    browser = Browser(script)
    flow = obtain_browser_token(
        META, ClientAuth("cli"), ("profile",), clock, refresh_token="old-rt"
    )
    token, fresh = drive(flow, browser)  # type: ignore[misc]
    assert (token.access_token, fresh) == ("new", True)
    assert [dict(r.form or ())["grant_type"] for r in script.requests] == [
        "refresh_token",
        "authorization_code",
    ]
    silent = Script(clock, [js(200, {"access_token": "quiet"})])
    token, fresh = drive(  # type: ignore[misc]
        obtain_browser_token(META, ClientAuth("cli"), (), clock, refresh_token="rt"),
        Browser(silent),
    )
    assert (token.access_token, fresh) == ("quiet", False)


def test_events_are_what_the_flow_yields() -> None:
    flow = browser_sign_in(META, ClientAuth("cli"), (), FakeClock(), timeout=12)
    first: Event | object = next(flow)
    assert isinstance(first, Listen)
    second = flow.send(Listening(8080))
    assert isinstance(second, AwaitRedirect)
    assert second.timeout == 12
    assert second.authorization.redirect_uri == "http://127.0.0.1:8080/callback"
    flow.close()


@pytest.mark.parametrize(
    ("quirks", "host"),
    [(Quirks(), "127.0.0.1"), (provider_for(ProviderKind.ENTRA).quirks, "127.0.0.1"),
     (Quirks(loopback_host="::1"), "::1")],
    ids=["ipv4", "localhost-name", "ipv6"],
)
def test_the_listener_binds_the_redirects_loopback_address(quirks: Quirks, host: str) -> None:
    flow = browser_sign_in(META, ClientAuth("cli"), (), FakeClock(), quirks=quirks)
    listen = next(flow)
    assert listen == Listen(host)
    flow.close()


def test_the_code_is_redeemed_once_even_when_no_answer_comes() -> None:
    from deviceflow.client.errors import NetworkError
    from deviceflow.client.flow import TransportFailure

    clock = FakeClock()
    script = Script(clock, [TransportFailure("connection reset")])
    with pytest.raises(NetworkError):
        drive(browser_sign_in(META, ClientAuth("cli"), (), clock), Browser(script))
    assert len(script.requests) == 1

"""``deviceflow logout`` (RFC 7009) and ``deviceflow status`` (RFC 7662) against respx-mocked
providers answering as their documentation says."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
from tests.unit.cli.clienv import Result, invoke

from deviceflow.cli.exit_codes import ExitCode
from deviceflow.client.cache import CachedToken, CacheRecord, StoreKind, TokenCache
from deviceflow.client.profiles import ProfileStore
from deviceflow.client.tokens import TokenSet

ISSUER = "https://id.example.com"
DISCOVERY = f"{ISSUER}/.well-known/openid-configuration"
REVOKE = f"{ISSUER}/oauth/revoke"
INTROSPECT = f"{ISSUER}/oauth/introspect"
RT, AT = "rt-do-not-print-me", "at-do-not-print-me"
SECRET = "client-secret-do-not-print"


def doc(**extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "issuer": ISSUER,
        "token_endpoint": f"{ISSUER}/oauth/token",
        "device_authorization_endpoint": f"{ISSUER}/oauth/device/code",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }
    body.update(extra)
    return body


def signed_in(
    home: Path, *, provider: str = "oidc", secret: bool = False, expires_in: float = 3600
) -> None:
    args = ["create-profile", "--name", "p", "--provider", provider, "--client-id", "cli"]
    if provider not in ("google", "github"):
        args += ["--issuer", ISSUER]
    if secret:
        args.append("--client-secret-stdin")
    created = invoke(home, *args, stdin=SECRET + "\n" if secret else "")
    assert created.code == 0, created.err
    profile = ProfileStore(home / "config").load().get("p")
    cache = TokenCache(home / "data", StoreKind.FILE)
    token = TokenSet(AT, expires_at=time.time() + expires_in)
    cache.save(
        CacheRecord(profile.cache_key, RT, None, (CachedToken(("openid",), "", token),))
    )


def token_files(home: Path) -> list[Path]:
    return sorted((home / "data" / "tokens").glob("*.json"))


def assert_no_secrets(result: Result) -> None:
    for secret in (RT, AT, SECRET):
        assert secret not in result.out
        assert secret not in result.err


def sent_tokens(route: respx.Route) -> list[tuple[str, str]]:
    forms = [dict(parse_qsl(call.request.content.decode())) for call in route.calls]
    return [(f["token"], f["token_type_hint"]) for f in forms]


# --- logout ----------------------------------------------------------------------------------


def test_logout_revokes_refresh_then_access_token_and_forgets(tmp_path: Path) -> None:
    signed_in(tmp_path)
    with respx.mock(assert_all_called=True) as mock:
        mock.get(DISCOVERY).respond(json=doc(revocation_endpoint=REVOKE))
        revoke = mock.post(REVOKE).respond(200)
        result = invoke(tmp_path, "logout", "--profile", "p")
    assert result.code == ExitCode.OK, result.err
    assert sent_tokens(revoke) == [(RT, "refresh_token"), (AT, "access_token")]
    assert "Refresh token: revoked at the server." in result.err
    assert "Access token (openid): revoked at the server." in result.err
    assert "forgotten locally" in result.err
    assert token_files(tmp_path) == []
    assert_no_secrets(result)


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(503), httpx.ConnectError("connection refused")],
    ids=["http-503", "unreachable"],
)
def test_failed_revocation_still_forgets_and_exits_not_revoked(
    tmp_path: Path, failure: httpx.Response | Exception
) -> None:
    signed_in(tmp_path)
    with respx.mock() as mock:
        mock.get(DISCOVERY).respond(json=doc(revocation_endpoint=REVOKE))
        route = mock.post(REVOKE)
        if isinstance(failure, httpx.Response):
            route.mock(return_value=failure)
        else:
            route.mock(side_effect=failure)
        result = invoke(tmp_path, "logout", "--profile", "p")
    assert result.code == ExitCode.NOT_REVOKED == 11
    assert "Refresh token: NOT revoked" in result.err
    assert "Access token (openid): NOT revoked" in result.err
    assert "stays valid at the server" in result.err
    assert token_files(tmp_path) == []  # forgotten locally all the same
    assert_no_secrets(result)


def test_logout_json_says_token_by_token(tmp_path: Path) -> None:
    signed_in(tmp_path)

    def answer(request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        return httpx.Response(200 if form["token_type_hint"] == "refresh_token" else 503)

    with respx.mock() as mock:
        mock.get(DISCOVERY).respond(json=doc(revocation_endpoint=REVOKE))
        mock.post(REVOKE).mock(side_effect=answer)
        result = invoke(tmp_path, "logout", "-p", "p", "--output", "json")
    assert result.code == ExitCode.NOT_REVOKED
    [body] = json.loads(result.out)
    assert body["profile"] == "p"
    assert body["signed_in"] is True
    assert body["revocation_endpoint"] == REVOKE
    assert [(t["token_type_hint"], t["status"]) for t in body["tokens"]] == [
        ("refresh_token", "revoked"),
        ("access_token", "failed"),
    ]
    assert body["forgotten_from"]
    assert_no_secrets(result)


def test_logout_without_a_revocation_endpoint_forgets_and_says_so(tmp_path: Path) -> None:
    signed_in(tmp_path, provider="github")  # presets: no discovery, no RFC 7009 endpoint
    with respx.mock():  # any request would fail the test
        result = invoke(tmp_path, "logout", "-p", "p")
    assert result.code == ExitCode.OK
    assert "not revoked: the server offers no revocation endpoint" in result.err
    assert "stays valid at the server" in result.err
    assert token_files(tmp_path) == []


def test_google_revokes_the_grant_and_its_invalid_token_answer_is_not_a_failure(
    tmp_path: Path,
) -> None:
    signed_in(tmp_path, provider="google", secret=True)
    gone = httpx.Response(
        400, json={"error": "invalid_token", "error_description": "Token expired or revoked"}
    )
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post("https://oauth2.googleapis.com/revoke").mock(
            side_effect=[httpx.Response(200, json={}), gone]
        )
        result = invoke(tmp_path, "logout", "-p", "p")
    assert result.code == ExitCode.OK, result.err
    assert [t for t, _ in sent_tokens(route)] == [RT, AT]
    assert "Refresh token: revoked at the server." in result.err
    assert "Access token (openid): revoked at the server." in result.err
    # Google's docs post the secret as a form field.
    first = dict(parse_qsl(route.calls[0].request.content.decode()))
    assert first["client_id"] == "cli"
    assert first["client_secret"] == SECRET
    assert_no_secrets(result)


def test_auth0_revokes_the_refresh_token_only(tmp_path: Path) -> None:
    signed_in(tmp_path, provider="auth0")
    with respx.mock(assert_all_called=True) as mock:
        mock.get(DISCOVERY).respond(json=doc(revocation_endpoint=REVOKE))
        route = mock.post(REVOKE).respond(200, text="OK")
        result = invoke(tmp_path, "logout", "-p", "p")
    assert result.code == ExitCode.OK, result.err
    assert sent_tokens(route) == [(RT, "refresh_token")]
    assert "does not revoke this kind of token" in result.err


def test_logout_all_exits_with_the_worst_outcome(tmp_path: Path) -> None:
    signed_in(tmp_path)
    assert invoke(tmp_path, "create-profile", "--name", "q", "--client-id", "c").code == 0
    with respx.mock() as mock:
        mock.get(DISCOVERY).respond(json=doc(revocation_endpoint=REVOKE))
        mock.post(REVOKE).respond(500)
        result = invoke(tmp_path, "logout", "--all")
    assert result.code == ExitCode.NOT_REVOKED
    assert "Profile 'q': not signed in." in result.err


# --- status ----------------------------------------------------------------------------------


def test_status_of_a_confidential_profile_asks_the_server(tmp_path: Path) -> None:
    signed_in(tmp_path, secret=True)

    def answer(request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        # The access token was revoked at the server; the refresh token is still good.
        return httpx.Response(200, json={"active": form["token"] == RT})

    with respx.mock(assert_all_called=True) as mock:
        mock.get(DISCOVERY).respond(json=doc(introspection_endpoint=INTROSPECT))
        route = mock.post(INTROSPECT).mock(side_effect=answer)
        result = invoke(tmp_path, "status")
        data = json.loads(invoke(tmp_path, "status", "-o", "json").out)
    assert result.code == ExitCode.OK, result.err
    basic = base64.b64encode(f"cli:{SECRET}".encode()).decode()
    assert route.calls[0].request.headers["Authorization"] == f"Basic {basic}"
    assert (
        "Access token: not active at the server (revoked or expired) "
        "[source: the server (introspection)]" in result.out
    )
    assert (
        "Refresh token: active at the server, renews silently "
        "[source: the server (introspection)]" in result.out
    )
    [entry] = data
    assert entry["access_token_active"] is False
    assert entry["access_token_source"] == "introspection"
    assert entry["refresh_token_active"] is True
    assert entry["signed_in"] is True
    assert_no_secrets(result)


def test_status_of_a_public_profile_stays_local_and_offline(tmp_path: Path) -> None:
    signed_in(tmp_path)
    with respx.mock():  # a request would fail the test
        result = invoke(tmp_path, "status")
    assert result.code == ExitCode.OK, result.err
    assert "expires in" in result.out
    assert "[source: local expiry]" in result.out
    assert "Refresh token: yes, renews silently [source: local expiry: not checked]" in result.out
    assert "because introspection needs client authentication" in result.out
    assert_no_secrets(result)


@pytest.mark.parametrize(
    ("args", "introspection", "why"),
    [
        (("--offline",), httpx.Response(200, json={"active": False}), "--offline"),
        ((), httpx.Response(503), "introspection failed"),
    ],
    ids=["offline", "introspection-503"],
)
def test_status_of_a_confidential_profile_falls_back_to_local(
    tmp_path: Path, args: tuple[str, ...], introspection: httpx.Response, why: str
) -> None:
    signed_in(tmp_path, secret=True)
    with respx.mock(assert_all_called=False) as mock:
        mock.get(DISCOVERY).respond(json=doc(introspection_endpoint=INTROSPECT))
        route = mock.post(INTROSPECT).mock(return_value=introspection)
        result = invoke(tmp_path, "status", *args)
    assert result.code == ExitCode.OK, result.err
    assert route.called == (not args)  # --offline asks nothing
    assert "Signed in as" in result.out
    assert "[source: local expiry]" in result.out
    assert why in result.out
    assert_no_secrets(result)


# --- the profile named positionally (issue 12 §3) -------------------------------------------


def test_logout_takes_the_profile_positionally(tmp_path: Path) -> None:
    signed_in(tmp_path)
    assert invoke(tmp_path, "create-profile", "--name", "other", "--client-id", "c").code == 0
    with respx.mock(assert_all_called=True) as mock:
        mock.get(DISCOVERY).respond(json=doc(revocation_endpoint=REVOKE))
        revoke = mock.post(REVOKE).respond(200)
        result = invoke(tmp_path, "logout", "p")
    assert result.code == ExitCode.OK, result.err
    assert sent_tokens(revoke) == [(RT, "refresh_token"), (AT, "access_token")]
    assert "Profile 'p':" in result.err
    assert token_files(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("p", "--profile", "other"), "'p' and --profile 'other' differ"),
        (("p", "--all"), "either a profile name or --all"),
    ],
    ids=["two-names", "name-and-all"],
)
def test_logout_refuses_two_answers_to_which_profile(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    signed_in(tmp_path)
    with respx.mock(assert_all_called=False) as mock:
        revoke = mock.post(REVOKE).respond(200)
        result = invoke(tmp_path, "logout", *args)
    assert result.code == ExitCode.USAGE
    assert said in result.err
    assert result.err.count("\n") == 1  # one sentence
    assert not revoke.called
    assert len(token_files(tmp_path)) == 1


def test_logout_with_the_same_name_twice_is_fine(tmp_path: Path) -> None:
    signed_in(tmp_path)
    with respx.mock(assert_all_called=True) as mock:
        mock.get(DISCOVERY).respond(json=doc())
        result = invoke(tmp_path, "logout", "p", "-p", "p")
    assert result.code == ExitCode.OK, result.err
    assert token_files(tmp_path) == []


def test_status_takes_the_profile_positionally(tmp_path: Path) -> None:
    signed_in(tmp_path)
    assert invoke(tmp_path, "create-profile", "--name", "other", "--client-id", "c").code == 0
    data = json.loads(invoke(tmp_path, "status", "p", "--offline", "-o", "json").out)
    assert [s["profile"] for s in data] == ["p"]
    data = json.loads(invoke(tmp_path, "status", "other", "--offline", "-o", "json").out)
    assert [s["profile"] for s in data] == ["other"]
    refused = invoke(tmp_path, "status", "p", "--profile", "other", "--offline")
    assert refused.code == ExitCode.USAGE
    assert "'p' and --profile 'other' differ" in refused.err
    assert refused.out == ""

"""get-token's three flows in-process: --flow, the profile's default, the automatic choice and its
one line, the client secret's sources (never argv), and the cache kept per kind of token. The
provider is an unreachable OIDC server played by respx; the browser follows the redirect to the
real loopback listener."""

from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import respx
from tests.unit.cli.clienv import invoke

ISSUER = "https://id.example.com"
DISCOVERY = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/authorize",
    "token_endpoint": f"{ISSUER}/token",
    "device_authorization_endpoint": f"{ISSUER}/device",
    "code_challenge_methods_supported": ["S256"],
    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
}


@pytest.fixture
def provider() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()  # the loopback listener is real
        mock.get(f"{ISSUER}/.well-known/openid-configuration").respond(json=DISCOVERY)
        yield mock


def form_of(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def profile(home: Path, *extra: str, stdin: str = "") -> None:
    created = invoke(
        home, "create-profile", "--name", "p", "--provider", "oidc", "--issuer", ISSUER,
        "--client-id", "cli", *extra, stdin=stdin,
    )
    assert created.code == 0, created.err


@pytest.mark.parametrize(
    ("option", "stored"),
    [
        ("device-code", "device-code"),
        ("interactive-browser", "interactive-browser"),
        ("client-credentials", "client-credentials"),
        ("auto", None),
        (None, None),
    ],
)
def test_create_profile_default_flow(
    tmp_path: Path, option: str | None, stored: str | None
) -> None:
    profile(tmp_path, *(("--default-flow", option) if option else ()))
    table = tomllib.loads((tmp_path / "config" / "profiles.toml").read_text())["profiles"]["p"]
    assert table.get("default_flow") == stored
    shown = json.loads(invoke(tmp_path, "show-profile", "p", "-o", "json").out)
    assert shown["default_flow"] == (stored or "auto")


def test_update_profile_default_flow_back_to_auto(tmp_path: Path) -> None:
    profile(tmp_path, "--default-flow", "client-credentials")
    assert invoke(tmp_path, "update-profile", "--name", "p", "--default-flow", "auto").code == 0
    table = tomllib.loads((tmp_path / "config" / "profiles.toml").read_text())["profiles"]["p"]
    assert "default_flow" not in table


# --- client credentials ----------------------------------------------------------------------


def cc_token(provider: respx.MockRouter, lifetime: int = 3600) -> respx.Route:
    counter = iter(range(1, 100))
    return provider.post(f"{ISSUER}/token").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={"access_token": f"client-token-{next(counter)}", "token_type": "Bearer",
                  "expires_in": lifetime},
        )
    )


def test_client_credentials_with_the_stored_secret_then_from_the_cache(
    tmp_path: Path, provider: respx.MockRouter
) -> None:
    profile(tmp_path, "--default-flow", "client-credentials", "--client-secret-stdin",
            "--scope", "api:read", stdin="stored-secret\n")
    route = cc_token(provider)
    first = invoke(tmp_path, "get-token", "p")
    assert first.code == 0, first.err
    assert first.out == "client-token-1\n"
    assert first.err == ""  # no person, nothing to say
    (call,) = route.calls
    assert form_of(call.request) == {"grant_type": "client_credentials", "scope": "api:read",
                                     "client_id": "cli"}
    assert call.request.headers["authorization"].startswith("Basic ")
    again = invoke(tmp_path, "get-token", "p", "--flow", "client-credentials")
    assert again.out == "client-token-1\n"
    assert len(route.calls) == 1
    # The cached fast path answers a person's tokens only: this profile is not in its index.
    index = json.loads((tmp_path / "config" / ".profiles-index.json").read_text())
    assert "p" not in index["profiles"]


def test_client_credentials_ask_again_when_expired(
    tmp_path: Path, provider: respx.MockRouter
) -> None:
    profile(tmp_path)
    route = cc_token(provider, lifetime=30)  # within a minute of expiry: not reused
    env = {"DEVICEFLOW_CLIENT_SECRET": "from-env"}
    one = invoke(tmp_path, "get-token", "--flow", "client-credentials", "p", **env)
    two = invoke(tmp_path, "get-token", "--flow", "client-credentials", "p", **env)
    assert (one.out, two.out) == ("client-token-1\n", "client-token-2\n")
    assert all(
        "refresh_token" not in form_of(call.request) for call in route.calls
    )


def test_client_secret_from_stdin_beats_the_environment(
    tmp_path: Path, provider: respx.MockRouter
) -> None:
    profile(tmp_path)
    route = provider.post(f"{ISSUER}/token").respond(
        json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600}
    )
    result = invoke(tmp_path, "get-token", "--flow", "client-credentials", "--client-secret-stdin",
                    "p", stdin="piped-secret\n", DEVICEFLOW_CLIENT_SECRET="env-secret")
    assert result.code == 0, result.err
    auth = route.calls[0].request.headers["authorization"]
    assert auth == httpx.BasicAuth("cli", "piped-secret")._auth_header


def test_client_credentials_without_a_secret_is_refused_before_any_request(
    tmp_path: Path, provider: respx.MockRouter
) -> None:
    profile(tmp_path)
    route = cc_token(provider)
    result = invoke(tmp_path, "get-token", "--flow", "client-credentials", "p")
    assert result.code == 3
    assert "DEVICEFLOW_CLIENT_SECRET" in result.err
    assert route.calls == []


def test_the_secret_is_never_an_option(tmp_path: Path) -> None:
    profile(tmp_path)
    result = invoke(tmp_path, "get-token", "--client-secret", "oops", "p")
    assert result.code == 2


def test_a_persons_cached_token_never_answers_client_credentials(
    tmp_path: Path, provider: respx.MockRouter
) -> None:
    profile(tmp_path, "--default-flow", "device-code")
    provider.post(f"{ISSUER}/device").respond(json={
        "device_code": "dc", "user_code": "BCDF-GHJK", "verification_uri": f"{ISSUER}/device",
        "expires_in": 600, "interval": 0,
    })
    route = provider.post(f"{ISSUER}/token")
    route.side_effect = lambda request: httpx.Response(200, json={
        "access_token": f"{form_of(request)['grant_type']}-token", "token_type": "Bearer",
        "expires_in": 3600, **({"refresh_token": "rt"} if "device" in request.content.decode()
                                else {}),
    })
    person = invoke(tmp_path, "get-token", "p")
    assert person.code == 0, person.err
    assert person.out == "urn:ietf:params:oauth:grant-type:device_code-token\n"
    client = invoke(tmp_path, "get-token", "--flow", "client-credentials", "p",
                    DEVICEFLOW_CLIENT_SECRET="s")
    assert client.out == "client_credentials-token\n"
    # And the person's token is still the person's.
    assert invoke(tmp_path, "get-token", "p").out == person.out


# --- the automatic choice and the browser ------------------------------------------------------


def test_the_automatic_choice_is_said_in_one_line_when_a_sign_in_starts(
    tmp_path: Path, provider: respx.MockRouter
) -> None:
    profile(tmp_path)
    provider.post(f"{ISSUER}/device").respond(json={
        "device_code": "dc", "user_code": "BCDF-GHJK", "verification_uri": f"{ISSUER}/device",
        "expires_in": 600, "interval": 0,
    })
    provider.post(f"{ISSUER}/token").respond(json={"access_token": "at", "expires_in": 3600})
    # An SSH session: the device code, whatever the display says.
    result = invoke(tmp_path, "get-token", "p", DISPLAY=":0", SSH_CONNECTION="1 2 3 4")
    assert result.code == 0, result.err
    first = result.err.splitlines()[0]
    assert first == (
        "Signing in with the device-code flow: this is an SSH session "
        "(--flow interactive-browser to change)."
    )
    # A cached answer says nothing.
    assert invoke(tmp_path, "get-token", "p", SSH_CONNECTION="1 2 3 4").err == ""


def follow_redirect(opened: list[str], done: threading.Event) -> object:
    def browser(url: str) -> bool:
        opened.append(url)
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        page = httpx.get(
            query["redirect_uri"] + "?" + urlencode({"code": "the-code", "state": query["state"]})
        )
        assert page.status_code == 200
        done.set()
        return True

    return browser


def test_interactive_browser_prints_the_url_and_caches_like_the_device_flow(
    tmp_path: Path, provider: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile(tmp_path, "--default-flow", "interactive-browser")
    opened: list[str] = []
    done = threading.Event()
    monkeypatch.setattr("webbrowser.open", follow_redirect(opened, done))
    monkeypatch.setenv("BROWSER", "the-test")  # else no browser is tried without a display
    token = provider.post(f"{ISSUER}/token")
    token.side_effect = lambda request: httpx.Response(200, json={
        "access_token": "at-" + form_of(request)["grant_type"], "token_type": "Bearer",
        "expires_in": 30, "refresh_token": "rt",
    })
    result = invoke(tmp_path, "get-token", "p")
    assert result.code == 0, result.err
    assert done.wait(30)
    assert result.out == "at-authorization_code\n"
    (url,) = opened
    assert url.startswith(f"{ISSUER}/authorize?")
    assert f"    {url}" in result.err.splitlines()  # printed too, for when no browser opens
    assert "Authentication successful." in result.err
    assert "the-code" not in result.err
    form = form_of(token.calls[0].request)
    assert form["grant_type"] == "authorization_code"
    assert len(form["code_verifier"]) == 43
    # Expired within the minute: refreshed silently, no browser.
    again = invoke(tmp_path, "get-token", "p")
    assert again.out == "at-refresh_token\n"
    assert len(opened) == 1


def test_google_browser_sign_in_needs_the_secret(tmp_path: Path) -> None:
    created = invoke(tmp_path, "create-profile", "--name", "g", "--provider", "google",
                     "--client-id", "123.apps.googleusercontent.com")
    assert created.code == 0, created.err
    result = invoke(tmp_path, "get-token", "--flow", "interactive-browser", "g")
    assert result.code == 3
    assert result.err.strip().endswith("--client-secret-stdin.")
    assert "Google needs the client secret" in result.err


def test_logout_forgets_the_clients_own_tokens_too(
    tmp_path: Path, provider: respx.MockRouter
) -> None:
    profile(tmp_path)
    cc_token(provider)
    env = {"DEVICEFLOW_CLIENT_SECRET": "s"}
    assert invoke(tmp_path, "get-token", "--flow", "client-credentials", "p", **env).code == 0
    assert list((tmp_path / "data" / "tokens").glob("p.*.json"))
    result = invoke(tmp_path, "logout", "p", **env)
    assert result.code == 0, result.err
    assert not list((tmp_path / "data" / "tokens").glob("p.*.json"))

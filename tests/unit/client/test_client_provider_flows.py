"""The browser and client-credentials flows against the presets, with the providers' documented
responses (they cannot be reached from here: httpx.MockTransport plays them). The browser is a
thread that follows the redirect to the real loopback listener, as the provider would send it.

Evidence for each response body is the provider's page cited in providers.py; the ID tokens are
stand-ins carrying the nonce the sign-in sent (the documented ones are truncated samples).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from deviceflow.client.errors import InvalidGrantError, ServerResponseError
from deviceflow.client.profiles import FlowKind, Profile
from deviceflow.client.providers import ProviderKind
from deviceflow.client.sync import DeviceFlowClient


def fake_jwt(claims: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@dataclass
class Provider:
    """The provider's side: which URL the browser was sent to, what the token endpoint got."""

    token_body: Callable[[dict[str, str]], tuple[int, dict[str, str], bytes]]
    discovery: dict[str, object] | None = None
    iss: str | None = None  # sent in the redirect (RFC 9207)
    authorize_urls: list[str] = field(default_factory=list)
    token_requests: list[httpx.Request] = field(default_factory=list)
    nonce: list[str] = field(default_factory=list)
    followed: threading.Event = field(default_factory=threading.Event)

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/.well-known/openid-configuration"):
                if self.discovery is None:
                    return httpx.Response(404)
                return httpx.Response(200, json=self.discovery)
            self.token_requests.append(request)
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            status, headers, body = self.token_body(form)
            return httpx.Response(status, headers=headers, content=body)

        return httpx.MockTransport(handle)

    def browser(self, url: str) -> bool:
        """The person signs in and the provider redirects with a code (and maybe iss)."""
        self.authorize_urls.append(url)
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        if "nonce" in query:
            self.nonce.append(query["nonce"])
        answer = {"code": "M.C507_BAY.2.U.code", "state": query["state"]}
        if self.iss is not None:
            answer["iss"] = self.iss
        # The listener binds 127.0.0.1 whatever host name the redirect URI uses (Entra's
        # "localhost" resolves there too).
        target = query["redirect_uri"].replace("//localhost:", "//127.0.0.1:")
        page = httpx.get(f"{target}?{urlencode(answer)}")
        assert page.status_code == 200, page.text
        self.followed.set()
        return True


def json_body(document: dict[str, object]) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(document).encode()


def client(profile: Profile, provider: Provider, secret: str | None = None) -> DeviceFlowClient:
    return DeviceFlowClient(
        profile,
        client_secret=secret,
        http=httpx.Client(transport=provider.transport()),
        open_browser=provider.browser,
    )


def authorize_query(provider: Provider) -> dict[str, str]:
    (url,) = provider.authorize_urls
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def token_form(provider: Provider, index: int = -1) -> dict[str, str]:
    request = provider.token_requests[index]
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


# --- the browser flow --------------------------------------------------------------------------


def test_entra_browser_sign_in_localhost_redirect_and_offline_access() -> None:
    provider = Provider(
        lambda form: json_body(
            {
                # "Microsoft identity platform and OAuth 2.0 authorization code flow",
                # "Successful response" (redeem a code).
                "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsIng1dCI6Ik5HVEZ2ZEstZnl0aEV1Q",
                "token_type": "Bearer",
                "expires_in": 3599,
                "scope": "https%3A%2F%2Fgraph.microsoft.com%2Fmail.read",
                "refresh_token": "AwABAAAAvPM1KaPlrEqdFSBzjqfTGAMxZGUTdM0t4B4",
                "id_token": fake_jwt({"nonce": provider.nonce[0], "name": "Megan Bowen"}),
            }
        )
    )
    profile = Profile("work", ProviderKind.ENTRA, "00000000-aaaa", tenant_id="contoso.com",
                      scopes=("openid", "https://graph.microsoft.com/Mail.Read"))
    with client(profile, provider) as entra:
        token = entra.get_token(flow=FlowKind.INTERACTIVE_BROWSER)
    assert token.refresh_token == "AwABAAAAvPM1KaPlrEqdFSBzjqfTGAMxZGUTdM0t4B4"
    (url,) = provider.authorize_urls
    assert url.startswith("https://login.microsoftonline.com/contoso.com/oauth2/v2.0/authorize?")
    query = authorize_query(provider)
    assert query["scope"] == "openid https://graph.microsoft.com/Mail.Read offline_access"
    redirect = urlsplit(query["redirect_uri"])
    assert (redirect.scheme, redirect.hostname, redirect.path) == ("http", "localhost", "")
    assert query["code_challenge_method"] == "S256"
    form = token_form(provider)
    assert str(provider.token_requests[0].url) == (
        "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token"
    )
    assert form["grant_type"] == "authorization_code"
    assert form["redirect_uri"] == query["redirect_uri"]
    assert "client_secret" not in form  # a public client


def test_google_desktop_app_sends_its_not_secret_secret() -> None:
    provider = Provider(
        lambda form: json_body(
            {
                # "OAuth 2.0 for iOS & Desktop Apps", step 5, the JSON response.
                "access_token": "1/fFAGRNJru1FTz70BzhT3Zg",
                "expires_in": 3920,
                "token_type": "Bearer",
                "scope": "openid https://www.googleapis.com/auth/userinfo.email",
                "refresh_token": "1//xEoDL4iW3cxlI7yDbSRFYNG01kVKM2C-259HOF2aQbI",
                "id_token": fake_jwt({"nonce": provider.nonce[0], "email": "a@example.com"}),
            }
        )
    )
    profile = Profile("g", ProviderKind.GOOGLE, "123-abc.apps.googleusercontent.com",
                      has_client_secret=True)
    with client(profile, provider, secret="GOCSPX-not-secret") as google:
        token = google.get_token(flow="interactive-browser")
    assert token.access_token == "1/fFAGRNJru1FTz70BzhT3Zg"
    assert provider.authorize_urls[0].startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    assert authorize_query(provider)["redirect_uri"].startswith("http://127.0.0.1:")
    assert str(provider.token_requests[0].url) == "https://oauth2.googleapis.com/token"
    form = token_form(provider)
    assert form["client_secret"] == "GOCSPX-not-secret"  # client_secret_post, as documented
    assert form["code_verifier"]


@pytest.mark.parametrize(
    "body",
    [
        # "Authorizing OAuth apps", web flow step 2: the default (form) response...
        (200, {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
         b"access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo%2Cgist"
         b"&token_type=bearer"),
        # ...and the one for Accept: application/json.
        json_body({"access_token": "gho_16C7e42F292c6912E7710c838347Ae178B4a",
                   "scope": "repo,gist", "token_type": "bearer"}),
    ],
    ids=["form", "json"],
)
def test_github_web_flow(body: tuple[int, dict[str, str], bytes]) -> None:
    provider = Provider(lambda form: body)
    profile = Profile("gh", ProviderKind.GITHUB, "Iv1.abc123", scopes=("repo", "gist"))
    with client(profile, provider, secret="gh-secret") as github:
        token = github.get_token(flow="interactive-browser")
    assert token.access_token == "gho_16C7e42F292c6912E7710c838347Ae178B4a"
    assert token.scope == ("repo", "gist")  # comma separated at GitHub
    assert token.token_type == "Bearer"
    assert provider.authorize_urls[0].startswith("https://github.com/login/oauth/authorize?")
    query = authorize_query(provider)
    assert "nonce" not in query  # no OpenID Connect at GitHub
    assert query["redirect_uri"].endswith("/callback")
    request = provider.token_requests[0]
    assert request.headers["accept"] == "application/json"
    assert token_form(provider)["client_secret"] == "gh-secret"


def test_github_bad_verification_code_is_invalid_grant() -> None:
    # "Troubleshooting OAuth app access token request errors": HTTP 200 with an error.
    provider = Provider(lambda form: json_body({
        "error": "bad_verification_code",
        "error_description": "The code passed is incorrect or expired.",
        "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code",
    }))
    profile = Profile("gh", ProviderKind.GITHUB, "Iv1.abc123")
    with client(profile, provider, secret="s") as github, pytest.raises(InvalidGrantError):
        github.get_token(flow="interactive-browser")


KEYCLOAK = "https://keycloak.example.com/realms/myrealm"
KEYCLOAK_DISCOVERY = {
    # The fields of Keycloak's realm discovery document the flow reads.
    "issuer": KEYCLOAK,
    "authorization_endpoint": f"{KEYCLOAK}/protocol/openid-connect/auth",
    "token_endpoint": f"{KEYCLOAK}/protocol/openid-connect/token",
    "device_authorization_endpoint": f"{KEYCLOAK}/protocol/openid-connect/auth/device",
    "code_challenge_methods_supported": ["plain", "S256"],
    "authorization_response_iss_parameter_supported": True,
    "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic",
                                              "client_secret_post"],
}


def keycloak_tokens(provider: Provider) -> tuple[int, dict[str, str], bytes]:
    return json_body({
        "access_token": "eyJhbGciOiJSUzI1NiIsInR5cCIgOiAiSldUIn0.kc",
        "expires_in": 300,
        "refresh_expires_in": 1800,
        "refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCIgOiAiSldUIn0.rt",
        "token_type": "Bearer",
        "id_token": fake_jwt({"nonce": provider.nonce[0], "preferred_username": "alice"}),
        "not-before-policy": 0,
        "session_state": "4d1f1b7e-2b2c-4c35-9b3c-0e6f3c4c8a11",
        "scope": "openid profile email",
    })


def test_keycloak_checks_iss_because_it_advertises_it() -> None:
    provider = Provider(lambda form: keycloak_tokens(provider), KEYCLOAK_DISCOVERY, iss=KEYCLOAK)
    profile = Profile("kc", ProviderKind.KEYCLOAK, "cli", KEYCLOAK)
    with client(profile, provider) as keycloak:
        token = keycloak.get_token(flow="interactive-browser")
    assert token.refresh_token == "eyJhbGciOiJIUzI1NiIsInR5cCIgOiAiSldUIn0.rt"
    assert provider.authorize_urls[0].startswith(f"{KEYCLOAK}/protocol/openid-connect/auth?")


def test_keycloak_redirect_without_iss_is_refused_at_the_listener() -> None:
    # The advertised iss is missing: the listener shows the failure and the flow stops.
    provider = Provider(lambda form: keycloak_tokens(provider), KEYCLOAK_DISCOVERY, iss=None)
    refused: list[int] = []
    done = threading.Event()

    def browser(url: str) -> bool:
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        page = httpx.get(f"{query['redirect_uri']}?" + urlencode(
            {"code": "c", "state": query["state"]}))
        refused.append(page.status_code)
        done.set()
        return True

    profile = Profile("kc", ProviderKind.KEYCLOAK, "cli", KEYCLOAK)
    with DeviceFlowClient(profile, http=httpx.Client(transport=provider.transport()),
                          open_browser=browser) as keycloak, pytest.raises(
        ServerResponseError, match="no 'iss'"
    ):
        keycloak.get_token(flow="interactive-browser")
    assert done.wait(30)
    assert refused == [400]
    assert provider.token_requests == []


# --- client credentials ------------------------------------------------------------------------


def test_entra_client_credentials_default_scope_and_no_offline_access() -> None:
    provider = Provider(lambda form: json_body({
        # "Microsoft identity platform and the OAuth 2.0 client credentials flow",
        # "Successful response".
        "token_type": "Bearer",
        "expires_in": 3599,
        "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsIng1dCI6Ik1uQ19WWmNBVGZNNXBP",
    }))
    profile = Profile("daemon", ProviderKind.ENTRA, "11111111-bbbb", tenant_id="contoso.com",
                      scopes=("https://graph.microsoft.com/.default",), has_client_secret=True)
    with client(profile, provider, secret="qWgdYAmab0YSkuL1qKv5bPX") as entra:
        token = entra.get_token(flow=FlowKind.CLIENT_CREDENTIALS)
    assert token.refresh_token is None
    form = token_form(provider)
    assert form == {
        "client_id": "11111111-bbbb",
        "client_secret": "qWgdYAmab0YSkuL1qKv5bPX",
        "grant_type": "client_credentials",
        "scope": "https://graph.microsoft.com/.default",
    }


def test_auth0_client_credentials_sends_the_audience() -> None:
    issuer = "https://example.eu.auth0.com/"
    provider = Provider(
        lambda form: json_body({
            # Auth0, "Call Your API Using the Client Credentials Flow", the response.
            "access_token": "eyJz93a...k4laUWw", "token_type": "Bearer", "expires_in": 86400,
        }),
        {"issuer": issuer, "token_endpoint": f"{issuer}oauth/token",
         "authorization_endpoint": f"{issuer}authorize",
         "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]},
    )
    profile = Profile("m2m", ProviderKind.AUTH0, "auth0-m2m", issuer,
                      audience="https://api.example.com", has_client_secret=True)
    with client(profile, provider, secret="s3cr3t") as auth0:
        token = auth0.get_token(flow="client-credentials")
    assert token.expires_at is not None
    form = token_form(provider)
    assert form["audience"] == "https://api.example.com"
    assert "scope" not in form  # no provider defaults (openid...) for a client's own token
    assert provider.token_requests[0].headers["authorization"].startswith("Basic ")


def test_okta_client_credentials_asks_again_when_the_token_expires() -> None:
    issuer = "https://example.okta.com/oauth2/default"
    calls: list[int] = []

    def token(form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        calls.append(1)
        # Okta, "Implement the Client Credentials flow", the response (expires_in shortened
        # to 30 s so the next request finds it within a minute of expiry).
        return json_body({"token_type": "Bearer", "expires_in": 30,
                          "access_token": f"eyJraWQiOiJ.{len(calls)}", "scope": "customScope"})

    provider = Provider(token, {"issuer": issuer, "token_endpoint": f"{issuer}/v1/token"})
    profile = Profile("svc", ProviderKind.OKTA, "0oa1", issuer, scopes=("customScope",))
    with client(profile, provider, secret="okta-secret") as okta:
        first = okta.get_token(flow="client-credentials")
        second = okta.get_token(flow="client-credentials")
    assert (first.access_token, second.access_token) == ("eyJraWQiOiJ.1", "eyJraWQiOiJ.2")
    assert [token_form(provider, i)["grant_type"] for i in (0, 1)] == ["client_credentials"] * 2
    assert all("refresh_token" not in token_form(provider, i) for i in (0, 1))


def test_the_async_client_runs_the_browser_flow_too() -> None:
    import asyncio

    from deviceflow.client.aio import AsyncDeviceFlowClient

    provider = Provider(lambda form: keycloak_tokens(provider), KEYCLOAK_DISCOVERY, iss=KEYCLOAK)
    profile = Profile("kc", ProviderKind.KEYCLOAK, "cli", KEYCLOAK)

    async def main() -> str:
        async with AsyncDeviceFlowClient(
            profile, http=httpx.AsyncClient(transport=provider.transport()),
            open_browser=provider.browser,
        ) as keycloak:
            token = await keycloak.get_token(flow="interactive-browser")
            return token.access_token

    assert asyncio.run(main()) == "eyJhbGciOiJSUzI1NiIsInR5cCIgOiAiSldUIn0.kc"
    assert provider.followed.is_set()

"""Provider quirks against recorded responses (respx), shaped as each provider's docs show.

Entra: "Microsoft identity platform and the OAuth 2.0 device authorization grant flow".
Google: "OAuth 2.0 for TV and Limited-Input Device Applications".
GitHub: "Authorizing OAuth apps", section "Device flow".
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from deviceflow.client.errors import AccessDeniedError
from deviceflow.client.flow import ShowCode
from deviceflow.client.providers import ProviderKind
from deviceflow.client.sync import DeviceFlowClient
from deviceflow.client.tokens import DeviceCode

ENTRA = "https://login.microsoftonline.com/contoso.onmicrosoft.com"


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        yield router


def make(
    provider: ProviderKind, client_id: str, **kwargs: object
) -> tuple[DeviceFlowClient, list[DeviceCode], list[float]]:
    shown: list[DeviceCode] = []
    slept: list[float] = []
    client = DeviceFlowClient(
        client_id=client_id,
        provider=provider,
        on_code=shown.append,
        sleep=slept.append,
        **kwargs,  # type: ignore[arg-type]
    )
    return client, shown, slept


def test_entra(mock: respx.MockRouter) -> None:
    device = mock.post(f"{ENTRA}/oauth2/v2.0/devicecode").respond(
        200,
        json={
            "user_code": "FQK5HW3UF",
            "device_code": "GAQABAAEAAAAm-06blBE1TpVMil8KPQ41...",
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": 900,
            "interval": 5,
            "message": "To sign in, use a web browser to open the page "
            "https://microsoft.com/devicelogin and enter the code FQK5HW3UF to authenticate.",
        },
    )
    token = mock.post(f"{ENTRA}/oauth2/v2.0/token").mock(
        side_effect=[
            httpx.Response(
                400,
                json={
                    "error": "authorization_pending",
                    "error_description": "AADSTS70016: OAuth 2.0 device flow error. "
                    "Authorization is pending. Continue polling.",
                    "error_codes": [70016],
                },
            ),
            httpx.Response(
                200,
                json={
                    "token_type": "Bearer",
                    "scope": "User.Read profile openid email",
                    "expires_in": 3599,
                    "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsIng1dCI6Ik5HVEZ2ZEst...",
                    "refresh_token": "AwABAAAAvPM1KaPlrEqdFSBzjqfTGAMxZGUTdM0t4B4...",
                    "id_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJhdWQiOiIyZDRkMTFh...",
                },
            ),
        ]
    )
    client, shown, slept = make(
        ProviderKind.ENTRA,
        "00000000-0000-0000-0000-000000000001",
        tenant_id="contoso.onmicrosoft.com",
        scopes=["https://graph.microsoft.com/User.Read"],
    )
    result = client.get_token()
    sent = form(device.calls[0].request)
    # offline_access is added so Entra returns a refresh token.
    assert sent["scope"] == "https://graph.microsoft.com/User.Read offline_access"
    assert shown[0].message is not None
    assert "FQK5HW3UF" in shown[0].message
    assert shown[0].verification_uri == "https://microsoft.com/devicelogin"
    assert result.refresh_token is not None
    assert result.refresh_token.startswith("AwAB")
    assert result.scope == ("User.Read", "profile", "openid", "email")
    assert token.call_count == 2
    assert slept[0] >= 5


def test_entra_declined(mock: respx.MockRouter) -> None:
    mock.post(f"{ENTRA}/oauth2/v2.0/devicecode").respond(
        200,
        json={
            "user_code": "A",
            "device_code": "d",
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": "900",
            "interval": "5",
        },  # v1.0-style strings
    )
    mock.post(f"{ENTRA}/oauth2/v2.0/token").respond(
        400, json={"error": "authorization_declined", "error_description": "AADSTS70000: ..."}
    )
    client, _shown, _slept = make(ProviderKind.ENTRA, "c", tenant_id="contoso.onmicrosoft.com")
    with pytest.raises(AccessDeniedError):
        client.get_token()


def test_google(mock: respx.MockRouter) -> None:
    device = mock.post("https://oauth2.googleapis.com/device/code").respond(
        200,
        json={
            "device_code": "4/4-GMMhmHCXhWEzkobqIHGG_EnNYYsAkukHspeYUk9E8",
            "user_code": "GQVQ-JKEC",
            "verification_url": "https://www.google.com/device",
            "expires_in": 1800,
            "interval": 5,
        },
    )
    token = mock.post("https://oauth2.googleapis.com/token").mock(
        side_effect=[
            # Google: 428 for authorization_pending, 403 for slow_down.
            httpx.Response(
                428,
                json={
                    "error": "authorization_pending",
                    "error_description": "Precondition Required",
                },
            ),
            httpx.Response(403, json={"error": "slow_down", "error_description": "Forbidden"}),
            httpx.Response(
                200,
                json={
                    "access_token": "ya29.a0AfH6SMC...",
                    "expires_in": 3920,
                    "scope": "openid https://www.googleapis.com/auth/userinfo.email",
                    "token_type": "Bearer",
                    "refresh_token": "1//xEoDL4iW3cxlI7yDbSRFYNG01kVKM2C-259HOF2aQbI",
                    "id_token": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMDAifQ.sig",
                },
            ),
        ]
    )
    client, shown, slept = make(
        ProviderKind.GOOGLE, "123.apps.googleusercontent.com", client_secret="GOCSPX-secret"
    )
    result = client.get_token()
    assert shown[0].verification_uri == "https://www.google.com/device"  # from verification_url
    assert shown[0].qr_target == "https://www.google.com/device"
    poll = form(token.calls[0].request)
    assert poll["client_secret"] == "GOCSPX-secret"  # client_secret_post, as Google's docs show
    assert form(device.calls[0].request)["scope"] == "openid email profile"
    assert slept[2] >= 10  # +5 s after slow_down
    assert result.id_token is not None


def test_github(mock: respx.MockRouter) -> None:
    device = mock.post("https://github.com/login/device/code").respond(
        200,
        json={
            "device_code": "3584d83530557fdd1f46af8289938c8ef79f9dc5",
            "user_code": "WDJB-MJHT",
            "verification_uri": "https://github.com/login/device",
            "expires_in": 900,
            "interval": 5,
        },
    )
    token = mock.post("https://github.com/login/oauth/access_token").mock(
        side_effect=[
            # GitHub answers its device-flow errors with HTTP 200.
            httpx.Response(
                200,
                json={
                    "error": "authorization_pending",
                    "error_description": "The authorization request is still pending.",
                    "error_uri": "https://docs.github.com",
                },
            ),
            httpx.Response(
                200,
                json={
                    "error": "slow_down",
                    "error_description": "Too many requests",
                    "interval": 10,
                },
            ),
            httpx.Response(
                200,
                json={
                    "access_token": "gho_16C7e42F292c6912E7710c838347Ae178B4a",
                    "token_type": "bearer",
                    "scope": "repo,gist",
                },
            ),
        ]
    )
    client, _shown, slept = make(
        ProviderKind.GITHUB, "Iv1.b507a08c87ecfe98", scopes=["repo", "gist"]
    )
    result = client.get_token()
    assert device.calls[0].request.headers["Accept"] == "application/json"
    assert token.calls[0].request.headers["Accept"] == "application/json"
    assert result.token_type == "Bearer"
    assert result.scope == ("repo", "gist")
    assert result.expires_at is None  # GitHub OAuth app tokens don't expire
    assert result.id_token is None
    assert slept[2] >= 10  # the interval GitHub sent with slow_down (and at least +5)
    assert "openid" not in form(device.calls[0].request)["scope"]


def test_github_form_encoded_answer_is_understood(mock: respx.MockRouter) -> None:
    # Without Accept: application/json GitHub answers form-encoded; we parse that too.
    mock.post("https://github.com/login/device/code").respond(
        200,
        content=b"device_code=d&user_code=WDJB-MJHT&verification_uri=https%3A%2F%2Fgithub.com%2Flogin%2Fdevice&expires_in=900&interval=5",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    mock.post("https://github.com/login/oauth/access_token").respond(
        200,
        content=b"access_token=gho_x&scope=repo&token_type=bearer",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    client, shown, _slept = make(ProviderKind.GITHUB, "Iv1.x")
    assert client.get_token().access_token == "gho_x"
    assert shown[0].user_code == "WDJB-MJHT"


def test_auth0_audience(mock: respx.MockRouter) -> None:
    issuer = "https://example.eu.auth0.com/"
    mock.get(f"{issuer}.well-known/openid-configuration").respond(
        200,
        json={
            "issuer": issuer,
            "token_endpoint": f"{issuer}oauth/token",
            "device_authorization_endpoint": f"{issuer}oauth/device/code",
            "revocation_endpoint": f"{issuer}oauth/revoke",
        },
    )
    device = mock.post(f"{issuer}oauth/device/code").respond(
        200,
        json={
            "device_code": "Ag_EE...",
            "user_code": "QTZL-MCBW",
            "verification_uri": "https://example.eu.auth0.com/activate",
            "verification_uri_complete": "https://example.eu.auth0.com/activate?user_code=QTZL-MCBW",
            "expires_in": 900,
            "interval": 5,
        },
    )
    mock.post(f"{issuer}oauth/token").respond(
        200, json={"access_token": "eyJz93a...k4laUWw", "expires_in": 86400, "token_type": "Bearer"}
    )
    events: list[object] = []
    client = DeviceFlowClient(
        client_id="abc",
        provider="auth0",
        issuer="https://example.eu.auth0.com",
        audience="https://api.example.com",
        on_event=events.append,
        sleep=lambda s: None,
    )
    client.get_token()
    assert form(device.calls[0].request)["audience"] == "https://api.example.com"
    assert any(isinstance(e, ShowCode) for e in events)

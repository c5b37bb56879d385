"""The public API of deviceflow.client (pinned, as encode/httpx tests/test_exported_members.py
does), its laziness, and the async client."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest
import respx

import deviceflow.client as client_pkg
from deviceflow.client import (
    AsyncDeviceFlowClient,
    DeviceFlowClient,
    LoginFinished,
    ShowCode,
    TokenSet,
)

EXPECTED = {
    "AccessDeniedError",
    "ActivitySource",
    "Account",
    "AsyncDeviceFlowClient",
    "BearerAuth",
    "CacheCorruptError",
    "CacheError",
    "CancelledByUserError",
    "ConfigurationError",
    "DeviceCode",
    "DeviceFlowClient",
    "DeviceFlowError",
    "DiscoveryError",
    "Event",
    "ExpiredTokenError",
    "HttpRequest",
    "HttpResponse",
    "InsecureIssuerError",
    "IssuerMismatchError",
    "KeyringUnavailableError",
    "LoginFinished",
    "LogoutResult",
    "NetworkError",
    "OAuthError",
    "Profile",
    "ProfileNotFoundError",
    "ProfileStore",
    "ProviderKind",
    "RevocationStatus",
    "SendRequest",
    "ServerMetadata",
    "ServerResponseError",
    "ShowCode",
    "SignInRequiredError",
    "Sleep",
    "SleepReason",
    "StoreKind",
    "TimedOutError",
    "TokenActivity",
    "TokenCache",
    "TokenRequest",
    "TokenRevocation",
    "TokenSet",
    "TokenStatus",
    "TransportFailure",
    "decode_jwt_unverified",
    "device_flow",
    "discover",
    "introspect",
    "refresh",
    "revoke",
}

ISSUER = "http://127.0.0.1:8000"
DISCOVERY = {
    "issuer": ISSUER,
    "token_endpoint": f"{ISSUER}/token",
    "device_authorization_endpoint": f"{ISSUER}/device_authorization",
}
CODE = {
    "device_code": "d",
    "user_code": "BCDF-GHJK",
    "verification_uri": f"{ISSUER}/device",
    "expires_in": 600,
    "interval": 1,
}


def test_all_is_pinned_and_every_name_resolves() -> None:
    assert set(client_pkg.__all__) == EXPECTED
    assert client_pkg.__all__ == sorted(client_pkg._EXPORTS)
    for name in client_pkg.__all__:
        assert getattr(client_pkg, name) is not None, name


def test_importing_the_package_does_not_import_httpx_or_keyring() -> None:
    code = (
        "import sys, deviceflow.client, deviceflow.client.cache, deviceflow.client.profiles;"
        "print(sorted(m for m in ('httpx', 'keyring', 'rich', 'segno') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_token_repr_hides_secrets() -> None:
    token = TokenSet(access_token="at-secret", refresh_token="rt-secret", id_token="id-secret")
    assert "secret" not in repr(token)


def test_sync_client_keeps_tokens_in_memory_without_a_cache() -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.get(f"{ISSUER}/.well-known/openid-configuration").respond(200, json=DISCOVERY)
        mock.post(f"{ISSUER}/device_authorization").respond(200, json=CODE)
        token_route = mock.post(f"{ISSUER}/token").respond(
            200, json={"access_token": "at", "token_type": "Bearer", "expires_in": 3600}
        )
        with DeviceFlowClient(client_id="c", issuer=ISSUER, sleep=lambda s: None) as client:
            assert client.access_token == "at"
            assert client.access_token == "at"  # second call: from memory, no request
        assert token_route.call_count == 1


def test_bearer_auth_sends_the_token() -> None:
    with respx.mock() as mock:
        mock.get(f"{ISSUER}/.well-known/openid-configuration").respond(200, json=DISCOVERY)
        mock.post(f"{ISSUER}/device_authorization").respond(200, json=CODE)
        mock.post(f"{ISSUER}/token").respond(
            200, json={"access_token": "at-9", "token_type": "Bearer", "expires_in": 3600}
        )
        api = mock.get("https://api.example.com/me").respond(200, json={"ok": True})
        client = DeviceFlowClient(client_id="c", issuer=ISSUER, sleep=lambda s: None)
        with httpx.Client(auth=client.auth()) as http:
            assert http.get("https://api.example.com/me").json() == {"ok": True}
        assert api.calls[0].request.headers["Authorization"] == "Bearer at-9"


def test_async_client_event_stream() -> None:
    async def main() -> list[object]:
        with respx.mock() as mock:
            mock.get(f"{ISSUER}/.well-known/openid-configuration").respond(200, json=DISCOVERY)
            mock.post(f"{ISSUER}/device_authorization").respond(200, json=CODE)
            mock.post(f"{ISSUER}/token").mock(
                side_effect=[
                    httpx.Response(400, json={"error": "authorization_pending"}),
                    httpx.Response(
                        200,
                        json={"access_token": "at-async", "token_type": "Bearer", "expires_in": 60},
                    ),
                ]
            )

            async def no_sleep(seconds: float) -> None:
                return None

            seen: list[object] = []
            async with AsyncDeviceFlowClient(client_id="c", issuer=ISSUER, sleep=no_sleep) as c:
                async for event in c.login_events():
                    seen.append(event)
            return seen

    seen = asyncio.run(main())
    assert isinstance(seen[0], ShowCode)
    assert isinstance(seen[-1], LoginFinished)
    assert seen[-1].token.access_token == "at-async"


def test_async_client_callback_and_errors() -> None:
    from deviceflow.client import AccessDeniedError

    async def main() -> list[str]:
        codes: list[str] = []

        async def on_code(code: object) -> None:
            codes.append(code.user_code)  # type: ignore[attr-defined]

        with respx.mock() as mock:
            mock.get(f"{ISSUER}/.well-known/openid-configuration").respond(200, json=DISCOVERY)
            mock.post(f"{ISSUER}/device_authorization").respond(200, json=CODE)
            mock.post(f"{ISSUER}/token").respond(400, json={"error": "access_denied"})

            async def no_sleep(seconds: float) -> None:
                return None

            client = AsyncDeviceFlowClient(
                client_id="c", issuer=ISSUER, on_code=on_code, sleep=no_sleep
            )
            with pytest.raises(AccessDeniedError):
                await client.get_token()
            await client.aclose()
        return codes

    assert asyncio.run(main()) == ["BCDF-GHJK"]


def test_bearer_auth_renews_and_retries_once_on_401() -> None:
    with respx.mock() as mock:
        mock.get(f"{ISSUER}/.well-known/openid-configuration").respond(200, json=DISCOVERY)
        mock.post(f"{ISSUER}/device_authorization").respond(200, json=CODE)
        mock.post(f"{ISSUER}/token").mock(
            side_effect=[
                httpx.Response(
                    200,
                    json={
                        "access_token": "at-old",
                        "token_type": "Bearer",
                        "expires_in": 3600,
                        "refresh_token": "rt-1",
                    },
                ),
                httpx.Response(
                    200,
                    json={
                        "access_token": "at-new",
                        "token_type": "Bearer",
                        "expires_in": 3600,
                        "refresh_token": "rt-2",
                    },
                ),
            ]
        )
        api = mock.get("https://api.example.com/me").mock(
            side_effect=[httpx.Response(401), httpx.Response(200, json={"ok": True})]
        )
        client = DeviceFlowClient(client_id="c", issuer=ISSUER, sleep=lambda s: None)
        with httpx.Client(auth=client.auth()) as http:
            assert http.get("https://api.example.com/me").status_code == 200
        sent = [call.request.headers["Authorization"] for call in api.calls]
        assert sent == ["Bearer at-old", "Bearer at-new"]


def test_both_drivers_run_the_same_logout_and_status_flows() -> None:
    """One flow, two drivers: sign in, ask status, log out (RFC 7009, refresh token first)."""
    from tests.unit.client.flowkit import FakeClock

    from deviceflow.client import RevocationStatus

    doc = dict(DISCOVERY, revocation_endpoint=f"{ISSUER}/revoke")
    tokens = {
        "access_token": "at-1", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-1"
    }

    def mocked(mock: respx.MockRouter) -> respx.Route:
        mock.get(f"{ISSUER}/.well-known/openid-configuration").respond(200, json=doc)
        mock.post(f"{ISSUER}/device_authorization").respond(200, json=CODE)
        mock.post(f"{ISSUER}/token").respond(200, json=tokens)
        return mock.post(f"{ISSUER}/revoke").respond(200)

    def sync_run() -> tuple[object, object, list[bytes]]:
        with respx.mock() as mock:
            revoke = mocked(mock)
            with DeviceFlowClient(
                client_id="c", issuer=ISSUER, sleep=lambda s: None, clock=FakeClock()
            ) as client:
                client.get_token()
                status = client.token_status()
                result = client.logout()
            return status, result, [c.request.content for c in revoke.calls]

    async def async_run() -> tuple[object, object, list[bytes]]:
        async def no_sleep(seconds: float) -> None:
            return None

        with respx.mock() as mock:
            revoke = mocked(mock)
            client = AsyncDeviceFlowClient(
                client_id="c", issuer=ISSUER, sleep=no_sleep, clock=FakeClock()
            )
            await client.get_token()
            status = await client.token_status()
            result = await client.logout()
            await client.aclose()
            return status, result, [c.request.content for c in revoke.calls]

    sync_result = sync_run()
    assert asyncio.run(async_run()) == sync_result
    status, result, sent = sync_result
    assert status is not None
    assert result.removed == ("memory",)  # type: ignore[attr-defined]
    assert [r.status for r in result.revocations] == [RevocationStatus.REVOKED] * 2  # type: ignore[attr-defined]
    assert [b"token=rt-1" in body for body in sent] == [True, False]

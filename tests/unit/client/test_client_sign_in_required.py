"""``sign_in=False``: the cache or a silent refresh, never the device flow (the kubectl and docker
credential helpers use it when nobody can enter a code)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from tests.unit.client.flowkit import FakeClock, Script, js

from deviceflow.client.aio import AsyncDeviceFlowClient
from deviceflow.client.cache import CacheRecord, StoreKind, TokenCache
from deviceflow.client.errors import SignInRequiredError
from deviceflow.client.flow import ClientAuth, ServerMetadata, obtain_token, run_to_completion
from deviceflow.client.profiles import Profile
from deviceflow.client.sync import DeviceFlowClient
from deviceflow.client.tokens import TokenSet

META = ServerMetadata(
    issuer="https://id.example.com",
    token_endpoint="https://id.example.com/token",
    device_authorization_endpoint="https://id.example.com/device_authorization",
)
AUTH = ClientAuth("my-device")
DISCOVERY = {
    "issuer": "https://id.example.com",
    "token_endpoint": "https://id.example.com/token",
    "device_authorization_endpoint": "https://id.example.com/device_authorization",
}
PROFILE = Profile(name="k", client_id="my-device", issuer="https://id.example.com").validate()


def test_a_refused_refresh_raises_instead_of_asking_for_a_device_code() -> None:
    script = Script(FakeClock(), [js(400, {"error": "invalid_grant"})])
    flow = obtain_token(META, AUTH, ("openid",), script.clock, refresh_token="rt", sign_in=False)
    with pytest.raises(SignInRequiredError):
        run_to_completion(flow, script)
    assert [r.url for r in script.requests] == ["https://id.example.com/token"]
    assert script.shown == []


def test_a_refresh_still_works_without_sign_in() -> None:
    body = {"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600}
    script = Script(FakeClock(), [js(200, body)])
    flow = obtain_token(META, AUTH, ("openid",), script.clock, refresh_token="rt", sign_in=False)
    token, fresh = run_to_completion(flow, script)
    assert (token.access_token, fresh) == ("at-2", False)


class Recorder:
    def __init__(self, refresh_status: int) -> None:
        self.paths: list[str] = []
        self.refresh_status = refresh_status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=DISCOVERY)
        if request.url.path == "/token" and self.refresh_status == 200:
            return httpx.Response(
                200, json={"access_token": "at-new", "token_type": "Bearer", "expires_in": 600}
            )
        if request.url.path == "/token":
            return httpx.Response(400, json={"error": "invalid_grant"})
        return httpx.Response(500, json={"error": "server_error"})


def cache_with(tmp_path: Path, refresh_token: str | None) -> TokenCache:
    cache = TokenCache(tmp_path, StoreKind.FILE)
    expired = TokenSet(access_token="at-old", expires_at=time.time() - 10, refresh_token=None)
    record = CacheRecord(PROFILE.cache_key, refresh_token=refresh_token).with_token(
        PROFILE.effective_scopes, None, expired, now=time.time() - 3600
    )
    cache.save(record)
    return cache


@pytest.mark.parametrize(
    ("refresh_token", "expected_paths"),
    [
        (None, []),  # no refresh token: refused before any request, discovery included
        ("rt", ["/token"]),  # the refused refresh is the last request
    ],
    ids=["no-refresh-token", "refresh-refused"],
)
def test_sync_client_never_requests_a_device_code(
    tmp_path: Path, refresh_token: str | None, expected_paths: list[str]
) -> None:
    recorder = Recorder(400)
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    client = DeviceFlowClient(PROFILE, cache=cache_with(tmp_path, refresh_token), http=http)
    with pytest.raises(SignInRequiredError):
        client.get_token(sign_in=False)
    assert "/device_authorization" not in recorder.paths
    assert [p for p in recorder.paths if not p.startswith("/.well-known/")] == expected_paths
    if refresh_token is None:
        assert recorder.paths == []


def test_sync_client_refreshes_silently_without_sign_in(tmp_path: Path) -> None:
    recorder = Recorder(200)
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    client = DeviceFlowClient(PROFILE, cache=cache_with(tmp_path, "rt"), http=http)
    assert client.get_token(sign_in=False).access_token == "at-new"


def test_async_client_refuses_before_any_request(tmp_path: Path) -> None:
    recorder = Recorder(400)

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as http:
            client = AsyncDeviceFlowClient(PROFILE, cache=cache_with(tmp_path, None), http=http)
            await client.get_token(sign_in=False)

    with pytest.raises(SignInRequiredError):
        asyncio.run(main())
    assert recorder.paths == []

"""Signing-key rotation seen over HTTP (docs/operator.md, "Signing keys"): the new key is in
JWKS before it signs, tokens signed before a rotation keep verifying (JWKS, /userinfo) until the
old key retires, a resource server that cached JWKS refetches on the new ``kid``, and a running
app picks a rotation up by itself. On the memory store and SQLite, each with the app's clock."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet
from tests.integration.web.test_endpoints import (  # noqa: F401 - fixtures
    ISSUER,
    Clock,
    Server,
    _import_each_key_once,
    signing_key,
    sqlite_template,
    store,
)
from tests.support.limits import generous_limits

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.models import DEVICE_CODE_GRANT
from deviceflow.protocol.tokens import ACCESS_TOKEN_TYP
from deviceflow.server.keys import TokenVerificationError
from deviceflow.server.rotation import Rotation, rotate_signing_key
from deviceflow.server.secretbox import SecretBox
from deviceflow.storage.interface import Store

pytestmark = pytest.mark.anyio

LIFETIME = 3600  # access and ID tokens (the defaults)
RELOAD = 60.0  # signing_key_reload_interval (the default)


@pytest.fixture
def kek() -> SecretBox:
    return SecretBox.generate()


Serve = Callable[..., contextlib.AbstractAsyncContextManager[Server]]


@pytest.fixture
def serve(store: Store, kek: SecretBox) -> Serve:  # noqa: F811 - the fixture imported above
    @contextlib.asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Server]:
        values: dict[str, Any] = {"issuer": ISSUER, "redis": None, **generous_limits(), **overrides}
        clock = Clock()
        app = create_app_with(values, store, kek, clock)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url=ISSUER
        ) as http:
            server = Server(app, http, clock, store)
            await server.add_client("tv", grants=(DEVICE_CODE_GRANT, "refresh_token"))
            yield server

    return start


def create_app_with(values: dict[str, Any], active: Store, kek: SecretBox, clock: Clock) -> Any:
    from deviceflow.server.web.app import create_app

    return create_app(ServerSettings(**values), store=active, kek=kek, clock=clock)


async def rotate(server: Server, kek: SecretBox, *, reload: float = RELOAD) -> Rotation:
    return await rotate_signing_key(server.store, kek, "RS256", now=server.clock(),
                                    activation_delay=2 * reload, token_lifetime=LIFETIME)


def header_kid(token: str) -> str:
    head = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"])


class ResourceServer:
    """A resource server the way RFC 7517 users build one with joserfc: it caches the JWKS and
    refetches it once when a token names a ``kid`` it does not know."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.keys: KeySet | None = None
        self.fetches = 0

    async def fetch(self) -> None:
        response = await self.http.get("/jwks.json")
        assert response.status_code == 200
        self.keys = KeySet.import_key_set(response.json())
        self.fetches += 1

    async def verify(self, token: str) -> dict[str, Any]:
        if self.keys is None:
            await self.fetch()
        assert self.keys is not None
        try:
            decoded = jwt.decode(token, self.keys, algorithms=["RS256", "ES256"])
        except InvalidKeyIdError:
            await self.fetch()
            decoded = jwt.decode(token, self.keys, algorithms=["RS256", "ES256"])
        return dict(decoded.claims)


async def jwks_kids(server: Server) -> list[str]:
    response = await server.http.get("/jwks.json")
    return [k["kid"] for k in response.json()["keys"]]


async def userinfo(server: Server, access_token: str) -> httpx.Response:
    return await server.http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})


async def test_a_rotation_publishes_first_signs_later_and_retires_the_old_key_last(
    serve: Serve, kek: SecretBox,
) -> None:
    async with serve() as server:
        keyring = server.service.keyring
        before = await server.login("tv", scope="openid profile")
        old_kid = header_kid(before["access_token"])
        assert header_kid(before["id_token"]) == old_kid
        resource = ResourceServer(server.http)
        await resource.verify(before["access_token"])  # caches the JWKS of one key

        rotation = await rotate(server, kek)
        assert rotation.previous.kid == old_kid
        new_kid = rotation.successor.kid
        await keyring.reload(server.store)  # the reload tick every worker runs
        # Published at once, before any token carries it; the old key still signs.
        assert await jwks_kids(server) == [old_kid, new_kid]
        response = await server.http.get("/jwks.json")
        assert response.headers["cache-control"] == "public, max-age=60"
        during = await server.login("tv", scope="openid profile")
        assert header_kid(during["access_token"]) == old_kid

        server.clock.advance(2 * RELOAD)  # the new key signs from here
        after = await server.login("tv", scope="openid profile")
        assert header_kid(after["access_token"]) == new_kid
        assert header_kid(after["id_token"]) == new_kid
        # The old key's tokens still verify, at the server and at a resource server.
        assert (await userinfo(server, before["access_token"])).status_code == 200
        assert (await userinfo(server, after["access_token"])).status_code == 200
        assert keyring.verify(before["access_token"], ACCESS_TOKEN_TYP)["sub"]
        fetches = resource.fetches
        claims = await resource.verify(after["access_token"])  # unknown kid: refetch, verify
        assert claims["iss"] == ISSUER
        assert resource.fetches == fetches + 1
        await resource.verify(during["access_token"])  # the old key is in the fresh copy too
        assert resource.fetches == fetches + 1

        # Until its last token has expired, the old key stays published...
        assert rotation.previous.retire_after == server.clock() + LIFETIME
        server.clock.advance(LIFETIME - 1)
        assert await jwks_kids(server) == [old_kid, new_kid]
        assert keyring.verify(during["access_token"], ACCESS_TOKEN_TYP)
        # ...then it is retired: gone from JWKS, and its signature refused even by a keyring
        # that does not look at expiry.
        server.clock.advance(1)
        assert await jwks_kids(server) == [new_kid]
        with pytest.raises(TokenVerificationError):
            keyring.verify(during["access_token"], ACCESS_TOKEN_TYP)
        assert (await userinfo(server, during["access_token"])).status_code == 401
        await keyring.reload(server.store)  # a reload does not bring it back
        assert await jwks_kids(server) == [new_kid]
        assert keyring.verify(after["access_token"], ACCESS_TOKEN_TYP)


async def test_a_running_app_picks_up_a_rotation_within_its_reload_interval(
    serve: Serve, kek: SecretBox,
) -> None:
    async with serve(signing_key_reload_interval=0.05) as server:
        [old_kid] = await jwks_kids(server)
        rotation = await rotate(server, kek, reload=0.05)
        with anyio.fail_after(5):
            while len(await jwks_kids(server)) < 2:
                await anyio.sleep(0.02)
        assert await jwks_kids(server) == [old_kid, rotation.successor.kid]
        response = await server.http.get("/jwks.json")
        assert response.headers["cache-control"] == "public, max-age=0"

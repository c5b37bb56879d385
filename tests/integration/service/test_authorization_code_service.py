"""Authorization codes through the service on every store (memory, SQLite, PostgreSQL): of any
number of concurrent redemptions of one code exactly one gets tokens, and a code used again
ends the login it began (RFC 6749 §4.1.2), its refresh tokens and its access tokens."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
from tests.support.stores import Backend, open_backend

from deviceflow.protocol import pkce
from deviceflow.protocol.errors import InvalidGrantError, OAuthError
from deviceflow.protocol.models import (
    AUTHORIZATION_CODE_GRANT,
    REFRESH_TOKEN_GRANT,
    Client,
    ClientType,
    DevicePolicy,
    IssuedTokens,
    RequestOrigin,
    TokenPolicy,
    User,
)
from deviceflow.protocol.params import FormParams
from deviceflow.server.keys import load_keyring
from deviceflow.server.ratelimit import BruteForcePolicy, Limiter
from deviceflow.server.secretbox import SecretBox
from deviceflow.server.service import DeviceFlowService, ServicePolicy

pytestmark = pytest.mark.anyio

ISSUER = "https://auth.example.com/tenant"
REDIRECT = "http://127.0.0.1:49152/callback"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
ORIGIN = RequestOrigin("203.0.113.5", "pytest")
CONCURRENT = 12


@dataclass
class World:
    service: DeviceFlowService

    async def code(self) -> str:
        auth = self.service.authorization
        request = await auth.check([
            ("response_type", "code"), ("client_id", "cli"), ("redirect_uri", REDIRECT),
            ("scope", "openid offline_access"), ("state", "s1"),
            ("code_challenge", pkce.s256(VERIFIER)), ("code_challenge_method", "S256")])
        back = await auth.approve(request, "sub-alice", time.time() - 5, ORIGIN)
        query = parse_qs(urlsplit(back).query)
        assert query["state"] == ["s1"]
        assert query["iss"] == [ISSUER]
        return query["code"][0]

    async def redeem(self, code: str) -> IssuedTokens | OAuthError:
        return await self.service.tokens.token(FormParams({
            "grant_type": AUTHORIZATION_CODE_GRANT, "client_id": "cli", "code": code,
            "redirect_uri": REDIRECT, "code_verifier": VERIFIER}), None)

    async def refresh(self, token: str) -> IssuedTokens | OAuthError:
        try:
            return await self.service.tokens.token(FormParams({
                "grant_type": REFRESH_TOKEN_GRANT, "client_id": "cli",
                "refresh_token": token}), None)
        except OAuthError as exc:
            return exc


@pytest.fixture(params=[pytest.param("memory", id="memory"), pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with open_backend(request.param, tmp_path) as value:
        yield value


@pytest.fixture
async def world(backend: Backend) -> World:
    store = backend.store
    keyring = await load_keyring(store, SecretBox.generate())
    grants = (AUTHORIZATION_CODE_GRANT, REFRESH_TOKEN_GRANT)
    policy = ServicePolicy(device=DevicePolicy(verification_uri=ISSUER + "/device"),
                           token=TokenPolicy(issuer=ISSUER), grant_types=grants)
    service = DeviceFlowService(store, keyring, policy, Limiter(BruteForcePolicy()))
    async with store.unit_of_work() as uow:
        await uow.clients.add(Client("cli", "CLI", ClientType.PUBLIC, frozenset(grants),
                                     frozenset({"openid", "offline_access"}),
                                     redirect_uris=frozenset({"http://127.0.0.1/callback"})))
        await uow.users.add(User("sub-alice", "alice", "Alice", "$argon2id$unused"))
        await uow.commit()
    return World(service)


async def test_concurrent_redemptions_of_one_code_have_exactly_one_winner(world: World) -> None:
    code = await world.code()
    outcomes: list[IssuedTokens | OAuthError] = []

    async def one() -> None:
        outcomes.append(await world.redeem(code))

    async with anyio.create_task_group() as tg:
        for _ in range(CONCURRENT):
            tg.start_soon(one)
    winners = [o for o in outcomes if isinstance(o, IssuedTokens)]
    assert len(winners) == 1
    assert all(isinstance(o, InvalidGrantError) for o in outcomes if o is not winners[0])
    # A code redeemed more than once is a replay: what it issued is revoked (§4.1.2).
    assert winners[0].refresh_token is not None
    assert isinstance(await world.refresh(winners[0].refresh_token), InvalidGrantError)


async def test_a_replayed_code_revokes_the_refresh_and_access_tokens_it_issued(
    world: World,
) -> None:
    code = await world.code()
    issued = await world.redeem(code)
    assert isinstance(issued, IssuedTokens)
    assert issued.refresh_token is not None
    refreshed = await world.refresh(issued.refresh_token)
    assert isinstance(refreshed, IssuedTokens)
    assert refreshed.refresh_token is not None
    assert isinstance(await world.redeem(code), InvalidGrantError)
    assert isinstance(await world.refresh(refreshed.refresh_token), InvalidGrantError)
    with pytest.raises(OAuthError, match="revoked"):
        await world.service.tokens.userinfo(issued.access_token)

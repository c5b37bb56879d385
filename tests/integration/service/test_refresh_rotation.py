"""Refresh rotation that survives a lost response, the family's absolute lifetime, and replay of a
redeemed device code, through the service on every store (memory, SQLite, PostgreSQL).

RFC 9700 §4.14.2 rotation with a reuse grace window: presenting the immediately previous refresh
token again within the window, while its successor was never used, answers with fresh tokens
and invalidates that unused successor; any other reuse revokes the family. RFC 6749 §4.1.2:
a code used twice is refused and the tokens issued from it are revoked."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from tests.support.stores import Backend, open_backend

from deviceflow.protocol.errors import InvalidGrantError, OAuthError
from deviceflow.protocol.models import (
    DEVICE_CODE_GRANT,
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
from deviceflow.protocol.verification import Decision
from deviceflow.server.keys import load_keyring
from deviceflow.server.ratelimit import BruteForcePolicy, Limiter
from deviceflow.server.secretbox import SecretBox
from deviceflow.server.service import DeviceFlowService, ServicePolicy

pytestmark = pytest.mark.anyio

ISSUER = "https://auth.example.com"
ORIGIN = RequestOrigin("203.0.113.5", "pytest")
CONCURRENT = 10


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    backend: Backend
    service: DeviceFlowService
    clock: Clock
    keys: KeySet

    async def login(self, scope: str = "openid offline_access") -> IssuedTokens:
        """A whole device login: authorize, approve, poll once; the tokens it got."""
        tokens = self.service.tokens
        response = await tokens.device_authorization(
            FormParams({"client_id": "tv", "scope": scope}), None, ORIGIN)
        outcome = await self.service.verification.record_decision(
            response.user_code, Decision.APPROVE, "sub-alice", self.clock())
        assert outcome.value == "recorded"
        issued = await self.poll(response.device_code)
        assert isinstance(issued, IssuedTokens), issued
        self.device_code = response.device_code
        return issued

    async def poll(self, device_code: str) -> IssuedTokens | OAuthError:
        return await self.service.tokens.token(FormParams(
            {"client_id": "tv", "grant_type": DEVICE_CODE_GRANT, "device_code": device_code}),
            None)

    async def refresh(self, refresh_token: str | None) -> IssuedTokens | OAuthError:
        assert refresh_token is not None
        try:
            return await self.service.tokens.token(FormParams(
                {"client_id": "tv", "grant_type": REFRESH_TOKEN_GRANT,
                 "refresh_token": refresh_token}), None)
        except OAuthError as exc:
            return exc

    async def works(self, refresh_token: str | None) -> str:
        """Refresh with ``refresh_token``; the successor, failing the test if refused."""
        issued = await self.refresh(refresh_token)
        assert isinstance(issued, IssuedTokens), f"refused: {issued!r}"
        assert issued.refresh_token is not None
        return issued.refresh_token

    def claims(self, access_token: str) -> dict[str, Any]:
        return dict(jwt.decode(access_token, self.keys, algorithms=["RS256", "ES256"]).claims)


def refused(outcome: IssuedTokens | OAuthError) -> bool:
    return isinstance(outcome, InvalidGrantError)


async def make_world(backend: Backend, **token: Any) -> World:
    store, clock = backend.store, Clock()
    keyring = await load_keyring(store, SecretBox.generate())
    policy = ServicePolicy(
        device=DevicePolicy(verification_uri=ISSUER + "/device"),
        token=TokenPolicy(issuer=ISSUER, **token),
        grant_types=(DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT),
    )
    service = DeviceFlowService(store, keyring, policy, Limiter(BruteForcePolicy()),
                                clock=clock)
    async with store.unit_of_work() as uow:
        await uow.clients.add(Client("tv", "TV", ClientType.PUBLIC,
                                     frozenset({DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT}),
                                     frozenset({"openid", "profile", "offline_access"})))
        await uow.users.add(User("sub-alice", "alice", "Alice", "$argon2id$unused"))
        await uow.commit()
    keys = KeySet.import_key_set(keyring.jwks)  # type: ignore[arg-type]
    return World(backend, service, clock, keys)


@pytest.fixture(params=[pytest.param("memory", id="memory"), pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with open_backend(request.param, tmp_path) as value:
        yield value


@pytest.fixture
async def world(backend: Backend) -> World:
    return await make_world(backend)


# ------------------------------------------------------------------------ the lost response


async def test_lost_response_retry_within_grace_reissues_and_keeps_the_family(
    world: World,
) -> None:
    t0 = (await world.login()).refresh_token
    t1 = await world.works(t0)  # ... and this response never reached the device
    world.clock.now += 30
    retried = await world.refresh(t0)  # the device retries with the token it still holds
    assert isinstance(retried, IssuedTokens), f"refused: {retried!r}"
    t1_again = retried.refresh_token
    assert t1_again not in (None, t0, t1)
    assert refused(await world.refresh(t1))  # the unused successor is invalidated ...
    t2 = await world.works(t1_again)  # ... but the family lives: the new one works
    await world.works(t2)


async def test_concurrent_refreshes_of_one_token_leave_a_working_family(world: World) -> None:
    t0 = (await world.login()).refresh_token
    outcomes: list[IssuedTokens | OAuthError] = []

    async def one() -> None:
        outcomes.append(await world.refresh(t0))

    async with anyio.create_task_group() as tg:
        for _ in range(CONCURRENT):
            tg.start_soon(one)
    got = [o.refresh_token for o in outcomes if isinstance(o, IssuedTokens)]
    assert got, outcomes
    working = []
    for token in got:
        outcome = await world.refresh(token)
        if isinstance(outcome, IssuedTokens):
            working.append(outcome.refresh_token)
    assert len(working) == 1  # exactly one live successor, and the family was not revoked
    await world.works(await world.works(working[0]))


async def test_replay_after_the_grace_window_revokes_the_family(world: World) -> None:
    t0 = (await world.login()).refresh_token
    t1 = await world.works(t0)
    world.clock.now += 61
    assert refused(await world.refresh(t0))
    assert refused(await world.refresh(t1))  # revoked with its family


async def test_replay_after_the_successor_was_used_revokes_the_family(world: World) -> None:
    t0 = (await world.login()).refresh_token
    t1 = await world.works(t0)
    t2 = await world.works(t1)
    world.clock.now += 1
    assert refused(await world.refresh(t0))
    assert refused(await world.refresh(t2))


async def test_replay_of_the_replaced_successor_does_not_revoke(world: World) -> None:
    # T1 was invalidated by a grace reissue; presenting it is refused, nothing more.
    t0 = (await world.login()).refresh_token
    t1 = await world.works(t0)
    t1_again = (await world.works(t0))
    assert refused(await world.refresh(t1))
    await world.works(t1_again)


async def test_grace_zero_is_strict_rotation(backend: Backend) -> None:
    world = await make_world(backend, refresh_token_reuse_grace=0)
    t0 = (await world.login()).refresh_token
    t1 = await world.works(t0)
    assert refused(await world.refresh(t0))
    assert refused(await world.refresh(t1))


# --------------------------------------------------------------------- the absolute lifetime


async def test_family_ends_at_its_absolute_lifetime_even_with_a_fresh_token(
    backend: Backend,
) -> None:
    world = await make_world(backend, refresh_token_lifetime=1000,
                             refresh_token_absolute_lifetime=2500)
    token = (await world.login()).refresh_token
    for _ in range(2):
        world.clock.now += 900  # each refresh within the sliding lifetime
        token = await world.works(token)
    world.clock.now += 600  # 2400 s in: the successor may live only 100 s more
    token = await world.works(token)
    world.clock.now += 100
    assert refused(await world.refresh(token))


# ---------------------------------------------------------------- device code replay (§4.1.2)


async def test_replaying_a_redeemed_device_code_revokes_its_tokens(world: World) -> None:
    issued = await world.login()
    t1 = await world.works(issued.refresh_token)
    for _ in range(2):  # idempotent
        outcome = await world.poll(world.device_code)
        assert isinstance(outcome, InvalidGrantError)
    assert refused(await world.refresh(t1))


async def test_replaying_a_device_code_spares_other_logins(world: World) -> None:
    first = await world.login()
    replayed_code = world.device_code
    second = await world.login()
    assert isinstance(await world.poll(replayed_code), InvalidGrantError)
    assert refused(await world.refresh(first.refresh_token))
    await world.works(second.refresh_token)


# ------------------------------------------------------------------------------------- gty


async def test_access_tokens_carry_the_grant_that_began_the_login(world: World) -> None:
    issued = await world.login()
    assert world.claims(issued.access_token)["gty"] == DEVICE_CODE_GRANT
    refreshed = await world.refresh(issued.refresh_token)
    assert isinstance(refreshed, IssuedTokens)
    assert world.claims(refreshed.access_token)["gty"] == DEVICE_CODE_GRANT
    hasher = world.service.tokens.ctx.keyring.hasher
    assert refreshed.refresh_token is not None
    async with world.backend.store.unit_of_work(read_only=True) as uow:
        row = await uow.refresh_tokens.get(hasher.refresh_token(refreshed.refresh_token))
    assert row is not None
    assert dataclasses.asdict(row)["grant_type"] == DEVICE_CODE_GRANT


# ---------------------------------------------------------------- offline_access and the rule


@pytest.mark.parametrize(("scope", "expected"), [("openid offline_access", True),
                                                  ("openid profile", False)],
                         ids=["offline_access", "without"])
async def test_refresh_token_iff_offline_access(world: World, scope: str, expected: bool) -> None:
    assert ((await world.login(scope)).refresh_token is not None) is expected

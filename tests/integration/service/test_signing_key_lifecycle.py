"""Signing-key rotation on every store: concurrent rotations leave one newest key, the states
``keys list`` reports, and databases from before rotation (0.1's plaintext rows, issue 7's sealed
``signing_key:RS256``) keep their key active until rotated, then rotate like any other."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool
from tests.integration.web.test_secrets_at_rest import a_0_1_database, upgrade_to
from tests.support.stores import Backend, empty_database_url, open_backend

from deviceflow.protocol.audit import AuditActor, AuditEventType, AuditQuery
from deviceflow.protocol.tokens import ACCESS_TOKEN_TYP
from deviceflow.server import keys as keys_module
from deviceflow.server.keys import (
    HMAC_SECRET_NAME,
    SESSION_SECRET_NAME,
    SIGNING_KEY_PREFIX,
    KeyRing,
    KeyState,
    load_keyring,
)
from deviceflow.server.rotation import (
    RotationConflictError,
    list_signing_keys,
    rotate_signing_key,
)
from deviceflow.server.secretbox import SecretBox
from deviceflow.storage.interface import Store
from deviceflow.storage.sql import engine
from deviceflow.storage.sql.engine import create_store, upgrade

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
CLAIMS: dict[str, object] = {"iss": "https://a.example", "sub": "u1", "exp": 4_000_000_000}
DELAY, LIFETIME = 120.0, 3600.0


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with open_backend(request.param, tmp_path) as value:
        yield value


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with empty_database_url(request.param, tmp_path) as url:
        yield url


async def test_concurrent_rotations_leave_exactly_one_new_active_key(backend: Backend) -> None:
    kek = SecretBox.generate()
    first = await load_keyring(backend.store, kek, "ES256", clock=lambda: NOW)
    n = 6

    async with backend.worker_stores(n, pool_size=2) as stores:
        barrier = asyncio.Barrier(n)

        async def one(i: int, store: Store) -> bool:
            await barrier.wait()
            try:
                await rotate_signing_key(store, kek, "ES256", now=NOW + i,
                                         activation_delay=DELAY, token_lifetime=LIFETIME)
            except RotationConflictError:
                return False
            return True

        results = await asyncio.gather(*(one(i, s) for i, s in enumerate(stores)))
    won = results.count(True)
    assert won >= 1
    at = NOW + n + DELAY
    listing = await list_signing_keys(backend.store, kek, ("ES256",), now=at)
    assert len(listing) == won + 1  # a lost rotation left no key behind
    newest = [k for k in listing if k.record.signs_until is None]
    assert len(newest) == 1
    # One chain from the first key to the newest: each key signs until the next one starts
    # and is retired a token lifetime later.
    by_start = {k.record.active_from: k.record for k in listing}
    key = next(k.record for k in listing if k.record.kid == first.signer.key.kid)
    walked = [key.kid]
    while key.signs_until is not None:
        assert key.retire_after == key.signs_until + LIFETIME
        key = by_start[key.signs_until]
        walked.append(key.kid)
    assert sorted(walked) == sorted(k.record.kid for k in listing)
    assert key.kid == newest[0].record.kid
    assert [k.state for k in listing].count(KeyState.ACTIVE) == 1
    # Every key's private half opens under the KEK: the ring that loads them all signs with
    # the newest once it is active.
    ring = await load_keyring(backend.store, kek, "ES256", clock=lambda: at)
    assert ring.signer.key.kid == newest[0].record.kid
    # Each stored rotation is one audit row, written in its own transaction; a lost one none.
    async with backend.store.unit_of_work(read_only=True) as uow:
        rotated = await uow.audit_log.query(AuditQuery(events=frozenset(
            {AuditEventType.KEY_ROTATED})))
    assert len(rotated) == won
    assert {r.actor for r in rotated} == {AuditActor.OPERATOR}
    assert {r.detail.split(" ")[1] for r in rotated if r.detail} == {
        k.record.kid for k in listing if k.record.kid != first.signer.key.kid}


async def test_keys_list_states_follow_the_clock(backend: Backend) -> None:
    kek = SecretBox.generate()
    ring = await load_keyring(backend.store, kek, clock=lambda: NOW)
    old = str(ring.signer.key.kid)
    rotation = await rotate_signing_key(backend.store, kek, "RS256", now=NOW,
                                        activation_delay=DELAY, token_lifetime=LIFETIME)
    new = rotation.successor.kid

    async def states(at: float) -> dict[str, tuple[KeyState, float | None]]:
        listing = await list_signing_keys(backend.store, kek, ("RS256",), now=at)
        return {k.record.kid: (k.state, k.until) for k in listing}

    assert await states(NOW) == {old: (KeyState.ACTIVE, NOW + DELAY),
                                 new: (KeyState.PUBLISHED, NOW + DELAY)}
    assert await states(NOW + DELAY) == {old: (KeyState.RETIRING, NOW + DELAY + LIFETIME),
                                         new: (KeyState.ACTIVE, None)}
    assert await states(NOW + DELAY + LIFETIME) == {old: (KeyState.RETIRED, None),
                                                    new: (KeyState.ACTIVE, None)}


async def sealed_issue_7_database(url: str, kek: SecretBox) -> KeyRing:
    """Schema 0004 as issue 7's server left it: every secret sealed, one ``signing_key:RS256``
    and no lifecycle table. Returns the ring that server signed with."""
    await upgrade_to(url, "0004")
    key = keys_module.generate_key("RS256")
    rows = {HMAC_SECRET_NAME: b"h" * 32, SESSION_SECRET_NAME: b"s" * 32,
            SIGNING_KEY_PREFIX + "RS256": json.dumps(key.as_dict(private=True)).encode()}
    sql = engine._create_engine(url, poolclass=NullPool)
    try:
        async with sql.begin() as conn:
            for name, value in rows.items():
                await conn.execute(text(
                    "INSERT INTO server_secrets (name, value, encryption) "
                    "VALUES (:name, :value, 'aes-256-gcm')"),
                    {"name": name, "value": kek.seal(name, value)})
    finally:
        await sql.dispose()
    return KeyRing(b"h" * 32, b"s" * 32, {"RS256": key}, "RS256")


@pytest.mark.parametrize("layout", ["0.1-plaintext", "issue-7-sealed"])
async def test_a_database_from_before_rotation_keeps_its_key_until_rotated(
    db_url: str, layout: str
) -> None:
    kek = SecretBox.generate()
    if layout == "0.1-plaintext":
        old = await a_0_1_database(db_url)
    else:
        old = await sealed_issue_7_database(db_url, kek)
    token = old.signer.sign(CLAIMS, ACCESS_TOKEN_TYP)
    old_kid = str(old.signer.key.kid)
    await upgrade(db_url)
    store = create_store(db_url)
    try:
        ring = await load_keyring(store, kek, clock=lambda: NOW)
        assert ring.signer.key.kid == old_kid  # still the active key
        assert ring.verify(token, ACCESS_TOKEN_TYP) == CLAIMS
        [adopted] = await list_signing_keys(store, kek, ("RS256",), now=NOW)
        assert (adopted.record.kid, adopted.record.secret_name, adopted.state) == (
            old_kid, SIGNING_KEY_PREFIX + "RS256", KeyState.ACTIVE)

        rotation = await rotate_signing_key(store, kek, "RS256", now=NOW,
                                            activation_delay=DELAY, token_lifetime=LIFETIME)
        assert rotation.previous.kid == old_kid
        await ring.reload(store)
        assert [k["kid"] for k in ring.jwks["keys"]] == [  # type: ignore[attr-defined]
            old_kid, rotation.successor.kid]
        assert ring.verify(token, ACCESS_TOKEN_TYP) == CLAIMS  # signed before, verified after
        restarted = await load_keyring(store, kek, clock=lambda: NOW + DELAY)
        assert restarted.signer.key.kid == rotation.successor.kid
        assert restarted.verify(token, ACCESS_TOKEN_TYP) == CLAIMS
        retired = await load_keyring(store, kek, clock=lambda: NOW + DELAY + LIFETIME)
        assert [k["kid"] for k in retired.jwks["keys"]] == [  # type: ignore[attr-defined]
            rotation.successor.kid]
        async with store.engine.connect() as conn:
            encryptions = set((await conn.execute(
                text("SELECT encryption FROM server_secrets"))).scalars())
        assert encryptions == {"aes-256-gcm"}
    finally:
        await store.close()

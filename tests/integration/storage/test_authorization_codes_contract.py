"""The storage contract for the authorization code grant, on memory, SQLite and PostgreSQL:
clients' redirect URIs, and authorization codes whose single use is one compare-and-set, also
under real concurrency (RFC 6749 §4.1.2)."""

from __future__ import annotations

import dataclasses

import pytest
from tests.integration.storage.test_contract import committed, concurrently
from tests.support.stores import Backend

from deviceflow.protocol.models import (
    AuthorizationCode,
    Client,
    ClientChanges,
    ClientType,
    CodeStatus,
    RequestOrigin,
)
from deviceflow.storage.interface import AlreadyExistsError, UnitOfWork

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


def a_code(code_hash: str = "c" * 64, **changes: object) -> AuthorizationCode:
    code = AuthorizationCode(
        code_hash=code_hash, client_id="cli", user_id="u1",
        redirect_uri="http://127.0.0.1:53127/callback", redirect_uri_given=True,
        scope=("openid", "offline_access"),
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        nonce="n-0S6_WzA2Mj", auth_time=NOW - 30, created_at=NOW, expires_at=NOW + 60,
        origin=RequestOrigin("203.0.113.5", "Mozilla/5.0"),
    )
    return dataclasses.replace(code, **changes)  # type: ignore[arg-type]


async def test_client_redirect_uris_round_trip_and_update(backend: Backend) -> None:
    uris = frozenset({"https://app.example/cb", "http://127.0.0.1/callback"})
    client = Client("cli", "CLI", ClientType.PUBLIC, frozenset({"authorization_code"}),
                    frozenset({"openid"}), redirect_uris=uris)
    await committed(backend.store, lambda uow: uow.clients.add(client))
    async with backend.store.unit_of_work() as uow:
        assert await uow.clients.get("cli") == client
        assert await uow.clients.update("cli", ClientChanges(name="CLI 2"))
        assert (await uow.clients.get("cli")).redirect_uris == uris  # type: ignore[union-attr]
        assert await uow.clients.update("cli", ClientChanges(redirect_uris=frozenset()))
        assert (await uow.clients.get("cli")).redirect_uris == frozenset()  # type: ignore[union-attr]
        await uow.commit()


async def test_code_round_trip_with_and_without_optional_fields(backend: Backend) -> None:
    full = a_code()
    bare = a_code("d" * 64, code_challenge=None, nonce=None, redirect_uri_given=False)
    async with backend.store.unit_of_work() as uow:
        await uow.authorization_codes.add(full)
        await uow.authorization_codes.add(bare)
        await uow.commit()
    async with backend.store.unit_of_work(read_only=True) as uow:
        assert await uow.authorization_codes.get(full.code_hash) == full
        assert await uow.authorization_codes.get(bare.code_hash) == bare
        assert await uow.authorization_codes.get("e" * 64) is None


async def test_a_taken_code_hash_is_refused(backend: Backend) -> None:
    await committed(backend.store, lambda uow: uow.authorization_codes.add(a_code()))
    async with backend.store.unit_of_work() as uow:
        with pytest.raises(AlreadyExistsError):
            await uow.authorization_codes.add(a_code(client_id="other"))


async def test_redeem_is_single_use(backend: Backend) -> None:
    code = a_code()
    await committed(backend.store, lambda uow: uow.authorization_codes.add(code))
    async with backend.store.unit_of_work() as uow:
        assert await uow.authorization_codes.redeem(code.code_hash) is True
        assert await uow.authorization_codes.redeem(code.code_hash) is False
        assert await uow.authorization_codes.redeem("f" * 64) is False
        await uow.commit()
    async with backend.store.unit_of_work(read_only=True) as uow:
        stored = await uow.authorization_codes.get(code.code_hash)
    assert stored == dataclasses.replace(code, status=CodeStatus.REDEEMED)


async def test_concurrent_redemptions_of_one_code_have_exactly_one_winner(
    backend: Backend,
) -> None:
    code = a_code()
    await committed(backend.store, lambda uow: uow.authorization_codes.add(code))

    async def redeem(uow: UnitOfWork) -> bool:
        # As the token endpoint does: load, decide, then compare-and-set.
        loaded = await uow.authorization_codes.get(code.code_hash)
        assert loaded is not None
        return await uow.authorization_codes.redeem(code.code_hash)

    results = await concurrently(backend, redeem)
    assert results.count(True) == 1
    assert results.count(False) == len(results) - 1


async def test_purge_deletes_expired_codes_in_batches(backend: Backend) -> None:
    async with backend.store.unit_of_work() as uow:
        for i in range(5):
            await uow.authorization_codes.add(a_code(f"{i}" * 64, expires_at=NOW + i))
        await uow.commit()
    async with backend.store.unit_of_work() as uow:
        assert await uow.authorization_codes.purge(NOW + 3, 2) == 2
        assert await uow.authorization_codes.purge(NOW + 3, 10) == 1
        assert await uow.authorization_codes.purge(NOW + 3, 10) == 0
        await uow.commit()
    async with backend.store.unit_of_work(read_only=True) as uow:
        assert await uow.authorization_codes.get("3" * 64) is not None
        assert await uow.authorization_codes.get("0" * 64) is None

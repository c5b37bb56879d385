"""The storage contract of remembered consent (issue 11) on memory, SQLite and PostgreSQL: a grant
merges scopes in storage (concurrent grants keep the union), reads fold per client, and a
withdrawal is one step that exactly one of concurrent callers performs."""

from __future__ import annotations

import itertools

import pytest
from tests.integration.storage.test_contract import NOW, committed, concurrently
from tests.support.stores import Backend

from deviceflow.protocol.consent import Consent
from deviceflow.storage.interface import UnitOfWork

pytestmark = pytest.mark.anyio


async def test_grant_merges_and_keeps_first_times(backend: Backend) -> None:
    await committed(backend.store, lambda uow: uow.consents.grant("u1", "cli", ["openid"], NOW))
    await committed(backend.store, lambda uow: uow.consents.grant(
        "u1", "cli", ["openid", "profile"], NOW + 10))
    await committed(backend.store, lambda uow: uow.consents.grant("u1", "web", [], NOW + 20))
    await committed(backend.store, lambda uow: uow.consents.grant("u2", "cli", ["email"], NOW))
    async with backend.store.unit_of_work(read_only=True) as uow:
        assert await uow.consents.get("u1", "cli") == Consent(
            "u1", "cli", frozenset({"openid", "profile"}), NOW, NOW + 10)
        assert await uow.consents.get("u1", "other") is None
        assert await uow.consents.for_user("u1") == [
            Consent("u1", "cli", frozenset({"openid", "profile"}), NOW, NOW + 10),
            Consent("u1", "web", frozenset(), NOW + 20, NOW + 20),
        ]
        assert await uow.consents.for_user("nobody") == []


async def test_a_grant_rolled_back_is_not_remembered(sql_backend: Backend) -> None:
    async with sql_backend.store.unit_of_work() as uow:
        await uow.consents.grant("u1", "cli", ["openid"], NOW)
    async with sql_backend.store.unit_of_work(read_only=True) as uow:
        assert await uow.consents.get("u1", "cli") is None


async def test_concurrent_grants_keep_every_scope(backend: Backend) -> None:
    numbers = itertools.count()

    async def grant(uow: UnitOfWork) -> None:
        n = next(numbers)
        await uow.consents.grant("u1", "cli", ["openid", f"scope{n}"], NOW + n)

    await concurrently(backend, grant)
    async with backend.store.unit_of_work(read_only=True) as uow:
        consent = await uow.consents.get("u1", "cli")
    assert consent is not None
    granted = consent.scopes - {"openid"}
    assert "openid" in consent.scopes
    assert granted == {f"scope{n}" for n in range(len(granted))}
    assert len(granted) == next(numbers)  # every grant's scope survived


async def test_withdraw_is_done_once(backend: Backend) -> None:
    await committed(backend.store, lambda uow: uow.consents.grant("u1", "cli", ["a", "b"], NOW))
    await committed(backend.store, lambda uow: uow.consents.grant("u1", "web", ["a"], NOW))

    async def withdraw(uow: UnitOfWork) -> bool:
        return await uow.consents.withdraw("u1", "cli")

    results = await concurrently(backend, withdraw)
    assert results.count(True) == 1
    async with backend.store.unit_of_work(read_only=True) as uow:
        assert await uow.consents.get("u1", "cli") is None
        assert [c.client_id for c in await uow.consents.for_user("u1")] == ["web"]
    assert await committed(backend.store, withdraw) is False


async def test_forget_client_forgets_everyones_consent_to_it(backend: Backend) -> None:
    for user in ("u1", "u2"):
        await committed(backend.store, lambda uow, user=user: uow.consents.grant(  # type: ignore[misc]
            user, "cli", ["openid"], NOW))
    await committed(backend.store, lambda uow: uow.consents.grant("u1", "web", ["a"], NOW))
    assert await committed(backend.store, lambda uow: uow.consents.forget_client("cli")) == 2
    async with backend.store.unit_of_work(read_only=True) as uow:
        assert await uow.consents.get("u1", "cli") is None
        assert await uow.consents.get("u2", "cli") is None
        assert [c.client_id for c in await uow.consents.for_user("u1")] == ["web"]

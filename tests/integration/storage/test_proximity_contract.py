"""The storage contract of proximity (RFC 10027 §6.1) on memory, SQLite and PostgreSQL: the
device's network facts and the per-client device-flow rules round-trip, and the distinct-accounts
counter is one hit-then-test step under real concurrency."""

from __future__ import annotations

import dataclasses

import pytest
from tests.integration.storage.test_contract import (
    a_client,
    a_device,
    committed,
    concurrently,
)
from tests.support.stores import Backend

from deviceflow.protocol.models import ClientChanges
from deviceflow.protocol.proximity import NetworkFacts, ProximityPolicy
from deviceflow.storage.interface import UnitOfWork

pytestmark = pytest.mark.anyio

FACTS = NetworkFacts("2001:db8::1", "US", "United States", 4_200_000_001, "Ünïcode Org",
                     "Amazon AWS", local=False)


async def test_network_facts_round_trip(backend: Backend) -> None:
    with_facts = a_device(1, network=FACTS)
    local = a_device(2, network=NetworkFacts("2001:db8::1", local=True))
    without = a_device(3)

    async def add(uow: UnitOfWork) -> None:
        for record in (with_facts, local, without):
            await uow.device_authorizations.add(record)

    await committed(backend.store, add)
    async with backend.store.unit_of_work(read_only=True) as uow:
        for record in (with_facts, local, without):
            assert await uow.device_authorizations.get_by_device_code(
                record.device_code_hash) == record


async def test_client_rules_round_trip_and_update(backend: Backend) -> None:
    client = a_client(proximity_policy=ProximityPolicy.ENFORCE,
                      device_networks=("10.0.0.0/8", "2001:db8::/32"),
                      device_countries=("DE", "FR"), device_scopes=frozenset({"openid"}),
                      device_access_token_lifetime=300, device_refresh_token_lifetime=86_400)
    await committed(backend.store, lambda uow: uow.clients.add(client))
    async with backend.store.unit_of_work(read_only=True) as uow:
        assert await uow.clients.get(client.client_id) == client

    # Only what is named changes; an empty list or set, or lifetime 0, removes a rule.
    changes = ClientChanges(device_networks=(), device_scopes=frozenset(),
                            device_access_token_lifetime=0, default_proximity_policy=True)
    assert await committed(backend.store, lambda uow: uow.clients.update(
        client.client_id, changes)) is True
    async with backend.store.unit_of_work(read_only=True) as uow:
        stored = await uow.clients.get(client.client_id)
    assert stored == dataclasses.replace(
        client, proximity_policy=None, device_networks=(), device_scopes=None,
        device_access_token_lifetime=None)

    changes = ClientChanges(proximity_policy=ProximityPolicy.REPORT, device_countries=("US",))
    await committed(backend.store, lambda uow: uow.clients.update(client.client_id, changes))
    async with backend.store.unit_of_work(read_only=True) as uow:
        stored = await uow.clients.get(client.client_id)
    assert stored is not None
    assert (stored.proximity_policy, stored.device_countries,
            stored.device_refresh_token_lifetime) == (ProximityPolicy.REPORT, ("US",), 86_400)


async def test_an_account_counts_once_per_code(backend: Backend) -> None:
    record = a_device()
    await committed(backend.store, lambda uow: uow.device_authorizations.add(record))

    async def note(user: str) -> int:
        return int(await committed(backend.store, lambda uow: uow.device_authorizations
                                   .note_account(record.device_code_hash, user,
                                                 record.expires_at)))  # type: ignore[arg-type]

    assert [await note("ada"), await note("ada"), await note("bob"), await note("ada")] == [
        1, 1, 2, 2]


async def test_racing_accounts_each_read_their_own_count(backend: Backend) -> None:
    """Hit-then-test: N accounts opening one code at once get 1…N, never two the same count
    (a read-then-count would let every racer see 1, and no one be warned)."""
    record = a_device()
    await committed(backend.store, lambda uow: uow.device_authorizations.add(record))
    users = iter(f"user-{i}" for i in range(100))

    async def note(uow: UnitOfWork) -> int:
        return await uow.device_authorizations.note_account(
            record.device_code_hash, next(users), record.expires_at)

    counts = await concurrently(backend, note)
    assert sorted(counts) == list(range(1, len(counts) + 1))


async def test_noted_accounts_are_purged_with_their_code(backend: Backend) -> None:
    record = a_device()
    await committed(backend.store, lambda uow: uow.device_authorizations.add(record))
    await committed(backend.store, lambda uow: uow.device_authorizations.note_account(
        record.device_code_hash, "ada", record.expires_at))
    await committed(backend.store, lambda uow: uow.device_authorizations.purge(
        record.expires_at + 1, 100))
    # A code re-added under the same hash starts from no accounts.
    await committed(backend.store, lambda uow: uow.device_authorizations.add(record))
    assert await committed(backend.store, lambda uow: uow.device_authorizations.note_account(
        record.device_code_hash, "bob", record.expires_at)) == 1

"""The audit log's storage contract (``AuditLogRepository``) on memory, SQLite and PostgreSQL:
round trip of every field, each filter, newest-first order, the limit, the retention purge in
batches, rollback with the change it records, and appends from concurrent workers."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from tests.support.stores import Backend

from deviceflow.protocol.audit import AuditActor, AuditEvent, AuditEventType, AuditQuery
from deviceflow.storage.interface import AuditLogRepository

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.25  # a fraction, so a float column that rounds would show
E = AuditEventType


def an_event(n: int = 1, **changes: object) -> AuditEvent:
    event = AuditEvent(
        event=E.TOKENS_ISSUED,
        occurred_at=NOW + n,
        user_id="sub-ada",
        client_id="cli",
        ip_address="203.0.113.7",
        user_agent="curl/8.5 ünïcode",
        family_id=f"family-{n}",
        request_id=f"req-{n}",
        grant_type="urn:ietf:params:oauth:grant-type:device_code",
        actor=AuditActor.CLIENT,
        detail="with refresh token",
    )
    return dataclasses.replace(event, **changes)  # type: ignore[arg-type]


async def append(backend: Backend, *events: AuditEvent) -> None:
    async with backend.store.unit_of_work() as uow:
        for event in events:
            await uow.audit_log.append(event)
        await uow.commit()


async def query(backend: Backend, **filters: object) -> list[AuditEvent]:
    async with backend.store.unit_of_work() as uow:
        return list(await uow.audit_log.query(AuditQuery(**filters)))  # type: ignore[arg-type]


def test_the_port_is_append_only() -> None:
    # No update, no delete: only the retention purge removes records.
    members = {m for m in vars(AuditLogRepository) if not m.startswith("_")}
    assert members == {"append", "query", "purge"}


async def test_every_field_and_event_round_trips_newest_first(backend: Backend) -> None:
    events = [an_event(n, event=kind) for n, kind in enumerate(AuditEventType)]
    bare = AuditEvent(event=E.KEY_ROTATED, occurred_at=NOW - 5)  # every optional field None
    await append(backend, *events, bare)
    assert await query(backend) == [*reversed(events), bare]


async def test_records_of_the_same_time_come_newest_appended_first(backend: Backend) -> None:
    first, second = an_event(1, detail="first"), an_event(1, detail="second")
    await append(backend, first)
    await append(backend, second)
    assert await query(backend) == [second, first]


async def test_filters_all_apply(backend: Backend) -> None:
    ada_cli = an_event(1, event=E.APPROVED)
    ada_tv = an_event(2, client_id="tv", event=E.TOKENS_ISSUED)
    bob_cli = an_event(3, user_id="sub-bob", event=E.SIGN_IN_FAILED)
    nobody = an_event(4, user_id=None, client_id=None, event=E.CODE_ENTRY_REFUSED)
    await append(backend, ada_cli, ada_tv, bob_cli, nobody)
    assert await query(backend, user_id="sub-ada") == [ada_tv, ada_cli]
    assert await query(backend, client_id="cli") == [bob_cli, ada_cli]
    assert await query(backend, since=NOW + 2) == [nobody, bob_cli, ada_tv]  # inclusive
    assert await query(backend, events=frozenset({E.APPROVED, E.CODE_ENTRY_REFUSED})) == [
        nobody, ada_cli]
    assert await query(backend, user_id="sub-ada", client_id="cli", since=NOW,
                       events=frozenset({E.APPROVED})) == [ada_cli]
    assert await query(backend, user_id="sub-ada", events=frozenset({E.SIGN_IN_FAILED})) == []
    assert await query(backend, limit=2) == [nobody, bob_cli]


async def test_purge_deletes_old_records_in_batches(backend: Backend) -> None:
    old = [an_event(-10 - n) for n in range(5)]
    kept = an_event(0)  # at the cut-off: kept
    await append(backend, *old, kept)
    batches = []
    for _ in range(4):
        async with backend.store.unit_of_work() as uow:
            batches.append(await uow.audit_log.purge(NOW, 2))
            await uow.commit()
    assert batches == [2, 2, 1, 0]
    assert await query(backend) == [kept]


async def test_an_append_rolls_back_with_its_transaction(sql_backend: Backend) -> None:
    async with sql_backend.store.unit_of_work() as uow:
        await uow.audit_log.append(an_event(1))
    assert await query(sql_backend) == []


async def test_concurrent_appends_from_workers_all_land(backend: Backend) -> None:
    async with backend.worker_stores(5, pool_size=4) as stores:
        async def one(n: int) -> None:
            async with stores[n % len(stores)].unit_of_work() as uow:
                await uow.audit_log.append(an_event(n, request_id=f"r{n}"))
                await uow.commit()

        await asyncio.gather(*(one(n) for n in range(50)))
    stored = await query(backend)
    assert sorted(e.request_id or "" for e in stored) == sorted(f"r{n}" for n in range(50))

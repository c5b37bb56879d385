"""The per-worker copy of the denylist: two dictionary lookups per check, one small read a
second at most, and a revocation by another worker seen within that second."""

from __future__ import annotations

import pytest

from deviceflow.protocol.models import DeniedToken, DenyKind
from deviceflow.server import denylist as denylist_module
from deviceflow.server.denylist import OVERLAP_SECONDS, Denylist
from deviceflow.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio
NOW = 1_800_000_000.0


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks(monkeypatch: pytest.MonkeyPatch) -> Ticks:
    ticks = Ticks()
    monkeypatch.setattr(denylist_module.time, "monotonic", ticks)
    return ticks


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def unit_of_work(self, *, read_only: bool = False):  # type: ignore[no-untyped-def]
        self.reads += read_only
        return super().unit_of_work(read_only=read_only)


async def deny(store: MemoryStore, kind: DenyKind, value: str, created_at: float,
               expires_at: float = NOW + 3600) -> DeniedToken:
    entry = DeniedToken(kind, value, expires_at, created_at)
    async with store.unit_of_work() as uow:
        await uow.denylist.add(entry)
        await uow.commit()
    return entry


async def test_another_workers_revocation_is_seen_within_a_second(ticks: Ticks) -> None:
    store = CountingStore()
    here = Denylist(store, lambda: NOW)
    assert not await here.denied("j1", "fam")
    assert store.reads == 1
    await deny(store, DenyKind.JTI, "j1", NOW)  # another worker, same database
    for _ in range(100):
        assert not await here.denied("j1", "fam")  # still the copy of a moment ago ...
    assert store.reads == 1  # ... read once
    ticks.now += 1.0
    assert await here.denied("j1", None)
    assert store.reads == 2


async def test_a_family_entry_denies_every_token_of_the_login(ticks: Ticks) -> None:
    store = MemoryStore()
    await deny(store, DenyKind.FAMILY, "fam", NOW)
    here = Denylist(store, lambda: NOW)
    assert await here.denied("any-jti", "fam")
    assert not await here.denied("any-jti", "other")
    assert not await here.denied("any-jti", None)


async def test_a_late_commit_stamped_earlier_is_still_read(ticks: Ticks) -> None:
    store = MemoryStore()
    clock = [NOW]
    here = Denylist(store, lambda: clock[0])
    assert not await here.denied("j1", None)
    clock[0] += 30
    ticks.now += 1
    assert not await here.denied("j1", None)
    # Committed now, but stamped before the last fetch (a slow transaction, a slower clock).
    await deny(store, DenyKind.JTI, "j1", NOW + 30 - OVERLAP_SECONDS / 2)
    ticks.now += 1
    assert await here.denied("j1", None)


async def test_own_revocations_apply_at_once_and_entries_expire(ticks: Ticks) -> None:
    clock = [NOW]
    here = Denylist(MemoryStore(), lambda: clock[0])
    assert not await here.denied("j1", None)
    here.note([DeniedToken(DenyKind.JTI, "j1", NOW + 10, NOW)])
    assert await here.denied("j1", None)
    clock[0] = NOW + 10
    assert not await here.denied("j1", None)

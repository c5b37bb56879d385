"""The access-token denylist as each worker sees it: a copy of the database's table, refreshed at
most once a second, so a check on ``/userinfo`` or ``/introspect`` is two dictionary lookups.

Revocation (RFC 7009 §2) writes an entry in the same transaction that revokes the refresh
tokens, and adds it to the revoking worker's copy at once; every other worker, on this host or
another, reads it within ``REFRESH_SECONDS``: the first check after that period fetches the
entries created since the previous fetch (an indexed range on ``created_at``). Redis is not
needed for this: the database is already shared, and a second copy in Redis would cost a round
trip on every request and could disagree with the database while Redis is away.

Entries are stamped with the revoking host's clock before its transaction commits, so each
fetch reaches ``OVERLAP_SECONDS`` further back than the previous one began: a slow commit or a
clock a little behind cannot hide an entry from a reader. Reading one twice is harmless.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from ..protocol.models import DeniedToken, DenyKind, Timestamp
from ..storage.interface import Store

REFRESH_SECONDS = 1.0
"""A revocation reaches every worker within this long."""

OVERLAP_SECONDS = 60.0
"""How far before the previous fetch each fetch reads again (slow commits, clock skew)."""

_SWEEP_SECONDS = 60.0


class Denylist:
    """One process's copy of the denylist."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time, *,
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._store = store
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._entries: dict[DenyKind, dict[str, Timestamp]] = {kind: {} for kind in DenyKind}
        self._fetched_from: Timestamp | None = None  # None: never fetched, read everything
        self._next_fetch = 0.0  # monotonic
        self._next_sweep = 0.0
        self._fetching: asyncio.Task[None] | None = None

    async def denied(self, jti: str | None, family_id: str | None) -> bool:
        """Whether an access token with this ``jti`` (and ``fam``) was revoked; reads the
        entries created since the last fetch first when that was over a second ago."""
        if time.monotonic() >= self._next_fetch:
            await self._refresh()
        now = self._clock()
        for kind, value in ((DenyKind.JTI, jti), (DenyKind.FAMILY, family_id)):
            if value is not None:
                expires_at = self._entries[kind].get(value)
                if expires_at is not None and expires_at > now:
                    return True
        return False

    def note(self, entries: Iterable[DeniedToken]) -> None:
        """Entries this process just committed: effective here at once."""
        for entry in entries:
            self._keep(entry)

    def _keep(self, entry: DeniedToken) -> None:
        known = self._entries[entry.kind]
        known[entry.value] = max(entry.expires_at, known.get(entry.value, 0.0))

    async def _refresh(self) -> None:
        # One fetch at a time: checks arriving meanwhile wait for it rather than each querying.
        if self._fetching is None:
            self._fetching = asyncio.ensure_future(self._fetch())
        task = self._fetching
        try:
            await asyncio.shield(task)
        finally:
            if self._fetching is task and task.done():
                self._fetching = None

    async def _fetch(self) -> None:
        now = self._clock()
        created_from = -1.0 if self._fetched_from is None else self._fetched_from - OVERLAP_SECONDS
        async with self._store.unit_of_work(read_only=True) as uow:
            entries = await uow.denylist.since(created_from, now)
        for entry in entries:
            self._keep(entry)
        self._fetched_from = now
        tick = time.monotonic()
        self._next_fetch = tick + self._refresh_seconds
        if tick >= self._next_sweep:
            self._next_sweep = tick + _SWEEP_SECONDS
            for known in self._entries.values():
                for value in [v for v, expires_at in known.items() if expires_at <= now]:
                    del known[value]


__all__ = ["OVERLAP_SECONDS", "REFRESH_SECONDS", "Denylist"]

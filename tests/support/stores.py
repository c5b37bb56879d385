"""Stores for tests, one per backend (``memory``, ``sqlite``, ``postgres``), each on a fresh,
migrated database so that tests never share state and may run in parallel."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from deviceflow.storage.interface import Store
from deviceflow.storage.memory import MemoryStore
from deviceflow.storage.sql.engine import create_store, upgrade

from .databases import fresh_postgres_database, require_postgres, sqlite_url

KINDS = ("memory", "sqlite", "postgres")
SQL_KINDS = ("sqlite", "postgres")


@dataclass(frozen=True)
class Backend:
    kind: str
    """``memory``, ``sqlite`` or ``postgres``."""
    store: Store
    url: str | None
    """The database URL of a SQL backend; None for memory."""

    @contextlib.asynccontextmanager
    async def worker_stores(self, workers: int, *, pool_size: int) -> AsyncIterator[list[Store]]:
        """Stores on the same data, one per simulated server process: each has its own engine
        and pool (and, on SQLite, its own in-process write lock), so only the database stands
        between them. For memory: the one store, ``workers`` times."""
        if self.url is None:
            yield [self.store] * workers
            return
        stores = [create_store(self.url, pool_size=pool_size) for _ in range(workers)]
        try:
            yield list(stores)
        finally:
            for store in stores:
                await store.close()


@contextlib.contextmanager
def empty_database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty, unmigrated database of ``kind`` (``sqlite`` or ``postgres``).
    PostgreSQL goes through ``require_postgres``: unreachable fails the test, unless skipped."""
    if kind == "sqlite":
        yield sqlite_url(tmp_path / "deviceflow.sqlite3")
        return
    if kind != "postgres":
        raise ValueError(f"not a SQL backend: {kind!r}")
    require_postgres()
    with fresh_postgres_database() as url:
        yield url


@contextlib.asynccontextmanager
async def open_backend(kind: str, tmp_path: Path) -> AsyncIterator[Backend]:
    """An empty store of ``kind``, migrated to head; closed when the block ends."""
    if kind == "memory":
        memory = MemoryStore()
        try:
            yield Backend(kind, memory, None)
        finally:
            await memory.close()
        return
    with empty_database_url(kind, tmp_path) as url:
        await upgrade(url)
        store = create_store(url)
        try:
            yield Backend(kind, store, url)
        finally:
            await store.close()


__all__ = ["KINDS", "SQL_KINDS", "Backend", "empty_database_url", "open_backend"]

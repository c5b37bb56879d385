"""Engine set-up: URL mapping, the default database, per-dialect connection settings, and a unit
of work that is cancelled midway giving its connection (and SQLite's write lock) back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import platformdirs
import pytest
from sqlalchemy import text
from tests.support.databases import sqlite_url
from tests.support.stores import Backend, open_backend

from deviceflow.protocol.models import Client, ClientType
from deviceflow.storage.interface import SecretEncryption, StorageUnavailableError, StoredSecret
from deviceflow.storage.sql import engine
from deviceflow.storage.sql.engine import async_url, create_store, default_db_url
from deviceflow.storage.sql.repository import SqlStore

ASYNC_URLS = [
    ("sqlite:///relative.db", "sqlite+aiosqlite:///relative.db"),
    ("sqlite:////abs/path/db.sqlite3", "sqlite+aiosqlite:////abs/path/db.sqlite3"),
    ("sqlite+pysqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ("postgresql://u:p%40ss@db:5432/df", "postgresql+asyncpg://u:p%40ss@db:5432/df"),
    ("postgres://u@db/df?ssl=require", "postgresql+asyncpg://u@db/df?ssl=require"),
    ("postgresql+psycopg2://u@db/df", "postgresql+asyncpg://u@db/df"),
    ("postgresql+asyncpg://u@db/df", "postgresql+asyncpg://u@db/df"),
]


@pytest.mark.parametrize(("url", "expected"), ASYNC_URLS, ids=[u for u, _ in ASYNC_URLS])
def test_async_url(url: str, expected: str) -> None:
    assert async_url(url) == expected


@pytest.mark.parametrize(
    "url",
    ["mysql://u@db/df", "postgresql+psycopg://u@db/df", "sqlite+pysqlcipher:///x", "nonsense"],
    ids=["mysql", "unknown-postgres-driver", "unknown-sqlite-driver", "not-a-url"],
)
def test_async_url_refuses_what_is_not_supported(url: str) -> None:
    with pytest.raises(ValueError, match=r"unsupported|not a database URL"):
        async_url(url)


def test_default_db_url_prefers_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVICEFLOW_DB", "postgresql://u@db/df")
    assert default_db_url() == "postgresql://u@db/df"


def test_default_db_url_is_a_sqlite_file_in_the_user_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DEVICEFLOW_DB", raising=False)
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *a, **k: str(tmp_path))
    assert default_db_url() == f"sqlite:///{tmp_path / 'deviceflow.sqlite3'}"


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true"]
)
def test_in_memory_sqlite_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="in-memory"):
        create_store(url)


@pytest.mark.anyio
async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "db.sqlite3")
    await engine.upgrade(url)
    store = create_store(url)
    try:
        async with store.engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "busy_timeout", "foreign_keys")
            }
    finally:
        await store.close()
    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": engine.SQLITE_BUSY_TIMEOUT_MS,
        "foreign_keys": 1,
    }


@pytest.mark.anyio
async def test_postgres_pool_checks_connections_without_a_round_trip(sql_backend: Backend) -> None:
    """No ``pool_pre_ping`` (three round trips per checkout on asyncpg): a closed connection is
    refused at checkout from asyncpg's own state instead (see the test below)."""
    store = sql_backend.store
    assert isinstance(store, SqlStore)
    if sql_backend.kind == "postgres":
        assert store.engine.dialect.driver == "asyncpg"
        assert store.engine.pool._pre_ping is False
    else:
        assert store.engine.dialect.driver == "aiosqlite"


async def _terminate_other_backends(url: str) -> int:
    """Kill every server process of this database but the caller's: a PostgreSQL restart, as
    far as pooled connections can tell."""
    admin = create_store(url, pool_size=1)
    try:
        async with admin.unit_of_work() as uow:
            result = await uow.connection.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            return int(result.scalar_one())
    finally:
        await admin.close()


@pytest.mark.anyio
@pytest.mark.postgres
async def test_postgres_pool_replaces_connections_the_server_closed(tmp_path: Path) -> None:
    async with open_backend("postgres", tmp_path) as backend:
        store, url = backend.store, str(backend.url)

        async def read_four_at_once() -> None:
            async def read() -> None:
                async with store.unit_of_work(read_only=True) as uow:
                    assert await uow.clients.get("nobody") is None
                    await asyncio.sleep(0.05)  # hold it, so four connections are pooled
            await asyncio.gather(*(read() for _ in range(4)))

        await read_four_at_once()
        assert await _terminate_other_backends(url) >= 4
        await asyncio.sleep(0.2)  # the event loop sees the sockets close
        await read_four_at_once()  # not one failure: each dead connection was replaced
        async with store.unit_of_work() as uow:
            await uow.clients.add(Client("after", "After", ClientType.PUBLIC,
                                         frozenset(), frozenset()))
            await uow.commit()


@pytest.mark.anyio
@pytest.mark.postgres
async def test_postgres_connection_lost_mid_work_is_storage_unavailable(tmp_path: Path) -> None:
    async with open_backend("postgres", tmp_path) as backend:
        store, url = backend.store, str(backend.url)

        async def read_across_a_drop() -> None:
            async with store.unit_of_work() as uow:
                await uow.clients.get("nobody")
                # The server drops this very connection between two statements.
                await _terminate_other_backends(url)
                await uow.clients.get("nobody")

        with pytest.raises(StorageUnavailableError):
            await read_across_a_drop()
        async with store.unit_of_work(read_only=True) as uow:  # and the pool recovers
            assert await uow.clients.get("nobody") is None


@pytest.mark.anyio
async def test_a_cancelled_unit_of_work_gives_back_its_connection(sql_backend: Backend) -> None:
    store = sql_backend.store
    assert isinstance(store, SqlStore)
    inside = asyncio.Event()

    async def stuck() -> None:
        async with store.unit_of_work() as uow:
            await uow.secrets.add_if_absent(
                "hmac", StoredSecret(b"uncommitted", SecretEncryption.AES_256_GCM))
            inside.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(stuck())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The next unit of work gets a connection (and on SQLite the write lock) at once, and the
    # cancelled write was rolled back.
    async with asyncio.timeout(5):
        async with store.unit_of_work() as uow:
            assert await uow.secrets.get("hmac") is None
    await asyncio.sleep(0)
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_a_unit_of_work_is_entered_once(sql_backend: Backend) -> None:
    uow = sql_backend.store.unit_of_work()
    async with uow:
        with pytest.raises(RuntimeError, match="once"):
            await uow.__aenter__()


def test_public_api() -> None:
    from deviceflow.storage.sql import repository, tables

    assert engine.__all__ == [
        "DB_ENV",
        "MIGRATIONS_DIR",
        "SQLITE_BUSY_TIMEOUT_MS",
        "alembic_config",
        "async_url",
        "create_store",
        "current_revision",
        "default_db_url",
        "head_revision",
        "sqlite_file",
        "upgrade",
        "upgrade_sync",
    ]
    assert {"SqlStore", "SqlUnitOfWork"} <= set(repository.__all__)
    assert set(tables.__all__) >= {"metadata", "clients", "users", "device_authorizations"}

"""Engines and migrations for the SQL store: SQLite through aiosqlite, PostgreSQL through asyncpg.

``create_store`` builds a pooled async engine tuned per dialect; ``upgrade`` runs the Alembic
history that ships inside this package (``migrations/``) to head, with the Alembic ``Config``
built in code, so no ``alembic.ini`` has to exist at runtime.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from pathlib import Path
from typing import Any, Final

import platformdirs
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, SingletonThreadPool

from ..files import create_private_file, make_private_dir
from .repository import READ_ONLY_OPTION, SqlStore

DB_ENV: Final = "DEVICEFLOW_DB"
"""Environment variable naming the database URL."""

SQLITE_BUSY_TIMEOUT_MS: Final = 5000
"""How long a SQLite writer waits for the write lock before ``database is locked``."""

MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")

# Any constant works; it only has to be the same in every process that migrates one database.
_MIGRATION_LOCK_KEY: Final = 0x64657669636566  # "devicef"

_ASYNC_DRIVERS: Final = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
_SYNC_DRIVERS: Final = {"sqlite": {"", "pysqlite"}, "postgresql": {"", "psycopg2", "pg8000"}}
_PASS_THROUGH: Final = {"sqlite": {"aiosqlite"}, "postgresql": {"asyncpg"}}


def async_url(url: str) -> str:
    """Map a database URL to its async driver.

    ``sqlite:///path`` → ``sqlite+aiosqlite:///path``; ``postgresql://…`` and ``postgres://…``
    (the spelling Heroku-style platforms hand out) → ``postgresql+asyncpg://…``. URLs that already
    name an async driver pass through. Anything else is a ``ValueError``: these are the only two
    databases the store is tested on."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    dialect, _, driver = scheme.lower().partition("+")
    if dialect == "postgres":
        dialect = "postgresql"
    if dialect not in _ASYNC_DRIVERS:
        raise ValueError(f"unsupported database {dialect!r}: use sqlite:// or postgresql://")
    if driver in _SYNC_DRIVERS[dialect]:
        driver = _ASYNC_DRIVERS[dialect]
    elif driver not in _PASS_THROUGH[dialect]:
        raise ValueError(f"unsupported driver {driver!r} for {dialect}")
    return f"{dialect}+{driver}://{rest}"


def default_db_url() -> str:
    """``$DEVICEFLOW_DB`` if set, else a SQLite file in the user's data directory."""
    url = os.environ.get(DB_ENV, "").strip()
    if url:
        return url
    path = Path(platformdirs.user_data_dir("deviceflow", appauthor=False)) / "deviceflow.sqlite3"
    return f"sqlite:///{path}"


def _sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases. In-memory SQLite is refused: every
    pooled connection would see its own empty database (or, with one shared connection,
    concurrent units of work would share one transaction)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        raise ValueError("in-memory SQLite is not supported: use a file, or the MemoryStore")
    if database.startswith("file:"):
        database = database[len("file:") :].partition("?")[0]
    return Path(database)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL, None for PostgreSQL."""
    return _sqlite_path(async_url(url))


def _make_private_sqlite_file(path: Path) -> None:
    # The file holds the server's (sealed) keys, codes' HMACs and sessions: 0600 in a 0700
    # directory whatever the umask. SQLite gives its -wal and -shm files the database file's
    # mode, so creating the file before SQLite does covers them too.
    make_private_dir(path.parent)
    create_private_file(path)


def _on_sqlite_connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    # Take transaction control away from the sqlite3 module, whose legacy mode issues no BEGIN
    # before SELECT, DDL or SAVEPOINT (so savepoints and rollbacks would not work); the "begin"
    # listener below issues BEGIN itself. See SQLAlchemy's "Transactions with SQLite" notes.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL: readers never block the writer and the writer never blocks readers. The mode is
        # stored in the file, so only its first connection has to switch it; switching needs an
        # exclusive lock and fails at once ("database is locked", no busy wait) while another
        # connection of a fresh file is in a transaction. That other connection (or the next
        # one) switches it, so the refusal is not fatal here.
        cursor.execute("PRAGMA journal_mode")
        row = cursor.fetchone()
        if row is None or str(row[0]).lower() != "wal":
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
            except Exception as exc:  # the driver's OperationalError, wrapped per adapter
                if "locked" not in str(exc):
                    raise
    finally:
        cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN, waiting up to busy_timeout. A deferred transaction
    # that reads and then writes (load → decide → persist, as every unit of work does) fails at
    # once with SQLITE_BUSY if another writer committed in between: the busy handler cannot help
    # a stale read snapshot. A unit of work that only reads needs no lock and no BEGIN at all:
    # the driver is in autocommit mode (isolation_level=None above), so each SELECT reads its own
    # committed WAL snapshot beside the writer, and the hot read path saves a round trip.
    if not conn.get_execution_options().get(READ_ONLY_OPTION, False):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _create_engine(url: str, *, pre_ping: bool = False, **pool: Any) -> AsyncEngine:
    url = async_url(url)
    if _sqlite_path(url) is None:
        engine = create_async_engine(url, pool_pre_ping=pre_ping, **pool)
        event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
        return engine
    engine = create_async_engine(url, **pool)
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
    return engine


def _refuse_closed_connection(
    dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, proxy: Any
) -> None:
    """A pooled PostgreSQL connection whose server side is gone (a restart, a failover, an
    idle-connection reaper) is replaced before use, at no cost: asyncpg marks a connection
    closed as soon as the event loop sees the socket close, so checking costs no round trip.

    This replaces SQLAlchemy's ``pool_pre_ping``, whose asyncpg ping is ``BEGIN; ;ROLLBACK``:
    three round trips on every checkout, three quarters of a pending poll's round trips and
    half its PostgreSQL CPU (docs/benchmarks.md). A connection that dies silently (no FIN, such
    as a network partition) still fails its first statement; SQLAlchemy then invalidates the
    whole pool, and the request is answered ``temporarily_unavailable``
    (``StorageUnavailableError``), so the next one gets fresh connections.
    Raising ``DisconnectionError`` here makes the pool discard the connection and check out
    another (SQLAlchemy, "Disconnect Handling - Pessimistic", custom checkout handling)."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def create_store(url: str, *, pool_size: int = 10, pre_ping: bool = False) -> SqlStore:
    """A ``SqlStore`` on ``url`` (``sqlite://`` or ``postgresql://``; see ``async_url``).

    SQLite: ``pool_size`` connections stay open, and as many again may be opened under bursts.
    PostgreSQL: ``2 × pool_size`` connections, all kept open (the same ceiling, no churn).
    PostgreSQL connections the server has closed are replaced as they leave the pool at no
    cost (``_refuse_closed_connection``); ``pre_ping`` adds SQLAlchemy's ping (three round
    trips per unit of work) for networks that drop connections without closing them. The
    schema must exist already: run ``upgrade(url)`` first. Close the store when done.
    """
    if pool_size < 1:
        raise ValueError("pool_size must be at least 1")
    path = _sqlite_path(async_url(url))
    # PostgreSQL: a fixed pool of 2 × pool_size and no overflow. Overflow connections are closed
    # as soon as they are returned, so under load the pool opened and closed hundreds of
    # connections per 20 s (bench: pg_stat_database.sessions), which drove the p99; the same
    # ceiling as a fixed pool keeps them open instead.
    sizes = {"pool_size": pool_size, "max_overflow": pool_size} if path is not None else {
        "pool_size": 2 * pool_size, "max_overflow": 0}
    if path is not None:
        _make_private_sqlite_file(path)
    engine = _create_engine(url, pre_ping=pre_ping, **sizes)
    return SqlStore(engine, reader=None if path is None else _sqlite_reader(path))


def _sqlite_reader(path: Path) -> Engine:
    """A synchronous engine for read-only units of work that run inline (``SingletonThreadPool``:
    one connection for the event loop's thread; reads never hold it across an await)."""
    reader = create_engine(f"sqlite:///{path}", poolclass=SingletonThreadPool)
    event.listen(reader, "connect", _on_sqlite_reader_connect)
    return reader


def _on_sqlite_reader_connect(
    dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry
) -> None:
    # Autocommit (no BEGIN is ever issued on this engine): each SELECT is its own snapshot.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA query_only=1")  # this connection never writes
    finally:
        cursor.close()


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for the packaged migrations, built in code.

    Developers can use it to write a new revision against a database at head::

        command.revision(alembic_config(url), message="…", autogenerate=True)
    """
    config = Config()
    # Config values go through configparser interpolation, where "%" is special.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        config.attributes["url"] = url
    return config


def head_revision() -> str:
    """The newest revision of the packaged history."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships a history
        raise RuntimeError("no migrations found")
    return head


def _upgrade_on(conn: Connection, config: Config) -> None:
    # One transaction around the whole upgrade (Alembic sees it as external and leaves it to us):
    # both dialects have transactional DDL once BEGIN is ours (see _on_sqlite_connect).
    if not conn.in_transaction():
        conn.begin()
    if conn.dialect.name == "postgresql":
        # Two workers starting at once: the second waits here, then finds the schema at head.
        # (On SQLite, BEGIN IMMEDIATE already serializes them.)
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


async def upgrade(url: str) -> None:
    """Migrate the database at ``url`` to the newest revision; a no-op when it is at head.

    Every migration runs in one transaction, so a failure leaves the previous schema."""
    path = _sqlite_path(async_url(url))
    if path is not None:
        _make_private_sqlite_file(path)
    config = alembic_config(url)
    engine = _create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_upgrade_on, config)
            await conn.commit()
    finally:
        await engine.dispose()


def upgrade_sync(url: str) -> None:
    """``upgrade`` for synchronous callers (the CLI, a server before its event loop starts).

    Inside a running event loop it runs on a helper thread with a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(upgrade(url))
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, upgrade(url)).result()


def _revision_on(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at; None when it was never migrated (a SQLite
    file that does not exist is not created)."""
    path = _sqlite_path(async_url(url))
    if path is not None and not path.exists():
        return None
    engine = _create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_revision_on)
    finally:
        await engine.dispose()


__all__ = [
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

"""Candidate hot-path optimizations, applied by monkeypatching so they can be measured before
anyone changes ``src/``. Nothing here is used by deviceflow itself.

    BENCH_EXPERIMENTS=sqlite_one_connection,client_cache \\
        uvicorn bench.experiments:app_from_env --factory   (bench/run.py --experiments does this)

Each experiment is one function below; its docstring says what it changes and what it would be
in ``src/``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

EXPERIMENTS: dict[str, Callable[[], None]] = {}


def experiment(func: Callable[[], None]) -> Callable[[], None]:
    EXPERIMENTS[func.__name__] = func
    return func


@experiment
def sqlite_one_connection() -> None:
    """SQLite: pool of one connection per worker process (``create_store(pool_size=1)`` and no
    overflow). With the default 10 + 10, concurrent requests each take their own connection and
    race for SQLite's single write lock: ``BEGIN IMMEDIATE`` losers sleep in SQLite's busy
    handler (1, 2, 5, 10, … ms) on their own aiosqlite threads. With one connection they wait in
    the pool's asyncio queue instead, and the lock is never contended inside a process."""
    from deviceflow.storage.sql import engine

    original = engine.create_store

    def create_store(url: str, **kw: Any) -> Any:
        path = engine._sqlite_path(engine.async_url(url))
        if path is not None:
            from deviceflow.storage.sql.repository import SqlStore

            writer = engine._create_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)
            reader = getattr(engine, "_sqlite_reader", None)  # inline reads, where src has them
            if reader is None:
                return SqlStore(writer)
            return SqlStore(writer, reader=reader(path))
        return original(url, **kw)

    engine.create_store = create_store  # type: ignore[assignment]


@experiment
def pg_pool_no_overflow() -> None:
    """PostgreSQL: a fixed pool of 20 connections per worker, no overflow (the default is 10 plus
    up to 10 overflow). Under 64 concurrent requests the overflow connections are opened and, as
    soon as the pool is full again on check-in, closed: pg_stat_database.sessions grows by about
    two connections a second, and each new connection (a PostgreSQL backend fork, asyncpg's
    set-up queries) stalls its request. With no overflow, requests wait for a connection in the
    pool's queue instead."""
    from deviceflow.storage.sql import engine

    original = engine.create_store

    def create_store(url: str, **kw: Any) -> Any:
        if engine._sqlite_path(engine.async_url(url)) is None:
            from deviceflow.storage.sql.repository import SqlStore

            pre_ping = kw.get("pre_ping", True)
            return SqlStore(engine._create_engine(url, pre_ping=pre_ping, pool_size=20,
                                                  max_overflow=0, pool_timeout=30))
        return original(url, **kw)

    engine.create_store = create_store  # type: ignore[assignment]


@experiment
def sqlite_synchronous_normal() -> None:
    """SQLite: ``PRAGMA synchronous=NORMAL`` on each connection. In WAL mode a commit then
    appends to the WAL without an fsync (the WAL is synced at checkpoints): a power loss may
    lose the last commits, an application crash loses nothing. Saves one fsync per write
    transaction (about 1 ms of wall time on this machine's disk, measured with os.fsync)."""
    from deviceflow.storage.sql import engine

    original = engine._on_sqlite_connect

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        original(dbapi_connection, record)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    engine._on_sqlite_connect = on_connect  # type: ignore[assignment]


@experiment
def sqlite_inline() -> None:
    """SQLite: run each sqlite3 call inline on the event loop instead of handing it to
    aiosqlite's per-connection thread. aiosqlite makes every call (cursor, execute, fetch, close,
    commit: about 16 per poll) a queue put, a thread wake-up and a future resolved back on the
    loop; with the worker pinned to one core each hop is a context switch and a GIL hand-off.
    Inline, a call blocks the loop only for the few microseconds SQLite takes on a warm page
    cache (plus the commit's fsync, unless ``sqlite_synchronous_normal``). Meant together with
    ``sqlite_one_connection``: a blocked ``BEGIN IMMEDIATE`` would stall the whole loop, so the
    write lock must never be contended inside the process. In src/ this would be a small
    inline DBAPI adapter (or a sync engine used from the loop) chosen for SQLite URLs."""
    import aiosqlite.core as core

    from deviceflow.storage.sql import engine

    async def _execute(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def _connect(self: Any) -> Any:
        if self._connection is None:
            self._connection = self._connector()
        return self

    core.Connection._execute = _execute  # type: ignore[method-assign]
    core.Connection._connect = _connect  # type: ignore[method-assign]

    original = engine.create_async_engine

    def create_async_engine(url: Any, **kw: Any) -> Any:
        # The connection is made on the loop thread; SQLAlchemy still sets isolation_level
        # (and aiosqlite closes it) through the worker thread once per connection.
        if str(url).startswith("sqlite"):
            kw.setdefault("connect_args", {})["check_same_thread"] = False
        return original(url, **kw)

    engine.create_async_engine = create_async_engine  # type: ignore[assignment]


@experiment
def client_cache() -> None:
    """Cache ``clients.get`` in process for 5 s. Every token and device request loads its
    client: one SELECT per poll that almost never changes. A removed or changed client then
    takes up to 5 s to be noticed by every worker (the cache would be keyed by client_id and
    dropped on the admin paths)."""
    from deviceflow.storage.sql import repository

    original = repository.SqlClients.get
    cache: dict[str, tuple[float, Any]] = {}

    async def get(self: Any, client_id: str) -> Any:
        now = time.monotonic()
        hit = cache.get(client_id)
        if hit is not None and now - hit[0] < 5.0:
            return hit[1]
        client = await original(self, client_id)
        cache[client_id] = (now, client)
        return client

    repository.SqlClients.get = get  # type: ignore[method-assign]


@experiment
def no_pre_ping() -> None:
    """PostgreSQL: no ``pool_pre_ping``. The ping costs a round trip (and a PostgreSQL
    statement) on every pool checkout, i.e. on every request; without it a connection killed
    by a PostgreSQL restart fails one request instead, which ``pool_recycle`` and a retry on
    ``DBAPIError.connection_invalidated`` would cover."""
    from deviceflow.storage.sql import engine

    original = engine.create_async_engine

    def create_async_engine(url: Any, **kw: Any) -> Any:
        kw.pop("pool_pre_ping", None)
        return original(url, **kw)

    engine.create_async_engine = create_async_engine  # type: ignore[assignment]


@experiment
def poll_autocommit() -> None:
    """PostgreSQL: run a device-code poll's statements in autocommit (no BEGIN / COMMIT: two
    round trips fewer). Every statement of a pending poll is a single-statement read or a
    single-statement compare-and-set (``record_poll``), so none needs an enclosing transaction.
    Only for measuring pending polls: in src/ the service would open a transaction only when
    ``poll()`` decides ``Redeem`` (the transition and the refresh token insert go together)."""
    import contextvars

    from deviceflow.protocol.models import DEVICE_CODE_GRANT
    from deviceflow.server.service import tokens as service_module
    from deviceflow.storage.sql import repository

    polling: contextvars.ContextVar[bool] = contextvars.ContextVar("bench_poll", default=False)
    original_token = service_module.TokenService.token
    original_enter = repository.SqlUnitOfWork.__aenter__
    autocommit: dict[int, Any] = {}

    async def token(self: Any, params: Any, authorization: Any) -> Any:
        if params.get("grant_type") != DEVICE_CODE_GRANT:
            return await original_token(self, params, authorization)
        marker = polling.set(True)
        try:
            return await original_token(self, params, authorization)
        finally:
            polling.reset(marker)

    async def enter(self: Any) -> Any:
        if polling.get() and self._engine.dialect.name == "postgresql":
            key = id(self._engine)
            if key not in autocommit:
                autocommit[key] = self._engine.execution_options(isolation_level="AUTOCOMMIT")
            self._engine = autocommit[key]
        return await original_enter(self)

    service_module.TokenService.token = token  # type: ignore[method-assign]
    repository.SqlUnitOfWork.__aenter__ = enter  # type: ignore[method-assign]


@experiment
def no_request_middleware() -> None:
    """Drop ``RequestContextMiddleware`` (request id, access log record, nosniff header) to
    measure what it costs per request."""
    from starlette.middleware import Middleware

    from deviceflow.server.web import app as app_module
    from deviceflow.server.web.middleware import RequestContextMiddleware

    original = app_module.Starlette

    def starlette(*args: Any, middleware: list[Middleware] | None = None, **kw: Any) -> Any:
        kept = [m for m in middleware or [] if m.cls is not RequestContextMiddleware]
        return original(*args, middleware=kept, **kw)

    app_module.Starlette = starlette  # type: ignore[assignment,misc]


@experiment
def hiredis() -> None:
    """redis-py with the ``hiredis`` C reply parser (``redis[hiredis]``) instead of its pure-Python
    one. bench/run.py installs hiredis into a scratch directory (``BENCH_PYLIB``) for this
    experiment only; redis-py picks it up at import. In src/ this is a dependency change:
    ``redis[hiredis]`` in pyproject.toml."""
    import sys

    pylib = os.environ.get("BENCH_PYLIB", "")
    if not pylib:
        raise SystemExit("the hiredis experiment needs BENCH_PYLIB (bench/run.py sets it)")
    sys.path.insert(0, pylib)
    import redis.utils

    if not redis.utils.HIREDIS_AVAILABLE:
        raise SystemExit(f"hiredis not importable from {pylib}")


def apply(names: str) -> list[str]:
    applied = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        if name not in EXPERIMENTS:
            raise SystemExit(f"unknown experiment {name!r}: {', '.join(EXPERIMENTS)}")
        EXPERIMENTS[name]()
        applied.append(name)
    return applied


def app_from_env() -> Any:
    apply(os.environ.get("BENCH_EXPERIMENTS", ""))
    from deviceflow.server.web.app import app_from_env as real

    return real()

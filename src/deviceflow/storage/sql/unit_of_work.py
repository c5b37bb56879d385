"""Units of work on the SQL store: one transaction on one pooled connection holding every
repository, and SQLite's inline read-only path straight on the driver."""

from __future__ import annotations

import asyncio
import threading
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, cast

from sqlalchemy import Dialect, Engine, Select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..interface import (
    StorageError,
    StorageUnavailableError,
)
from . import tables as t
from .accounts import SqlClients, SqlUsers
from .audit import SqlAuditLog
from .authorization_codes import SqlAuthorizationCodes
from .consents import SqlConsents
from .denylist import SqlDenylist
from .devices import SqlDeviceAuthorizations
from .factors import SqlFactors
from .grants import SqlGrants
from .outbox import SqlOutbox
from .refresh_tokens import SqlRefreshTokens
from .secrets import SqlSecrets
from .sessions import SqlBrowserSessions
from .signing_keys import SqlSigningKeys

_c = t.clients
_u = t.users
_d = t.device_authorizations
_r = t.refresh_tokens
_s = t.server_secrets


# ------------------------------------------------------------------------------ unit of work, store


READ_ONLY_OPTION = "deviceflow_read_only"
"""Execution option marking a connection whose transaction only reads."""


class SqlUnitOfWork:
    """One transaction on one pooled connection. ``commit()`` commits; leaving the block without
    it rolls back. A statement after ``commit()`` starts a new transaction (autobegin).

    On SQLite, a unit of work also holds its store's write lock from entry to exit, so do not
    open one unit of work inside another on the same store: the inner one would wait for the
    outer (and fail after ``lock_timeout``)."""

    clients: SqlClients
    users: SqlUsers
    device_authorizations: SqlDeviceAuthorizations
    refresh_tokens: SqlRefreshTokens
    secrets: SqlSecrets
    browser_sessions: SqlBrowserSessions
    denylist: SqlDenylist
    audit_log: SqlAuditLog
    signing_keys: SqlSigningKeys
    grants: SqlGrants
    authorization_codes: SqlAuthorizationCodes
    outbox: SqlOutbox
    factors: SqlFactors
    consents: SqlConsents

    __slots__ = (
        "_conn",
        "_engine",
        "_held",
        "_lock",
        "_lock_timeout",
        "_read_only",
        "audit_log",
        "authorization_codes",
        "browser_sessions",
        "clients",
        "consents",
        "denylist",
        "device_authorizations",
        "factors",
        "grants",
        "outbox",
        "refresh_tokens",
        "secrets",
        "signing_keys",
        "users",
    )

    def __init__(
        self, engine: AsyncEngine, lock: asyncio.Lock | None = None, lock_timeout: float = 30.0,
        *, read_only: bool = False,
    ) -> None:
        self._engine = engine
        self._read_only = read_only
        self._lock = lock
        self._lock_timeout = lock_timeout
        self._held = False
        self._conn: AsyncConnection | None = None

    @property
    def connection(self) -> AsyncConnection:
        """The connection of this unit of work, for tests and maintenance tasks."""
        if self._conn is None:
            raise RuntimeError("the unit of work is not open: use `async with`")
        return self._conn

    async def __aenter__(self) -> Self:
        if self._conn is not None:
            raise RuntimeError("a unit of work is entered once")
        if self._lock is not None:
            try:
                async with asyncio.timeout(self._lock_timeout):
                    await self._lock.acquire()
                self._held = True
            except TimeoutError:
                raise StorageError(
                    f"waited {self._lock_timeout:g} s for the SQLite write lock"
                ) from None
        try:
            conn = await self._engine.connect()
        except DBAPIError as exc:
            self._release()
            raise StorageUnavailableError(f"cannot connect: {type(exc.orig).__name__}") from exc
        except BaseException:
            self._release()
            raise
        if self._read_only:
            # Autocommit: a read-only unit of work needs no BEGIN/ROLLBACK round trips (each
            # SELECT sees committed data); the SQLite "begin" listener also skips its BEGIN.
            await conn.execution_options(**{READ_ONLY_OPTION: True}, isolation_level="AUTOCOMMIT")
        self._conn = conn
        _open_repositories(self, conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self.connection, None
        try:
            if exc_type is None:
                # Closing rolls back whatever was not committed and returns the connection to
                # the pool.
                await conn.close()
            else:
                # Leaving on an error may mean the task is being cancelled (a client hung up):
                # the shield lets the rollback finish so the connection returns to the pool.
                await asyncio.shield(conn.close())
        finally:
            self._release()
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            # The server went away under this unit of work. SQLAlchemy has invalidated the pool
            # (every connection older than this error is replaced), so a retry starts clean.
            raise StorageUnavailableError(
                f"database connection lost: {type(exc.orig).__name__}") from exc

    def _release(self) -> None:
        if self._lock is not None and self._held:
            self._held = False
            self._lock.release()

    async def commit(self) -> None:
        await self.connection.commit()


class _Compiled:
    """A Core ``SELECT`` compiled once for SQLite: the same SQL text SQLAlchemy would send, the
    order of its positional bind parameters, and a row type named after its columns."""

    __slots__ = ("binds", "make_row", "sql")

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        columns = list(statement.selected_columns)
        for column in columns:  # the rows come straight from the driver, unconverted
            if column.type._cached_result_processor(dialect, None) is not None:
                raise StorageError(f"inline reads cannot convert {column.type!r}")
        binds = compiled.binds
        for name in compiled.positiontup or ():
            if binds[name].expanding or binds[name].type._cached_bind_processor(dialect):
                raise StorageError(f"inline reads cannot bind {name!r}")
        self.sql = compiled.string
        # (name, from the caller?, fixed value): a named parameter comes from the caller, a
        # literal from the statement itself (``.limit(1)`` and the like).
        self.binds = [(name, binds[name].required, binds[name].effective_value)
                      for name in compiled.positiontup or ()]
        row: Any = namedtuple("Row", [c.key for c in columns], rename=True)  # type: ignore[misc]
        self.make_row: Callable[[Sequence[Any]], Any] = row._make


_MAX_COMPILED = 256


class _InlineResult:
    """The slice of SQLAlchemy's ``Result`` that the repositories' reads use."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar_one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise StorageError("more than one row where at most one was expected")
        return self._rows[0][0] if self._rows else None

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class _InlineConnection:
    """Just enough of ``AsyncConnection`` for the repositories' reads, run inline on the event
    loop straight on the SQLite driver (see ``InlineReadUnitOfWork``). Each statement is the
    repositories' own Core statement, compiled once (``_Compiled``): SQLAlchemy's per-execution
    work (connection object, compiled-cache lookup, result machinery) was most of a poll's
    storage cost, and none of it is needed for a fixed SELECT on an autocommit connection."""

    __slots__ = ("_compiled", "_dbapi", "_dialect")

    def __init__(self, dbapi: Any, dialect: Dialect, compiled: dict[Select[Any], _Compiled]
                 ) -> None:
        self._dbapi = dbapi
        self._dialect = dialect
        self._compiled = compiled

    async def execute(self, statement: Any, parameters: Mapping[str, Any] | None = None
                      ) -> _InlineResult:
        compiled = self._compiled.get(statement)
        if compiled is None:
            if not isinstance(statement, Select):
                raise StorageError("a read-only unit of work only reads")
            if len(self._compiled) >= _MAX_COMPILED:  # bounded, should a caller build statements
                self._compiled.clear()
            # Keyed by the statement object itself (hashed by identity), which the cache keeps
            # alive: the repositories' statements are module constants, compiled once each.
            compiled = self._compiled[statement] = _Compiled(statement, self._dialect)
        given = parameters or {}
        values = [given[name] if required else fixed for name, required, fixed in compiled.binds]
        rows = self._dbapi.execute(compiled.sql, values).fetchall()
        make = compiled.make_row
        return _InlineResult([make(row) for row in rows])


class InlineReader:
    """The read-only side of a SQLite store: one autocommit connection per thread (in practice
    the event loop's), kept for the store's life instead of a pool checkout per read, and the
    compiled statements."""

    __slots__ = ("_compiled", "_local", "engine")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._compiled: dict[Select[Any], _Compiled] = {}
        self._local = threading.local()

    def connection(self) -> _InlineConnection:
        conn: _InlineConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            # This thread's connection, held checked out (kept here, so it is never returned
            # to the pool) until dispose() closes it.
            pooled: Any = self.engine.raw_connection()
            conn = _InlineConnection(pooled.driver_connection, self.engine.dialect,
                                     self._compiled)
            self._local.pooled, self._local.conn = pooled, conn
        return conn

    def dispose(self) -> None:
        self._local = threading.local()
        self.engine.dispose()


class InlineReadUnitOfWork:
    """A read-only unit of work on SQLite that runs its SELECTs inline on the event loop.

    Why: through aiosqlite every statement is several hand-offs to a worker thread and back,
    and on the polling path those wake-ups cost far more CPU than the query (an indexed lookup
    in SQLite's page cache takes tens of microseconds). The connection is in autocommit mode, so
    each SELECT reads its own committed WAL snapshot beside the writer, holds no lock, and leaves
    no transaction open across the awaits of interleaved units of work sharing it."""

    clients: SqlClients
    users: SqlUsers
    device_authorizations: SqlDeviceAuthorizations
    refresh_tokens: SqlRefreshTokens
    secrets: SqlSecrets
    browser_sessions: SqlBrowserSessions
    denylist: SqlDenylist
    audit_log: SqlAuditLog
    signing_keys: SqlSigningKeys
    grants: SqlGrants
    authorization_codes: SqlAuthorizationCodes

    outbox: SqlOutbox
    factors: SqlFactors
    consents: SqlConsents

    __slots__ = ("_reader", "audit_log", "authorization_codes", "browser_sessions", "clients",
                 "consents", "denylist", "device_authorizations", "factors", "grants", "outbox",
                 "refresh_tokens",
                 "secrets",
                 "signing_keys", "users")

    def __init__(self, reader: InlineReader) -> None:
        self._reader = reader

    async def __aenter__(self) -> Self:
        conn = cast(AsyncConnection, self._reader.connection())
        _open_repositories(self, conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        raise StorageError("a read-only unit of work has nothing to commit")


def _open_repositories(uow: SqlUnitOfWork | InlineReadUnitOfWork, conn: AsyncConnection) -> None:
    """Every repository of a unit of work, on its one connection (one list for both kinds)."""
    uow.clients = SqlClients(conn)
    uow.users = SqlUsers(conn)
    uow.device_authorizations = SqlDeviceAuthorizations(conn)
    uow.refresh_tokens = SqlRefreshTokens(conn)
    uow.secrets = SqlSecrets(conn)
    uow.browser_sessions = SqlBrowserSessions(conn)
    uow.denylist = SqlDenylist(conn)
    uow.audit_log = SqlAuditLog(conn)
    uow.signing_keys = SqlSigningKeys(conn)
    uow.grants = SqlGrants(conn)
    uow.authorization_codes = SqlAuthorizationCodes(conn)
    uow.outbox = SqlOutbox(conn)
    uow.factors = SqlFactors(conn)
    uow.consents = SqlConsents(conn)

"""The SQL store: SQL implementations of the storage ports (``storage/interface.py``) on
SQLAlchemy 2 Core, one module per port (``accounts``, ``devices``, ``refresh_tokens``, ``secrets``,
…) and the units of work that hold them (``unit_of_work``).

The same SQL runs on SQLite (aiosqlite) and PostgreSQL (asyncpg); only ``INSERT … ON CONFLICT DO
NOTHING`` needs a construct per dialect in SQLAlchemy. Every compare-and-set is
one ``UPDATE … WHERE <key> AND <expected state>`` whose rowcount says who won: the database, not
Python, decides between concurrent callers, so single use of a device code and of a rotated refresh
token holds across processes and hosts.

Statements are built once at import time with named bind parameters, so SQLAlchemy's compiled
cache (and asyncpg's prepared-statement cache) reuses them; SQLite's read-only units of work
compile them once more and run them straight on the driver (``_InlineConnection``).
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from .accounts import SqlClients, SqlUsers
from .devices import SqlDeviceAuthorizations
from .refresh_tokens import SqlRefreshTokens
from .secrets import SqlSecrets
from .unit_of_work import READ_ONLY_OPTION, InlineReader, InlineReadUnitOfWork, SqlUnitOfWork


class SqlStore:
    """The SQL store: a pooled async engine that hands out units of work.

    On SQLite, units of work of one store take turns through an ``asyncio.Lock``. SQLite has one
    writer at a time anyway (every transaction here is ``BEGIN IMMEDIATE``); without the lock,
    the waiters sleep-poll in SQLite's busy handler (up to 100 ms a try), which wastes most of
    the time under load and, past ``busy_timeout``, fails with "database is locked". The lock
    wakes the next waiter as soon as the previous one finishes. Other processes on the same file
    still meet ``busy_timeout``."""

    __slots__ = ("_engine", "_lock", "_lock_timeout", "_reader")

    def __init__(
        self, engine: AsyncEngine, *, lock_timeout: float = 30.0, reader: Engine | None = None
    ) -> None:
        self._engine = engine
        self._lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._lock_timeout = lock_timeout
        self._reader = None if reader is None else InlineReader(reader)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def unit_of_work(self, *, read_only: bool = False) -> SqlUnitOfWork | InlineReadUnitOfWork:
        # A read-only unit of work skips the write lock. On SQLite it reads inline (above); on
        # PostgreSQL it is an ordinary transaction on a pooled connection.
        if read_only:
            if self._reader is not None:
                return InlineReadUnitOfWork(self._reader)
            return SqlUnitOfWork(self._engine, None, self._lock_timeout, read_only=True)
        return SqlUnitOfWork(self._engine, self._lock, self._lock_timeout)

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._reader is not None:
            self._reader.dispose()
        await self._engine.dispose()


__all__ = [
    "READ_ONLY_OPTION",
    "InlineReadUnitOfWork",
    "SqlClients",
    "SqlDeviceAuthorizations",
    "SqlRefreshTokens",
    "SqlSecrets",
    "SqlStore",
    "SqlUnitOfWork",
    "SqlUsers",
]

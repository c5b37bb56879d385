"""Databases for tests: SQLite files and throwaway PostgreSQL databases.

PostgreSQL runs on this machine and in CI (``postgresql://postgres@127.0.0.1:5432``, trust auth);
override the server with ``DEVICEFLOW_TEST_POSTGRES_URL`` (any database on it that the user may
connect to and create databases from). Tests that need it call ``require_postgres()``: when the
server is unreachable they FAIL, unless ``DEVICEFLOW_SKIP_POSTGRES=1`` says to skip them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

T = TypeVar("T")

POSTGRES_URL_ENV = "DEVICEFLOW_TEST_POSTGRES_URL"
SKIP_POSTGRES_ENV = "DEVICEFLOW_SKIP_POSTGRES"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """The deviceflow URL of a SQLite file (absolute, so the working directory does not matter)."""
    return f"sqlite:///{Path(path).resolve()}"


def admin_postgres_url() -> str:
    """The PostgreSQL database tests connect to in order to create and drop their own."""
    return os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL


def _run(coro: Coroutine[Any, Any, T]) -> T:
    # On a helper thread with its own loop, so this works from sync code and from inside a
    # running event loop (an async fixture or test) alike.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def postgres_available() -> bool:
    """Whether the test PostgreSQL server accepts connections."""
    try:
        _run(_execute(admin_postgres_url(), "SELECT 1"))
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    return True


def skip_postgres() -> bool:
    """Whether ``DEVICEFLOW_SKIP_POSTGRES=1`` asks to skip PostgreSQL tests."""
    return os.environ.get(SKIP_POSTGRES_ENV, "").strip() == "1"


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL tests are switched off; fail it when PostgreSQL is
    unreachable (CI runs it, so a missing server is a broken environment, not a reason to skip)."""
    if skip_postgres():
        pytest.skip(f"{SKIP_POSTGRES_ENV}=1")
    if not postgres_available():
        pytest.fail(
            f"PostgreSQL is not reachable at {admin_postgres_url()} "
            f"(set {POSTGRES_URL_ENV}, or {SKIP_POSTGRES_ENV}=1 to skip these tests)",
            pytrace=False,
        )


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty, uniquely named database, yield its URL, and drop it afterwards.

    The name carries the process id and a random part, so concurrent runs and pytest-xdist
    workers never share a database. Dropping uses ``WITH (FORCE)`` so a connection a failed test
    left open cannot keep the database alive."""
    admin = admin_postgres_url()
    name = f"deviceflow_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    # The name is generated here from [a-z0-9_]: safe to put in DDL, which takes no parameters.
    _run(_execute(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(admin, name)
    finally:
        _run(_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


__all__ = [
    "DEFAULT_POSTGRES_URL",
    "POSTGRES_URL_ENV",
    "SKIP_POSTGRES_ENV",
    "admin_postgres_url",
    "fresh_postgres_database",
    "postgres_available",
    "require_postgres",
    "skip_postgres",
    "sqlite_url",
]

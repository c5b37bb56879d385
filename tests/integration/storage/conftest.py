"""Fixtures for the storage contract: one store per backend (memory, SQLite, PostgreSQL).

SQL stores get a fresh database each (a SQLite file under ``tmp_path``, or a throwaway PostgreSQL
database), migrated to head with the packaged Alembic history, so every test starts empty and
tests may run in parallel (pytest-xdist) without sharing state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.support.stores import Backend, empty_database_url, open_backend

SQL_PARAMS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
ALL_PARAMS = [pytest.param("memory", id="memory"), *SQL_PARAMS]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=SQL_PARAMS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty (unmigrated) SQLite or PostgreSQL database."""
    with empty_database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture(params=ALL_PARAMS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A migrated, empty store of every kind."""
    async with open_backend(request.param, tmp_path) as value:
        yield value


@pytest.fixture(params=SQL_PARAMS)
async def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A migrated, empty SQL store, for the transactional behaviour memory does not have."""
    async with open_backend(request.param, tmp_path) as value:
        yield value

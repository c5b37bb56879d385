"""Fixtures of the scale suite: a migrated PostgreSQL database per module and a claimed database
number on the machine's Redis. Helpers (servers, pages, seeding, SQL) are in
``tests/support/servers.py``.

PostgreSQL tests FAIL when the server is unreachable (``DEVICEFLOW_SKIP_POSTGRES=1`` skips them);
Redis tests likewise fail unless ``DEVICEFLOW_SKIP_REDIS=1``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.servers import claimed_redis_db, migrated_database, require_redis


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated PostgreSQL database of this module's own, dropped after the module."""
    with migrated_database("postgres", tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture(scope="module")
def redis_db_url() -> Iterator[str]:
    """A database number of the machine's Redis, claimed for this module and emptied after."""
    require_redis()
    with claimed_redis_db() as url:
        yield url

"""``client update --add-redirect-uri`` / ``--remove-redirect-uri`` from several operators (or
scripts) at once: each reads the registered set and writes it back, so the write is a
compare-and-set on the set it read, retried on a lost race. No edit is lost, on memory, SQLite
and PostgreSQL, with each operator on a store of its own (separate processes)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from tests.support.stores import Backend, open_backend

from deviceflow.protocol.models import (
    AUTHORIZATION_CODE_GRANT,
    REFRESH_TOKEN_GRANT,
    ClientChanges,
    ClientType,
)
from deviceflow.server.service import AdminService

pytestmark = pytest.mark.anyio

EDITORS = 8


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=[pytest.param("memory", id="memory"), pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with open_backend(request.param, tmp_path) as value:
        yield value


async def test_concurrent_additions_and_removals_all_land(backend: Backend) -> None:
    first = AdminService(backend.store, time.time)
    await first.add_client("web", "Web app", ClientType.PUBLIC,
                           [AUTHORIZATION_CODE_GRANT, REFRESH_TOKEN_GRANT], ["openid"],
                           redirect_uris=["https://old.example/cb"])
    async with backend.worker_stores(EDITORS, pool_size=2) as stores:
        editors = [AdminService(store, time.time) for store in stores]

        async def add(n: int) -> None:
            await editors[n].update_client(
                "web", ClientChanges(), add_redirect_uris=[f"https://app{n}.example/cb"])

        async with anyio.create_task_group() as tg:
            for n in range(EDITORS):
                tg.start_soon(add, n)
            tg.start_soon(lambda: editors[0].update_client(
                "web", ClientChanges(), remove_redirect_uris=["https://old.example/cb"]))
    [client] = [c for c in await first.list_clients() if c.client_id == "web"]
    assert client.redirect_uris == {f"https://app{n}.example/cb" for n in range(EDITORS)}


async def test_a_stale_expectation_changes_nothing(backend: Backend) -> None:
    admin = AdminService(backend.store, time.time)
    await admin.add_client("web", "Web app", ClientType.PUBLIC,
                           [AUTHORIZATION_CODE_GRANT], ["openid"],
                           redirect_uris=["https://a.example/cb"])
    async with backend.store.unit_of_work() as uow:
        changed = await uow.clients.update("web", ClientChanges(
            redirect_uris=frozenset({"https://b.example/cb"}),
            expected_redirect_uris=frozenset({"https://not-what-is-stored.example/cb"})))
        await uow.commit()
    assert changed is False
    [client] = await admin.list_clients()
    assert client.redirect_uris == {"https://a.example/cb"}

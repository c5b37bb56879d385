"""Fixtures shared by every test layer: a live deviceflow server on loopback."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from tests.support.limits import generous_limits

from deviceflow.protocol.models import GRANT_SHORT_NAMES as GRANT_NAMES
from deviceflow.server.embedded import free_port, serve_in_thread

T = TypeVar("T")

os.environ.setdefault("DEVICEFLOW_TOKEN_STORE", "file")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from any context (even inside a running event loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, factory).result()


@dataclass
class LiveServer:
    """A real deviceflow server (uvicorn + the app + SQLite) on a loopback port."""

    issuer: str
    db_url: str
    settings: Any

    def _admin(self, action: Callable[[Any], Awaitable[T]]) -> T:
        from deviceflow.server.bootstrap import open_store
        from deviceflow.server.service import AdminService

        async def main() -> T:
            store = await open_store(self.db_url, migrate=False)
            try:
                return await action(AdminService(store))
            finally:
                await store.close()

        return run_async(main)

    def add_user(self, username: str, password: str, name: str = "") -> str:
        """Add a user; returns its ``sub``."""
        user = self._admin(lambda admin: admin.add_user(username, password, name))
        return str(user.user_id)

    def add_client(
        self,
        client_id: str,
        *,
        name: str = "Test",
        public: bool = True,
        grants: tuple[str, ...] = ("device_code", "refresh_token"),
        scopes: tuple[str, ...] = ("openid", "profile", "offline_access"),
        expires_in: int | None = None,
        redirect_uris: tuple[str, ...] = (),
    ) -> str | None:
        """Register a client; returns the secret of a confidential one."""
        from deviceflow.protocol.models import ClientType

        kind = ClientType.PUBLIC if public else ClientType.CONFIDENTIAL
        _, secret = self._admin(lambda admin: admin.add_client(
            client_id, name, kind, [GRANT_NAMES.get(g, g) for g in grants], list(scopes),
            expires_in, list(redirect_uris),
        ))
        return secret


def make_settings(tmp: Path, **overrides: Any) -> Any:
    from deviceflow.config.server import ServerSettings

    port = free_port()
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "issuer": f"http://127.0.0.1:{port}",
        "db": f"sqlite:///{tmp / 'deviceflow.sqlite3'}",
        "interval": 1,
        "log_format": "text",
        # Every test talks from 127.0.0.1 to this one server: budgets no test meets by accident.
        **generous_limits(),
    }
    values.update(overrides)
    return ServerSettings(**values)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the whole session (interval 1 s so polling tests run fast). Tests isolate
    themselves with their own client ids and usernames."""
    settings = make_settings(tmp_path_factory.mktemp("live-server"))
    with serve_in_thread(settings) as base:
        httpx.get(base + "/healthz", timeout=5).raise_for_status()
        yield LiveServer(issuer=base, db_url=settings.db, settings=settings)

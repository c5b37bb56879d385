"""Data preparation for bench/run.py, through deviceflow's own storage layer.

- ``prepare(db_url)``: migrate to head, create the server secrets and keys (as ``deviceflow
  serve`` does before it starts workers), and register the public client ``bench-device``.
- ``fill_pending(db_url, n)``: bulk-insert ``n`` pending device authorizations that nobody polls
  (random HMAC-shaped hashes, one multi-row INSERT per 5,000 rows), for the 100k scale check.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.models import DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT, ClientType
from deviceflow.server.bootstrap import key_source, open_store
from deviceflow.server.keys import load_keyring
from deviceflow.server.service import AdminService
from deviceflow.storage.interface import AlreadyExistsError
from deviceflow.storage.sql import tables as t

CLIENT_ID = "bench-device"


async def _prepare(db_url: str) -> None:
    store = await open_store(db_url, migrate=True)
    try:
        # The key-encryption key `deviceflow serve --db db_url` will use (its key file).
        await load_keyring(store, key_source(ServerSettings(db=db_url)), "RS256", ())
        with contextlib.suppress(AlreadyExistsError):
            await AdminService(store).add_client(
                CLIENT_ID, "Benchmark device", ClientType.PUBLIC,
                [DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT], ["openid", "profile", "offline_access"],
            )
    finally:
        await store.close()


async def _fill_pending(db_url: str, n: int, batch: int = 5000) -> float:
    store = await open_store(db_url, migrate=False)
    started = time.perf_counter()
    now = time.time()
    try:
        engine = store.engine  # type: ignore[attr-defined]
        done = 0
        while done < n:
            rows = [
                {
                    "device_code_hash": secrets.token_hex(32),
                    "user_code_hash": secrets.token_hex(32),
                    "client_id": CLIENT_ID,
                    "scope": "openid",
                    "status": "pending",
                    "created_at": now,
                    "expires_at": now + 3600,
                    "interval": 5,
                    "ip_address": "127.0.0.1",
                    "user_agent": "bench-filler",
                    "last_polled_at": None,
                    "user_id": None,
                    "auth_time": None,
                    "decided_at": None,
                }
                for _ in range(min(batch, n - done))
            ]
            async with engine.begin() as conn:
                await conn.execute(t.device_authorizations.insert(), rows)
            done += len(rows)
    finally:
        await store.close()
    return time.perf_counter() - started


async def _count_pending(db_url: str) -> int:
    from sqlalchemy import func, select

    store = await open_store(db_url, migrate=False)
    try:
        async with store.engine.connect() as conn:  # type: ignore[attr-defined]
            stmt = select(func.count()).select_from(t.device_authorizations).where(
                t.device_authorizations.c.status == "pending"
            )
            return int((await conn.execute(stmt)).scalar_one())
    finally:
        await store.close()


def prepare(db_url: str) -> None:
    asyncio.run(_prepare(db_url))


def fill_pending(db_url: str, n: int) -> float:
    return asyncio.run(_fill_pending(db_url, n))


def count_pending(db_url: str) -> int:
    return asyncio.run(_count_pending(db_url))

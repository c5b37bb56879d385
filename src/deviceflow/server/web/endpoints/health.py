"""Liveness and readiness for load balancers and orchestrators.

``/healthz``: the process answers (it touches nothing else), so a restart is the remedy when it
does not. ``/readyz``: the process can serve, i.e. its database answers a trivial read and Redis
(when configured) a ``PING``; 503 sends traffic elsewhere without restarting anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ....storage.interface import Store
from ..responses import json_response

log = logging.getLogger("deviceflow.web")

READY_TIMEOUT = 2.0
"""Seconds each dependency has to answer before it counts as down."""

_PROBE_CLIENT_ID = "readyz-probe"


class Readiness:
    """The dependencies ``/readyz`` checks, with a Redis connection of its own (short
    timeouts) so that a probe never waits in line behind request traffic."""

    def __init__(self, store: Store, redis_url: str | None) -> None:
        self.store = store
        self._down: set[str] = set()
        self._redis: Any = None
        if redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(redis_url, socket_timeout=0.5,
                                            socket_connect_timeout=0.5)

    async def check(self) -> dict[str, str]:
        checks = {"database": await self._probe("database", self._database)}
        if self._redis is not None:
            checks["redis"] = await self._probe("redis", self._redis.ping)
        return checks

    async def _database(self) -> None:
        # A primary-key lookup of a client that never exists: one indexed read, no row.
        async with self.store.unit_of_work(read_only=True) as uow:
            await uow.clients.get(_PROBE_CLIENT_ID)

    async def _probe(self, name: str, probe: Any) -> str:
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await probe()
        except Exception as exc:
            if name not in self._down:  # once per outage, not once per probe
                self._down.add(name)
                log.warning("readiness: %s unavailable (%s)", name, type(exc).__name__)
            return "unavailable"
        if name in self._down:
            self._down.discard(name)
            log.warning("readiness: %s available again", name)
        return "ok"

    async def close(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"}, no_store=True)


async def readyz(request: Request) -> Response:
    """200 ``{"status": "ok", ...}`` when every dependency answers, else 503 naming which not."""
    checks = await request.app.state.readiness.check()
    ready = all(v == "ok" for v in checks.values())
    return json_response({"status": "ok" if ready else "unavailable", **checks},
                         200 if ready else 503, no_store=True)


routes = [
    Route("/healthz", healthz, methods=["GET"], name="healthz"),
    Route("/readyz", readyz, methods=["GET"], name="readyz"),
]

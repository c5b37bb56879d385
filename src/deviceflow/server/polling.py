"""Where the polling state of RFC 8628 §3.5 lives: when each device code was last polled and its
current interval (which ``slow_down`` grows by 5 s).

Two implementations of one small port, so that a pending poll never writes to the database:

- ``MemoryPollState`` (without ``--redis``) keeps it in this process: correct for one process
  only, like the in-process brute-force counters (docs/operator.md says so).
- ``RedisPollState`` keeps it in Redis, shared by every worker and host. If Redis is
  unreachable, polling fails *open*: the poll is answered from the database alone
  (``authorization_pending``, never a wrongful ``slow_down``), and the outage is logged.

Single use never depends on either: redemption is a storage compare-and-set.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Protocol

from ..protocol.models import DeviceAuthorization, Timestamp

log = logging.getLogger("deviceflow.polling")


class PollState(Protocol):
    async def load(self, record: DeviceAuthorization) -> DeviceAuthorization:
        """``record`` with its current ``last_polled_at`` and ``interval``."""

    async def save(self, record: DeviceAuthorization, loaded: DeviceAuthorization) -> bool:
        """Store ``record``'s poll time and interval if no other poll changed them since
        ``loaded``; False when another poll won (that poll came too fast by definition)."""

    async def close(self) -> None: ...


_SWEEP_EVERY = 1024
"""Saves between sweeps of expired entries, so memory stays bounded by the live codes."""


class MemoryPollState:
    """Poll times in a dict of this process. The check-and-set in ``save`` has no ``await``
    between its read and its write, so it is atomic under asyncio."""

    def __init__(self, clock: Any = time.time) -> None:
        self._state: dict[str, tuple[Timestamp, int, Timestamp]] = {}
        self._clock = clock
        self._saves = 0

    async def load(self, record: DeviceAuthorization) -> DeviceAuthorization:
        entry = self._state.get(record.device_code_hash)
        if entry is None:
            return record
        last, interval, _ = entry
        return dataclasses.replace(record, last_polled_at=last, interval=interval)

    async def save(self, record: DeviceAuthorization, loaded: DeviceAuthorization) -> bool:
        entry = self._state.get(record.device_code_hash)
        if (entry[0] if entry else loaded.last_polled_at) != loaded.last_polled_at:
            return False
        assert record.last_polled_at is not None
        self._state[record.device_code_hash] = (
            record.last_polled_at, record.interval, record.expires_at
        )
        self._saves += 1
        if self._saves % _SWEEP_EVERY == 0:
            now = self._clock()
            for key in [k for k, (_, _, exp) in self._state.items() if exp <= now]:
                del self._state[key]
        return True

    def __len__(self) -> int:
        return len(self._state)

    async def close(self) -> None:
        self._state.clear()


# Compare-and-set in one round trip: write only if the stored poll time is still what we read.
_CAS = """
local current = redis.call('HGET', KEYS[1], 'last')
if (current or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'last', ARGV[2], 'interval', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

_LOG_EVERY = 30.0
_COOL_DOWN = 1.0
"""Seconds to stop asking Redis after a failure. A poll holds a database transaction (on SQLite,
the write lock) while it waits on Redis, so waiting out the timeout on every poll of an outage
would queue polls behind each other; instead one poll per cool-down probes Redis and the rest
fail open at once."""


class RedisPollState:
    def __init__(self, url: str, *, prefix: str = "deviceflow:poll:") -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=10
        )
        self._prefix = prefix
        self._cas: Any = self._redis.register_script(_CAS)
        self._last_warning = 0.0
        self._down_until = 0.0

    def _skip(self) -> bool:
        """True while Redis is known to be down; once the cool-down is over, this caller probes
        it (and the others keep skipping until the probe has answered)."""
        if not self._down_until:
            return False
        now = time.monotonic()
        if now < self._down_until:
            return True
        self._down_until = now + _COOL_DOWN
        return False

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        self._down_until = now + _COOL_DOWN
        if now - self._last_warning > _LOG_EVERY:
            self._last_warning = now
            log.warning("redis unavailable for polling state (%s); polling fails open",
                        type(exc).__name__)

    async def load(self, record: DeviceAuthorization) -> DeviceAuthorization:
        if self._skip():  # redis down: fail open
            return dataclasses.replace(record, last_polled_at=None)
        try:
            values = await self._redis.hmget(self._prefix + record.device_code_hash,
                                             "last", "interval")
        except Exception as exc:  # redis down: fail open
            self._warn(exc)
            return dataclasses.replace(record, last_polled_at=None)
        self._down_until = 0.0
        last, interval = values
        return dataclasses.replace(
            record,
            last_polled_at=float(last) if last else None,
            interval=int(interval) if interval else record.interval,
        )

    async def save(self, record: DeviceAuthorization, loaded: DeviceAuthorization) -> bool:
        expected = "" if loaded.last_polled_at is None else repr(loaded.last_polled_at)
        # Keep the state as long as the code can still be polled.
        ttl_ms = max(1000, int((record.expires_at - (record.last_polled_at or 0)) * 1000) + 1000)
        if self._skip():  # redis down: fail open
            return True
        try:
            won = await self._cas(
                keys=[self._prefix + record.device_code_hash],
                args=[expected, repr(record.last_polled_at), record.interval, ttl_ms],
            )
        except Exception as exc:  # redis down: fail open
            self._warn(exc)
            return True
        return bool(won)

    async def close(self) -> None:
        await self._redis.aclose()

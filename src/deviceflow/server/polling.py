"""Where the polling state of RFC 8628 §3.5 lives: when each device code was last polled and its
current interval (which ``slow_down`` grows by 5 s).

Two implementations of one small port, so that a pending poll never writes to the database:

- ``MemoryPollState`` (without ``--redis``) keeps it in this process: correct for one process
  only, like the in-process brute-force counters (docs/operator.md says so).
- ``RedisPollState`` keeps it in Redis, shared by every worker and host. If Redis is
  unreachable, polling fails *open*: the poll is answered from the database alone
  (``authorization_pending``, never a wrongful ``slow_down``), and the outage is logged.

``RedisPollState`` also keeps a copy of a code's record while it is pending, so that most
pending polls are answered without reading the database (see ``PENDING_COPY_SECONDS``).

Single use never depends on either: redemption is a storage compare-and-set.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from ..protocol.models import DeviceAuthorization, DeviceStatus, RequestOrigin, Timestamp

log = logging.getLogger("deviceflow.polling")

PENDING_COPY_SECONDS = 30.0
"""How long a pending poll may be answered from Redis's copy of the record instead of the
database. A decision (approve or deny) marks the code in Redis as soon as it is committed, so
the next poll reads the database and sees it at once; only if that mark cannot be written
(Redis unreachable at that moment and back by the next poll) does the copy stand in for the
decision, for at most this long. With the default 5 s interval, one poll in six reads the
database."""


@dataclass(frozen=True, slots=True)
class PollSnapshot:
    """What the polling state knows of one device code when a poll arrives."""

    last_polled_at: Timestamp | None = None
    interval: int | None = None
    pending: DeviceAuthorization | None = None
    """A recent copy of the stored record, taken while it was pending and not decided since
    (Redis only); None means: read the database."""

    def apply(self, stored: DeviceAuthorization) -> DeviceAuthorization:
        """``stored`` with the poll time and interval of the polling state, which owns them."""
        if self.last_polled_at == stored.last_polled_at and self.interval is None:
            return stored
        return dataclasses.replace(stored, last_polled_at=self.last_polled_at,
                                   interval=self.interval or stored.interval)


class PollState(Protocol):
    async def load(self, device_code_hash: str, now: Timestamp) -> PollSnapshot: ...

    async def save(
        self, record: DeviceAuthorization, loaded: PollSnapshot, now: Timestamp,
        *, pending: DeviceAuthorization | None = None,
    ) -> bool:
        """Store ``record``'s poll time and interval if no other poll changed them since
        ``loaded``; False when another poll won (that poll came too fast by definition).
        ``pending``: the record as the database just gave it, still pending, to keep a copy of
        (ignored once the code is marked decided)."""

    async def decided(self, device_code_hash: str, expires_at: Timestamp, now: Timestamp
                      ) -> None:
        """The code was approved or denied (committed): stop answering from any copy."""

    async def close(self) -> None: ...


_SWEEP_EVERY = 1024
"""Saves between sweeps of expired entries, so memory stays bounded by the live codes."""


class MemoryPollState:
    """Poll times in a dict of this process. The check-and-set in ``save`` has no ``await``
    between its read and its write, so it is atomic under asyncio. It keeps no copies of
    pending records: a decision made by another worker process would not reach them."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[Timestamp, int, Timestamp]] = {}
        self._saves = 0

    async def load(self, device_code_hash: str, now: Timestamp) -> PollSnapshot:
        entry = self._state.get(device_code_hash)
        if entry is None:
            return PollSnapshot()
        return PollSnapshot(entry[0], entry[1])

    async def save(
        self, record: DeviceAuthorization, loaded: PollSnapshot, now: Timestamp,
        *, pending: DeviceAuthorization | None = None,
    ) -> bool:
        entry = self._state.get(record.device_code_hash)
        if (entry[0] if entry else None) != loaded.last_polled_at:
            return False
        assert record.last_polled_at is not None
        self._state[record.device_code_hash] = (
            record.last_polled_at, record.interval, record.expires_at
        )
        self._saves += 1
        if self._saves % _SWEEP_EVERY == 0:
            for key in [k for k, (_, _, exp) in self._state.items() if exp <= now]:
                del self._state[key]
        return True

    async def decided(self, device_code_hash: str, expires_at: Timestamp, now: Timestamp
                      ) -> None:
        return None

    def __len__(self) -> int:
        return len(self._state)

    async def close(self) -> None:
        self._state.clear()


def _dump_pending(record: DeviceAuthorization, now: Timestamp) -> str:
    return json.dumps([
        now, record.device_code_hash, record.user_code_hash, record.client_id,
        list(record.scope), record.status.value, record.created_at, record.expires_at,
        record.interval, record.origin.ip_address, record.origin.user_agent,
        record.last_polled_at, record.user_id, record.auth_time, record.decided_at,
    ], separators=(",", ":"))


def _load_pending(text: bytes, now: Timestamp) -> DeviceAuthorization | None:
    """The copy, if it is still fresh; None if stale or unreadable (then: the database)."""
    try:
        (copied_at, device_code_hash, user_code_hash, client_id, scope, status, created_at,
         expires_at, interval, ip_address, user_agent, last_polled_at, user_id, auth_time,
         decided_at) = json.loads(text)
        if not 0 <= now - copied_at < PENDING_COPY_SECONDS:
            return None
        return DeviceAuthorization(
            device_code_hash=device_code_hash, user_code_hash=user_code_hash,
            client_id=client_id, scope=tuple(scope), status=DeviceStatus(status),
            created_at=created_at, expires_at=expires_at, interval=interval,
            origin=RequestOrigin(ip_address, user_agent), last_polled_at=last_polled_at,
            user_id=user_id, auth_time=auth_time, decided_at=decided_at,
        )
    except (ValueError, TypeError):  # another version's format: not worth a failed poll
        return None


# Compare-and-set in one round trip: write only if the stored poll time is still what we read.
# The pending copy is written only while the code is not marked decided, so a poll that read
# "pending" just before a decision cannot put back a copy the decision has ruled out.
_CAS = """
local current = redis.call('HGET', KEYS[1], 'last')
if (current or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'last', ARGV[2], 'interval', ARGV[3])
if ARGV[5] ~= '' and redis.call('HEXISTS', KEYS[1], 'decided') == 0 then
  redis.call('HSET', KEYS[1], 'pending', ARGV[5])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

_DECIDED = """
redis.call('HSET', KEYS[1], 'decided', '1')
redis.call('HDEL', KEYS[1], 'pending')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

_LOG_EVERY = 30.0
_COOL_DOWN = 1.0
"""Seconds to stop asking Redis after a failure. A poll waits on Redis before it is answered,
so waiting out the timeout on every poll of an outage would queue polls behind each other;
instead one poll per cool-down probes Redis and the rest fail open at once."""


def _ttl_ms(expires_at: Timestamp, now: Timestamp) -> int:
    # Keep the state as long as the code can still be polled.
    return max(1000, int((expires_at - now) * 1000) + 1000)


class RedisPollState:
    def __init__(self, url: str, *, prefix: str = "deviceflow:poll:") -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=10
        )
        self._prefix = prefix
        self._cas: Any = self._redis.register_script(_CAS)
        self._decided: Any = self._redis.register_script(_DECIDED)
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

    async def load(self, device_code_hash: str, now: Timestamp) -> PollSnapshot:
        if self._skip():  # redis down: fail open
            return PollSnapshot()
        try:
            last, interval, pending, decided = await self._redis.hmget(
                self._prefix + device_code_hash, "last", "interval", "pending", "decided")
        except Exception as exc:  # redis down: fail open
            self._warn(exc)
            return PollSnapshot()
        self._down_until = 0.0
        return PollSnapshot(
            last_polled_at=float(last) if last else None,
            interval=int(interval) if interval else None,
            pending=_load_pending(pending, now) if pending and not decided else None,
        )

    async def save(
        self, record: DeviceAuthorization, loaded: PollSnapshot, now: Timestamp,
        *, pending: DeviceAuthorization | None = None,
    ) -> bool:
        expected = "" if loaded.last_polled_at is None else repr(loaded.last_polled_at)
        if self._skip():  # redis down: fail open
            return True
        try:
            won = await self._cas(
                keys=[self._prefix + record.device_code_hash],
                args=[expected, repr(record.last_polled_at), record.interval,
                      _ttl_ms(record.expires_at, now),
                      "" if pending is None else _dump_pending(pending, now)],
            )
        except Exception as exc:  # redis down: fail open
            self._warn(exc)
            return True
        return bool(won)

    async def decided(self, device_code_hash: str, expires_at: Timestamp, now: Timestamp
                      ) -> None:
        try:
            await self._decided(keys=[self._prefix + device_code_hash],
                                args=[_ttl_ms(expires_at, now)])
        except Exception as exc:
            # The decision is committed; polls see it once the copy is PENDING_COPY_SECONDS old.
            self._warn(exc)

    async def close(self) -> None:
        await self._redis.aclose()

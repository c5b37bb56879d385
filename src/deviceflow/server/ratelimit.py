"""Budgets that hold when requests race: brute force on the verification pages (RFC 8628 §5.1),
password sign-in, and the flood limits of the device authorization endpoint (§3.1).

RFC 8628 §5.1: "the authorization server ... SHOULD implement rate limiting" of user code
guesses. Every attempt *spends* one unit of each of its budgets before it is judged (hit-then-test:
``limits``' moving-window ``hit`` adds an entry only if it fits, in one atomic step — under the
key's lock in memory, one Lua script on Redis), so N concurrent attempts against a budget of L
let exactly min(N, L) through. A check first and a count after (check-then-act) let every racer
pass the check together.

An attempt that turns out right gives its own unit back (``refund``): one atomic storage step
that removes the earliest entry stamped at or after the moment this attempt started spending.
Its own entry is such an entry, so what is removed is never newer than what it spent: the window
after a refund is at least as strict as if that very entry had never been taken, and wrong
attempts admitted in any window stay ≤ the limit, however they interleave with right ones.

Counters live in the ``limits`` library's storage: in process by default (one process only), or
Redis when configured so that every worker and host shares them.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

log = logging.getLogger("deviceflow.ratelimit")

UNAVAILABLE_RETRY_AFTER = 30
"""Seconds to wait when the counters' storage (Redis) is unreachable."""

LIVE_CODES = "device_codes_per_client"
"""The budget of device codes a client may hold at once (its window is the code lifetime)."""

NETWORK_CODES = "codes_per_network"
"""Not a budget: the tally of device codes asked for from one network (its window is the code
lifetime), read by the proximity judgement (RFC 10027 §6.1.11)."""
_NETWORK_TALLY_CEILING = 1_000_000  # never reached: the tally only counts, it never refuses

_RefundScript = Callable[[list[str], list[str]], Awaitable[object]]

_TRIP_MEMORY = 10_000
"""Most (budget, key) trips remembered for the once-per-window warning."""

# Give back one unit of a moving window (limits' list of entry timestamps, newest first): remove
# one entry with the smallest timestamp at or after ARGV[1]. The caller's own entry qualifies, so
# the entry removed is never newer than the caller's. One script: atomic on the server.
_REFUND_LUA = """
local since = tonumber(ARGV[1])
local pick, value = nil, nil
for _, v in ipairs(redis.call('lrange', KEYS[1], 0, -1)) do
  local t = tonumber(v)
  if t and t >= since and (pick == nil or t < pick) then pick, value = t, v end
end
if value == nil then return 0 end
return redis.call('lrem', KEYS[1], 1, value)
"""


@dataclass(frozen=True, slots=True)
class BruteForcePolicy:
    """Limits in the ``limits`` notation ("5/10 minutes"), and the live device-code cap."""

    code_per_session: str = "5/10 minutes"
    code_per_ip: str = "20/hour"
    code_global: str = "1000/hour"
    code_per_account: str = "20/hour"
    login_per_account: str = "5/15 minutes"
    login_per_ip: str = "30/hour"
    mfa_per_account: str = "5/15 minutes"
    """Wrong verification (TOTP or recovery) codes per account, spent before judging."""
    device_authorization_per_ip: str = "300/minute"
    """Device authorization requests per client and client IP."""
    device_codes_per_client: int = 10_000
    """Device codes issued to one client within one code lifetime: a bound on its live codes."""


@dataclass(frozen=True, slots=True)
class Check:
    """One budget: which limit, and whose."""

    name: str
    item: RateLimitItem
    key: str


class Held:
    """The units an allowed attempt holds, which ``Limiter.refund`` gives back at most once."""

    __slots__ = ("_checks", "since")

    def __init__(self, checks: Sequence[Check], since: float) -> None:
        self._checks = tuple(checks)
        self.since = since
        """``time.time()`` just before spending began: each unit is stamped at or after it."""

    def take(self) -> tuple[Check, ...]:
        """The units, once; afterwards none (no await here, so no two refunds both get them)."""
        checks, self._checks = self._checks, ()
        return checks


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of spending one unit from each budget of an attempt."""

    allowed: bool
    retry_after: int = 0
    tripped: tuple[str, ...] = field(default_factory=tuple)
    held: Held | None = field(default=None, compare=False)
    """What an allowed attempt holds; None when refused (a refused attempt holds nothing)."""
    first_trip: bool = False
    """A refusal that is the first, in this process, by one of its budgets for its key within
    that budget's window: the one that is logged and audited, so an attack past a budget does
    not write a log line or an audit row per request."""


def ip_key(address: str) -> str:
    """The per-IP counter key. One IPv6 subscriber usually holds a whole /64, so IPv6 addresses
    count per /64 prefix; otherwise one host could rotate through 2^64 fresh budgets."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def key_digest(key: str) -> str:
    """What the logs show of a counter's key (an IP, a username, a session id): a short SHA-256
    prefix, so one attacker's trips correlate across lines without the key in clear."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class Limiter:
    """A thin, typed wrapper over ``limits``' moving-window limiter: spend, then maybe refund."""

    def __init__(
        self, policy: BruteForcePolicy, storage_uri: str = "async+memory://",
        *, on_trip: Callable[[str], None] | None = None,
    ) -> None:
        self.policy = policy
        self._on_trip = on_trip  # told each refusing budget's name (the throttle counter)
        options: dict[str, float | str | bool] = {}
        if storage_uri.startswith("async+redis"):
            # redis-py's asyncio client (already a dependency) instead of limits' coredis default;
            # short timeouts so an outage is noticed at once instead of stalling requests.
            options = {"implementation": "redispy", "socket_timeout": 0.5,
                       "socket_connect_timeout": 0.5}
        storage = storage_from_string(storage_uri, **options)
        if not isinstance(storage, Storage):
            raise ValueError(f"not an async rate-limit storage: {storage_uri!r}")
        self._storage: Storage = storage
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._redis: RedispyBridge | None = None
        self._refund_script: _RefundScript | None = None
        if isinstance(storage, RedisStorage) and isinstance(storage.bridge, RedispyBridge):
            self._redis = storage.bridge
            # limits types its client as the sync one; on redispy's asyncio client the
            # registered script is awaitable (redis.commands.core.AsyncScript).
            script: Any = self._redis.get_connection().register_script(_REFUND_LUA.encode())
            self._refund_script = script
        self._last_warning = 0.0
        self._trips: dict[tuple[str, str], float] = {}
        self._items = {name: parse(value) for name, value in _rates(policy)}

    def check(self, name: str, who: str) -> Check:
        return Check(name, self._items[name], who)

    def live_codes_check(self, client_id: str, lifetime: int) -> Check:
        """At most ``device_codes_per_client`` codes issued to ``client_id`` in a moving window
        as long as the code lifetime. A live code was issued less than one lifetime ago, so its
        unit is still in the window: the window's count bounds the codes the client holds."""
        item = RateLimitItemPerSecond(self.policy.device_codes_per_client, lifetime)
        return Check(LIVE_CODES, item, client_id)

    def network_codes_check(self, network: str, window: int) -> Check:
        """The tally of codes asked for from ``network`` in the last ``window`` seconds."""
        return Check(NETWORK_CODES, RateLimitItemPerSecond(_NETWORK_TALLY_CEILING, window),
                     network)

    async def first_time(self, name: str, key: str, window: int) -> bool:
        """True for the first call with ``key`` in ``window`` seconds, across workers: one atomic
        hit-then-test of a budget of one (a notice sent once per device code, not per page
        view). True when the storage is unreachable: a repeated notice beats a lost one."""
        try:
            return bool(await self._limiter.hit(RateLimitItemPerSecond(1, window), name, key))
        except Exception as exc:
            self._warn(exc)
            return True

    async def tally(self, check: Check) -> int:
        """How many entries ``check``'s window holds now (after any ``count`` into it). Each
        ``count`` is an atomic hit in the shared storage, so racing requests are all counted;
        0 when the storage is unreachable (a missing signal, not a refusal)."""
        try:
            stats = await self._limiter.get_window_stats(check.item, check.name, check.key)
        except Exception as exc:
            self._warn(exc)
            return 0
        return check.item.amount - stats.remaining

    async def spend(self, checks: Sequence[Check], *, fail_open: bool = False) -> Verdict:
        """Take one unit from each budget, in order, each hit-then-test in one atomic step.

        All or nothing: when a budget refuses, the units already taken from the earlier ones are
        given back (this attempt is not judged, so it spent nothing), and the later budgets are
        only read, for the longest wait among those that are spent. Order the narrowest budget
        first, so that a throttled attacker stops at their own budget and drains no shared one.

        If the counters' storage is unreachable, fail *closed* (code entry and sign-in: an
        unlimited guesser is worse than a short outage) unless ``fail_open``."""
        since = time.time()
        taken: list[Check] = []
        try:
            for n, c in enumerate(checks):
                if await self._limiter.hit(c.item, c.name, c.key):
                    taken.append(c)
                    continue
                returned, taken = taken, []  # emptied first: never given back twice
                await self._give_back(returned, since)
                return await self._refused(c, checks[n + 1:])
        except Exception as exc:
            self._warn(exc)
            with contextlib.suppress(Exception):
                await self._give_back(taken, since)
            if fail_open:
                return Verdict(True, held=Held((), since))
            if self._on_trip is not None:
                self._on_trip("unavailable")
            return Verdict(False, UNAVAILABLE_RETRY_AFTER, ("unavailable",))
        return Verdict(True, held=Held(taken, since))

    async def refund(self, verdict: Verdict) -> None:
        """Give back the units of an attempt that turned out right (or was never carried out),
        once. A failed refund leaves the unit spent: the budget errs on the strict side."""
        if verdict.held is None:
            return
        try:
            await self._give_back(verdict.held.take(), verdict.held.since)
        except Exception as exc:
            self._warn(exc)

    async def count(self, checks: Sequence[Check]) -> None:
        """Add an entry to budgets that do not gate this attempt (a signed-in person's wrong code
        still counts towards the global budget); a full budget simply stays full."""
        try:
            for c in checks:
                await self._limiter.hit(c.item, c.name, c.key)
        except Exception as exc:
            self._warn(exc)

    async def _refused(self, tripped: Check, rest: Sequence[Check]) -> Verdict:
        names = [tripped.name]
        wait = await self._wait(tripped)
        first = self._log_trip(tripped)
        for c in rest:
            if not await self._limiter.test(c.item, c.name, c.key):
                names.append(c.name)
                wait = max(wait, await self._wait(c))
                first = self._log_trip(c) or first
        return Verdict(False, max(1, math.ceil(wait)), tuple(names), first_trip=first)

    async def _wait(self, c: Check) -> float:
        stats = await self._limiter.get_window_stats(c.item, c.name, c.key)
        return stats.reset_time - time.time()

    async def _give_back(self, checks: Sequence[Check], since: float) -> None:
        for c in checks:
            await self._refund_one(c.item.key_for(c.name, c.key), since)

    async def _refund_one(self, key: str, since: float) -> None:
        storage = self._storage
        if self._redis is not None and self._refund_script is not None:
            await self._refund_script([self._redis.prefixed_key(key)], [repr(since)])
            return
        if not isinstance(storage, MemoryStorage):
            raise TypeError(f"no refund for {type(storage).__name__}")
        # limits' MemoryStorage keeps a key's entries newest first in ``events``; nothing below
        # awaits between the search and the removal, and the key's lock keeps its expiry sweep
        # out, so the removal is atomic like the hit.
        async with storage.locks[key]:
            entries = storage.events.get(key, [])
            fits = [(e.atime, i) for i, e in enumerate(entries) if e.atime >= since]
            if fits:
                del entries[min(fits)[1]]

    def _log_trip(self, c: Check) -> bool:
        """One structured WARNING per budget and key per window: an operator sees the attack,
        the log does not grow with it. The key is logged as a digest, never in clear. Every
        trip is counted (``on_trip``); True when this trip was the first of its window (and so
        logged)."""
        if self._on_trip is not None:
            self._on_trip(c.name)
        now = time.monotonic()
        digest = key_digest(c.key)
        if self._trips.get((c.name, digest), 0.0) > now:
            return False
        if len(self._trips) >= _TRIP_MEMORY:
            self._trips = {k: until for k, until in self._trips.items() if until > now}
            if len(self._trips) >= _TRIP_MEMORY:
                self._trips.clear()
        self._trips[(c.name, digest)] = now + c.item.get_expiry()
        log.warning("rate limit %s spent for key %s (%s)", c.name, digest, c.item,
                    extra={"budget": c.name, "key_digest": digest})
        return True

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > 30:
            self._last_warning = now
            log.warning("rate-limit storage unavailable (%s); code entry and sign-in fail closed,"
                        " device authorization fails open", type(exc).__name__)

    async def close(self) -> None:
        """Drop the storage's connections (Redis); memory storage has none."""
        with contextlib.suppress(Exception):
            client = getattr(self._storage, "bridge", None)
            storage = getattr(client, "storage", None)
            if storage is not None and hasattr(storage, "aclose"):
                await storage.aclose()

    async def reset(self) -> None:
        await self._storage.reset()


def _rates(policy: BruteForcePolicy) -> list[tuple[str, str]]:
    """The policy's rates (the live-code cap is a count, its window the client's lifetime)."""
    return [(name, getattr(policy, name)) for name in policy.__dataclass_fields__
            if name != LIVE_CODES]

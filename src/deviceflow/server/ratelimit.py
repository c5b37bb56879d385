"""Brute-force limits for the verification pages (RFC 8628 §5.1) and password sign-in.

RFC 8628 §5.1: "the authorization server ... SHOULD implement rate limiting" of user code
guesses. We count *wrong* codes at three levels — per browser session, per client IP, and a global
budget per hour — and failed passwords per account and per IP. Counters live in the ``limits``
library's storage: in process by default (one process only), or Redis when configured so that
every worker and host shares them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass, field

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

log = logging.getLogger("deviceflow.ratelimit")

UNAVAILABLE_RETRY_AFTER = 30
"""Seconds to wait when the counters' storage (Redis) is unreachable."""


@dataclass(frozen=True, slots=True)
class BruteForcePolicy:
    """Limits in the ``limits`` notation ("5/10 minutes")."""

    code_per_session: str = "5/10 minutes"
    code_per_ip: str = "20/hour"
    code_global: str = "1000/hour"
    code_per_account: str = "20/hour"
    login_per_account: str = "5/15 minutes"
    login_per_ip: str = "30/hour"


@dataclass(frozen=True, slots=True)
class Check:
    """One counter: which limit, and whose."""

    name: str
    item: RateLimitItem
    key: str


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: int = 0
    tripped: tuple[str, ...] = field(default_factory=tuple)


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


class Limiter:
    """A thin, typed wrapper over ``limits``' moving-window limiter."""

    def __init__(self, policy: BruteForcePolicy, storage_uri: str = "async+memory://") -> None:
        self.policy = policy
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
        self._last_warning = 0.0
        self._items = {
            name: parse(getattr(policy, name)) for name in policy.__dataclass_fields__
        }

    def check(self, name: str, who: str) -> Check:
        return Check(name, self._items[name], who)

    async def verdict(self, checks: list[Check]) -> Verdict:
        """Allowed when no counter is exhausted; otherwise the longest wait among them.

        If the counters' storage is unreachable, fail *closed*: code entry and sign-in wait
        until it is back, because an unlimited guesser is worse than a short outage."""
        tripped: list[str] = []
        wait = 0.0
        try:
            for c in checks:
                if not await self._limiter.test(c.item, c.name, c.key):
                    stats = await self._limiter.get_window_stats(c.item, c.name, c.key)
                    tripped.append(c.name)
                    wait = max(wait, stats.reset_time - time.time())
        except Exception as exc:
            self._warn(exc)
            return Verdict(False, UNAVAILABLE_RETRY_AFTER, ("unavailable",))
        if not tripped:
            return Verdict(True)
        return Verdict(False, max(1, math.ceil(wait)), tuple(tripped))

    async def hit(self, checks: list[Check]) -> None:
        try:
            for c in checks:
                await self._limiter.hit(c.item, c.name, c.key)
        except Exception as exc:
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > 30:
            self._last_warning = now
            log.warning("rate-limit storage unavailable (%s); code entry and sign-in fail closed",
                        type(exc).__name__)

    async def close(self) -> None:
        """Drop the storage's connections (Redis); memory storage has none."""
        with contextlib.suppress(Exception):
            client = getattr(self._storage, "bridge", None)
            storage = getattr(client, "storage", None)
            if storage is not None and hasattr(storage, "aclose"):
                await storage.aclose()

    async def reset(self) -> None:
        await self._storage.reset()

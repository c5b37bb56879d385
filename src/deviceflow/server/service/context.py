"""What every part of the service shares: the ports (store, keys, limits, polling state), the
policy, the clock, the access-token denylist, and a short cache of client records."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ...protocol.codes import CodeSource, SecretsCodeSource
from ...protocol.models import Client, DevicePolicy, Timestamp, TokenPolicy
from ...protocol.proximity import ProximityPolicy
from ...storage.interface import Store
from ..denylist import Denylist
from ..keys import KeyRing
from ..network import NetworkLookup, OfflineLookup
from ..polling import MemoryPollState, PollState
from ..ratelimit import Limiter
from .audit import AuditService
from .notify import Notifier

Clock = Callable[[], float]

CLIENT_CACHE_SECONDS = 5.0
"""How long a client record is reused before it is read again."""

_CLIENT_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class ServicePolicy:
    device: DevicePolicy
    token: TokenPolicy
    grant_types: tuple[str, ...]
    expired_code_retention: int = 24 * 3600
    """How long an expired device code is kept so a late poll still hears ``expired_token``."""
    session_lifetime: int = 8 * 3600
    """How long a browser stays signed in on the verification pages."""
    approval_max_age: int = 15 * 60
    """How recently the password must have been entered to approve a device."""
    audit_retention: int = 90 * 86400
    """How long an audit log record is kept before the purge deletes it."""
    proximity_policy: ProximityPolicy = ProximityPolicy.WARN
    """What the proximity judgement does, unless a client has its own (RFC 10027 §6.1.1)."""


class ServiceContext:
    """The ports and policy one server process runs with, handed to each part of the service."""

    def __init__(
        self,
        store: Store,
        keyring: KeyRing,
        policy: ServicePolicy,
        limiter: Limiter,
        *,
        clock: Clock = time.time,
        codes: CodeSource | None = None,
        poll_state: PollState | None = None,
        denylist: Denylist | None = None,
        notifier: Notifier | None = None,
        network: NetworkLookup | None = None,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.policy = policy
        self.limiter = limiter
        self.clock = clock
        self.codes = codes or SecretsCodeSource()
        self.poll_state: PollState = poll_state or MemoryPollState()
        self.denylist = denylist or Denylist(store, clock)
        self.audit = AuditService(store, clock, policy.audit_retention)
        self.notifier = notifier or Notifier(clock, enabled=False)
        self.network: NetworkLookup = network or OfflineLookup()
        """Network facts for proximity: offline, no network call (``server/network``)."""
        self._clients: dict[str, tuple[Client, float]] = {}

    def now(self) -> Timestamp:
        """The service's clock (injected under test); pages use it for session ages too."""
        return self.clock()

    def proximity_policy(self, client: Client | None) -> ProximityPolicy:
        """The client's own proximity policy, else the server's."""
        if client is not None and client.proximity_policy is not None:
            return client.proximity_policy
        return self.policy.proximity_policy

    async def client(self, client_id: str) -> Client | None:
        """A registered client, from a short in-process cache: every poll authenticates its
        client, and clients change rarely. A removed or changed client takes effect within
        ``CLIENT_CACHE_SECONDS``."""
        now = time.monotonic()
        cached = self._clients.get(client_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self.store.unit_of_work(read_only=True) as uow:
            client = await uow.clients.get(client_id)
        if client is None:
            self._clients.pop(client_id, None)  # unknown ids are not cached: no memory to flood
        else:
            if len(self._clients) >= _CLIENT_CACHE_SIZE:
                self._clients.clear()
            self._clients[client_id] = (client, now + CLIENT_CACHE_SECONDS)
        return client

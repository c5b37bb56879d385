"""The in-memory notification outbox (``storage.interface.OutboxRepository``): claims with a
lease and a claim token, each compare-and-set without an ``await`` between test and write."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from ..protocol.models import Timestamp
from ..protocol.notifications import OutboxMessage, OutboxStatus
from .interface import AlreadyExistsError


class OutboxState(Protocol):
    """What the outbox keeps in the memory store's state."""

    outbox: dict[str, OutboxMessage]
    claims: dict[str, str]


class MemoryOutbox:
    """Each compare-and-set below has no ``await`` between its test and its write."""

    def __init__(self, state: OutboxState) -> None:
        self._s = state

    async def add(self, messages: Sequence[OutboxMessage]) -> None:
        ids = [m.message_id for m in messages]
        if len(set(ids)) != len(ids) or any(i in self._s.outbox for i in ids):
            raise AlreadyExistsError("outbox message collision")
        for message in messages:
            self._s.outbox[message.message_id] = message

    async def get(self, message_id: str) -> OutboxMessage | None:
        return self._s.outbox.get(message_id)

    async def due(self, now: Timestamp, limit: int) -> Sequence[OutboxMessage]:
        found = [m for m in self._s.outbox.values()
                 if m.status is OutboxStatus.PENDING and m.next_attempt_at <= now
                 and (m.claimed_until is None or m.claimed_until <= now)]
        return sorted(found, key=lambda m: (m.next_attempt_at, m.created_at))[:limit]

    async def claim(self, message_id: str, token: str, now: Timestamp, until: Timestamp
                    ) -> bool:
        m = self._s.outbox.get(message_id)
        if (m is None or m.status is not OutboxStatus.PENDING or m.next_attempt_at > now
                or (m.claimed_until is not None and m.claimed_until > now)):
            return False
        self._s.outbox[message_id] = dataclasses.replace(m, claimed_until=until,
                                                         attempts=m.attempts + 1)
        self._s.claims[message_id] = token
        return True

    def _held(self, message_id: str, token: str) -> OutboxMessage | None:
        m = self._s.outbox.get(message_id)
        if (m is None or m.status is not OutboxStatus.PENDING
                or self._s.claims.get(message_id) != token):
            return None
        return m

    async def finish(self, message_id: str, token: str, now: Timestamp) -> bool:
        m = self._held(message_id, token)
        if m is None:
            return False
        self._s.outbox[message_id] = dataclasses.replace(
            m, status=OutboxStatus.DONE, claimed_until=None, finished_at=now)
        self._s.claims.pop(message_id, None)
        return True

    async def retry_at(self, message_id: str, token: str, at: Timestamp, error: str) -> bool:
        m = self._held(message_id, token)
        if m is None:
            return False
        self._s.outbox[message_id] = dataclasses.replace(
            m, claimed_until=None, next_attempt_at=at, last_error=error)
        self._s.claims.pop(message_id, None)
        return True

    async def give_up(self, message_id: str, token: str, now: Timestamp, error: str) -> bool:
        m = self._held(message_id, token)
        if m is None:
            return False
        self._s.outbox[message_id] = dataclasses.replace(
            m, status=OutboxStatus.FAILED, claimed_until=None, last_error=error, finished_at=now)
        self._s.claims.pop(message_id, None)
        return True

    async def list(self, limit: int = 1000) -> Sequence[OutboxMessage]:
        return sorted(self._s.outbox.values(), key=lambda m: m.created_at)[:limit]

    async def purge(self, finished_before: Timestamp, limit: int) -> int:
        doomed = [k for k, m in self._s.outbox.items()
                  if m.finished_at is not None and m.finished_at < finished_before][:limit]
        for key in doomed:
            del self._s.outbox[key]
        return len(doomed)

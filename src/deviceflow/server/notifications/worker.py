"""The delivery task: claims outbox messages, fans events out to their destinations, sends, and
retries failures with exponential back-off (``protocol.notifications.after_failure``).

Every server process runs one; any number may share a database. A message is claimed with one
compare-and-set carrying a lease (``OutboxRepository.claim``) in a short transaction of its own;
the sending happens outside any transaction, and the outcome is recorded only while the claim
still holds. So each message is sent by exactly one worker, and again only if that worker died
(or hung past the lease) before recording it: at least once, never lost. A failure is logged
with the message id and a short reason (never the payload, an address or a secret)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Protocol

from ...protocol.notifications import (
    Destinations,
    GiveUp,
    Notification,
    OutboxKind,
    OutboxMessage,
    RetryPolicy,
    after_failure,
    fan_out,
    from_json,
    to_json,
    with_names,
)
from ...storage.interface import StorageError, Store

log = logging.getLogger("deviceflow.notifications")

FINISHED_RETENTION = 7 * 86400
"""How long a delivered or failed message is kept (for ``deviceflow``'s operators to look at)."""


class DeliveryError(Exception):
    """A send that failed; the message is a short reason safe to log."""


class Sender(Protocol):
    async def send(self, destination: str, notification: Notification) -> None:
        """Deliver or raise ``DeliveryError``."""


def _message_id() -> str:
    return "msg_" + secrets.token_urlsafe(24)


class OutboxWorker:
    def __init__(
        self, store: Store, destinations: Destinations, *, email: Sender | None = None,
        webhook: Sender | None = None, policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time, batch: int = 50,
    ) -> None:
        self.store = store
        self.destinations = destinations
        self.senders: dict[OutboxKind, Sender | None] = {
            OutboxKind.EMAIL: email, OutboxKind.WEBHOOK: webhook,
        }
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.batch = batch

    async def run_once(self) -> int:
        """One pass over the messages due now; how many this worker handled (claimed)."""
        # Read-only: on SQLite the look for work (every few seconds, mostly finding none)
        # never takes the write lock requests need; each candidate is then claimed by a CAS.
        async with self.store.unit_of_work(read_only=True) as uow:
            due = await uow.outbox.due(self.clock(), self.batch)
        handled = 0
        for message in due:
            handled += await self._handle(message)
        return handled

    async def drain(self, rounds: int = 100) -> int:
        """``run_once`` until nothing is due (fan-outs make new messages due at once)."""
        total = 0
        for _ in range(rounds):
            n = await self.run_once()
            if not n:
                break
            total += n
        return total

    async def run_forever(self, interval: float, wakeup: asyncio.Event | None = None) -> None:
        """Deliver until cancelled: whenever this process commits an event (``wakeup``) and
        every ``interval`` seconds for what other processes wrote or retries fall due."""
        while True:
            try:
                await self.drain()
            except Exception:
                log.exception("notification delivery pass failed; will retry")
            if wakeup is None:
                await asyncio.sleep(interval)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await wakeup.wait()
            wakeup.clear()

    async def _handle(self, message: OutboxMessage) -> int:
        token = secrets.token_urlsafe(16)
        now = self.clock()
        async with self.store.unit_of_work() as uow:
            won = await uow.outbox.claim(message.message_id, token, now,
                                         now + self.policy.lease)
            await uow.commit()
        if not won:
            return 0  # another worker has it
        attempt = message.attempts + 1
        try:
            if message.kind is OutboxKind.EVENT:
                await self._fan_out(message, token)
                return 1
            sender = self.senders.get(message.kind)
            if sender is None or message.destination is None:
                # Configured away since it was written (SMTP or webhooks removed).
                await self._give_up(message, token, attempt, "destination no longer configured")
                return 1
            await sender.send(message.destination, from_json(message.payload))
        except (DeliveryError, StorageError) as exc:
            await self._failed(message, token, attempt, str(exc) or type(exc).__name__)
            return 1
        except Exception as exc:
            await self._failed(message, token, attempt, f"unexpected {type(exc).__name__}")
            return 1
        async with self.store.unit_of_work() as uow:
            recorded = await uow.outbox.finish(message.message_id, token, self.clock())
            await uow.commit()
        if recorded:
            log.info("notification delivered", extra={
                "message_id": message.message_id, "event_id": message.event_id,
                "kind": message.kind.value, "attempt": attempt})
        return 1

    async def _fan_out(self, message: OutboxMessage, token: str) -> None:
        """One delivery message per destination, and the event marked done, in one
        transaction: only while this worker's claim holds, so it is fanned out once."""
        event = from_json(message.payload)
        async with self.store.unit_of_work() as uow:
            user = await uow.users.get(event.user_id) if event.user_id else None
            client = await uow.clients.get(event.client_id) if event.client_id else None
            named = with_names(event, client.name if client else None,
                               user.username if user else None)
            now = self.clock()
            await uow.outbox.add([
                OutboxMessage(message_id=_message_id(), kind=kind, event_id=event.event_id,
                              payload=to_json(named), created_at=now, next_attempt_at=now,
                              destination=destination)
                for kind, destination in fan_out(named, self.destinations,
                                                 user.email if user else None)
            ])
            if await uow.outbox.finish(message.message_id, token, now):
                await uow.commit()  # else the claim was lost: roll back, the other one fans out

    async def _failed(self, message: OutboxMessage, token: str, attempt: int,
                      error: str) -> None:
        decision = after_failure(attempt, self.clock(), self.policy)
        if isinstance(decision, GiveUp):
            await self._give_up(message, token, attempt, error)
            return
        async with self.store.unit_of_work() as uow:
            await uow.outbox.retry_at(message.message_id, token, decision.at, error)
            await uow.commit()
        log.warning(
            "notification delivery failed (attempt %d of %d), retrying in %.0f s: %s",
            attempt, self.policy.max_attempts, decision.at - self.clock(), error,
            extra={"message_id": message.message_id, "event_id": message.event_id,
                   "kind": message.kind.value, "attempt": attempt})

    async def _give_up(self, message: OutboxMessage, token: str, attempt: int,
                       error: str) -> None:
        async with self.store.unit_of_work() as uow:
            await uow.outbox.give_up(message.message_id, token, self.clock(), error)
            await uow.commit()
        log.error("notification not delivered, giving up after attempt %d: %s", attempt, error,
                  extra={"message_id": message.message_id, "event_id": message.event_id,
                         "kind": message.kind.value, "attempt": attempt})

    async def purge_finished(self, batch: int = 500) -> int:
        """Delete up to ``batch`` delivered or failed messages older than a week."""
        async with self.store.unit_of_work() as uow:
            n = await uow.outbox.purge(self.clock() - FINISHED_RETENTION, batch)
            await uow.commit()
        return n


__all__ = ["FINISHED_RETENTION", "DeliveryError", "OutboxWorker", "Sender"]

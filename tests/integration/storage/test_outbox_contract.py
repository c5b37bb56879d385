"""The notification outbox on every store (memory, SQLite, PostgreSQL): claims are one
compare-and-set with a lease, later steps hold only while the claim does, and two delivery
workers on the same database (separate engines, as two server processes) deliver each
notification exactly once, to a real webhook receiver and a real SMTP server."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from tests.support.receivers import smtp_server, webhook_receiver
from tests.support.stores import Backend

from deviceflow.protocol.models import Client, ClientType, User
from deviceflow.protocol.notifications import (
    Destinations,
    NotificationType,
    OutboxKind,
    OutboxMessage,
    OutboxStatus,
    RetryPolicy,
)
from deviceflow.server.notifications.email import SmtpConfig, SmtpSender
from deviceflow.server.notifications.webhooks import WebhookSender, generate_secret
from deviceflow.server.notifications.worker import OutboxWorker
from deviceflow.server.service.notify import Notifier

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.0


def message(n: int, *, at: float = T0) -> OutboxMessage:
    return OutboxMessage(message_id=f"msg_{n}", kind=OutboxKind.WEBHOOK, event_id=f"evt_{n}",
                         payload="{}", created_at=at + n, next_attempt_at=at + n,
                         destination="https://hooks.example.com/x")


async def test_claims_leases_and_the_steps_that_need_the_claim(backend: Backend) -> None:
    store = backend.store
    async with store.unit_of_work() as uow:
        await uow.outbox.add([message(1), message(2, at=T0 + 100)])
        await uow.commit()
    async with store.unit_of_work() as uow:
        assert [m.message_id for m in await uow.outbox.due(T0 + 10, 10)] == ["msg_1"]
        assert await uow.outbox.claim("msg_1", "a", T0 + 10, T0 + 70)
        assert not await uow.outbox.claim("msg_1", "b", T0 + 20, T0 + 80)  # lease holds
        assert not await uow.outbox.claim("msg_2", "b", T0 + 20, T0 + 80)  # not due yet
        assert await uow.outbox.due(T0 + 20, 10) == []
        # The lease ran out (the worker died): another worker takes it over ...
        assert await uow.outbox.claim("msg_1", "b", T0 + 70, T0 + 130)
        # ... and the first one can no longer record anything.
        assert not await uow.outbox.finish("msg_1", "a", T0 + 71)
        assert not await uow.outbox.retry_at("msg_1", "a", T0 + 200, "late")
        assert await uow.outbox.retry_at("msg_1", "b", T0 + 200, "HTTP 500")
        got = await uow.outbox.get("msg_1")
        assert got is not None
        assert (got.attempts, got.last_error, got.status) == (2, "HTTP 500",
                                                              OutboxStatus.PENDING)
        assert await uow.outbox.claim("msg_1", "c", T0 + 200, T0 + 260)
        assert await uow.outbox.give_up("msg_1", "c", T0 + 201, "HTTP 500")
        assert not await uow.outbox.claim("msg_1", "d", T0 + 300, T0 + 360)
        assert await uow.outbox.claim("msg_2", "d", T0 + 300, T0 + 360)
        assert await uow.outbox.finish("msg_2", "d", T0 + 301)
        assert not await uow.outbox.finish("msg_2", "d", T0 + 302)  # once
        statuses = {m.message_id: m.status for m in await uow.outbox.list()}
        assert statuses == {"msg_1": OutboxStatus.FAILED, "msg_2": OutboxStatus.DONE}
        assert await uow.outbox.purge(T0 + 300, 10) == 1  # msg_1 finished before
        assert [m.message_id for m in await uow.outbox.list()] == ["msg_2"]
        await uow.commit()


async def test_a_users_email_is_stored_and_cleared(backend: Backend) -> None:
    async with backend.store.unit_of_work() as uow:
        await uow.users.add(User("sub-a", "ann", "Ann", "hash", T0, email="ann@example.com"))
        assert (await uow.users.get("sub-a")).email == "ann@example.com"  # type: ignore[union-attr]
        assert await uow.users.set_email("ann", None)
        assert (await uow.users.get_by_username("ann")).email is None  # type: ignore[union-attr]
        assert not await uow.users.set_email("nobody", "x@example.com")
        await uow.commit()


async def test_concurrent_claims_of_one_message_have_exactly_one_winner(
    backend: Backend,
) -> None:
    async with backend.store.unit_of_work() as uow:
        await uow.outbox.add([message(1)])
        await uow.commit()

    async with backend.worker_stores(4, pool_size=2) as stores:
        async def claim(i: int) -> bool:
            async with stores[i % len(stores)].unit_of_work() as uow:
                won = await uow.outbox.claim("msg_1", f"t{i}", T0 + 5, T0 + 65)
                await uow.commit()
                return won

        results = await asyncio.gather(*(claim(i) for i in range(12)))
    assert results.count(True) == 1


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


async def test_two_workers_deliver_each_notification_exactly_once(backend: Backend) -> None:
    events = 12
    clock = Clock()
    secret = generate_secret()
    async with backend.store.unit_of_work() as uow:
        await uow.clients.add(Client("tv", "Living-room TV", ClientType.PUBLIC,
                                     frozenset({"refresh_token"}), frozenset({"openid"})))
        await uow.users.add(User("sub-a", "ann", "Ann", "hash", T0, email="ann@example.com"))
        await uow.commit()
    notifier = Notifier(clock, enabled=True)
    with smtp_server() as (mailbox, port), webhook_receiver(secret) as (hooks, url):
        async with backend.store.unit_of_work() as uow:
            for _ in range(events):
                await notifier.add_in(uow, notifier.notification(
                    NotificationType.APPROVED, client_id="tv", user_id="sub-a",
                    family_id="f" * 32))
            await uow.commit()
        async with backend.worker_stores(2, pool_size=3) as stores:
            webhook = WebhookSender(secret)
            email = SmtpSender(SmtpConfig("127.0.0.1", port, "none", "auth@example.com"),
                               issuer="https://auth.example.com")
            workers = [OutboxWorker(s, Destinations(webhooks=(url,), email=True), email=email,
                                    webhook=webhook, clock=clock, batch=5,
                                    policy=RetryPolicy(base=1))
                       for s in stores]
            await asyncio.gather(*(w.drain() for w in workers))
            await webhook.close()
        assert hooks.rejected == 0
        assert sorted(hooks.ids) == sorted(set(hooks.ids))  # no id twice
        assert len(hooks.ids) == events
        assert len(mailbox.messages) == events
        assert all(r == ["ann@example.com"] for r in mailbox.recipients)
    async with backend.store.unit_of_work() as uow:
        stored = await uow.outbox.list()
    assert len(stored) == 3 * events  # each event, its webhook and its e-mail
    assert {m.status for m in stored} == {OutboxStatus.DONE}
    assert all(m.attempts == 1 for m in stored)


async def test_an_event_fans_out_to_nothing_without_destinations(backend: Backend) -> None:
    clock = Clock()
    notifier = Notifier(clock, enabled=True)
    async with backend.store.unit_of_work() as uow:
        await notifier.add_in(uow, notifier.notification(NotificationType.REVOKED,
                                                         actor="operator"))
        await uow.commit()
    worker = OutboxWorker(backend.store, Destinations(), clock=clock)
    assert await worker.drain() == 1
    async with backend.store.unit_of_work() as uow:
        [event] = await uow.outbox.list()
    assert (event.kind, event.status) == (OutboxKind.EVENT, OutboxStatus.DONE)
    assert dataclasses.replace(event, finished_at=None).finished_at is None

"""Writing notifications (``protocol/notifications.py``) into the outbox, inside the transaction
of what they report: an approval, a denial, an ended login, a replayed refresh token, a
high-risk request. The row commits with the change or not at all, so a crash between the change
and the delivery loses nothing, and the request path does no network I/O: one more row in a
transaction it opens anyway. The delivery task (``server/notifications``) fans each event out to
the configured destinations and sends them, with retries."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable

from ...protocol.models import RequestOrigin, Timestamp
from ...protocol.notifications import (
    Notification,
    NotificationType,
    OutboxKind,
    OutboxMessage,
    to_json,
)
from ...storage.interface import Store, UnitOfWork

log = logging.getLogger("deviceflow.notifications")


def new_event_id() -> str:
    return "evt_" + secrets.token_urlsafe(18)


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(24)


class Notifier:
    """Writes events to the outbox when ``enabled`` (the server has a destination: SMTP or a
    webhook). Disabled, ``add_in`` writes nothing, so a server without destinations pays
    nothing on the approval path. The operator CLI writes always: it does not know the
    servers' destinations, and a server without any marks such an event done."""

    def __init__(self, clock: Callable[[], float] = time.time, *, enabled: bool = False
                 ) -> None:
        self.clock = clock
        self.enabled = enabled
        self._wakeup: asyncio.Event | None = None

    def notification(
        self, kind: NotificationType, *, client_id: str | None = None,
        user_id: str | None = None, family_id: str | None = None,
        origin: RequestOrigin | None = None, actor: str | None = None,
        detail: str | None = None, network: str | None = None, place: str | None = None,
        risk: str | None = None, reasons: tuple[str, ...] = (),
        occurred_at: Timestamp | None = None,
    ) -> Notification:
        """An event now. ``origin`` (and ``network``, ``place``) describe the device."""
        return Notification(
            event_id=new_event_id(), type=kind,
            occurred_at=self.clock() if occurred_at is None else occurred_at,
            client_id=client_id, user_id=user_id, family_id=family_id,
            ip_address=None if origin is None else origin.ip_address,
            user_agent=None if origin is None else origin.user_agent,
            actor=actor, detail=detail, network=network, place=place, risk=risk,
            reasons=reasons,
        )

    async def add_in(self, uow: UnitOfWork, notification: Notification) -> bool:
        """Write ``notification`` in ``uow``'s transaction (one INSERT); call ``wake`` after
        the commit. False (and nothing written) when disabled."""
        if not self.enabled:
            return False
        now = self.clock()
        await uow.outbox.add([OutboxMessage(
            message_id=new_message_id(), kind=OutboxKind.EVENT,
            event_id=notification.event_id, payload=to_json(notification),
            created_at=now, next_attempt_at=now,
        )])
        return True

    async def high_risk_request_in(
        self, uow: UnitOfWork, *, client_id: str, origin: RequestOrigin | None,
        risk: str, reasons: tuple[str, ...], user_id: str | None = None,
        family_id: str | None = None, network: str | None = None, place: str | None = None,
    ) -> Notification:
        """The risk judgement's "high" (issue 10 §2–3), for the operator's webhooks: write it in
        the transaction that records the judgement."""
        event = self.notification(
            NotificationType.HIGH_RISK_REQUEST, client_id=client_id, user_id=user_id,
            family_id=family_id, origin=origin, network=network, place=place, risk=risk,
            reasons=reasons)
        await self.add_in(uow, event)
        return event

    async def record_high_risk_request(
        self, store: Store, *, client_id: str, origin: RequestOrigin | None, risk: str,
        reasons: tuple[str, ...], user_id: str | None = None, family_id: str | None = None,
        network: str | None = None, place: str | None = None,
    ) -> Notification:
        """``high_risk_request_in`` in a transaction of its own, for a judgement that changes
        nothing else."""
        async with store.unit_of_work() as uow:
            event = await self.high_risk_request_in(
                uow, client_id=client_id, origin=origin, risk=risk, reasons=reasons,
                user_id=user_id, family_id=family_id, network=network, place=place)
            await uow.commit()
        self.wake()
        return event

    # --- waking this process's delivery task ---------------------------------------------------

    @property
    def wakeup(self) -> asyncio.Event:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        return self._wakeup

    def wake(self) -> None:
        """After a commit that wrote events: the delivery task in this process looks at once
        (others find them within ``notification_poll_interval``)."""
        if self.enabled and self._wakeup is not None:
            self._wakeup.set()


__all__ = ["Notifier", "new_event_id", "new_message_id"]

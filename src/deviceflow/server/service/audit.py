"""The audit log (docs/operator.md, "Audit log"): one append-only row and one structured log
line (logger ``deviceflow.audit``, INFO) for each security-relevant event.

A row that records a state change is appended in the transaction of that change
(``append(uow, …)``, then ``emit`` after the commit), so the log holds an event if and only if
the change committed. An event that changes nothing (a refused code, a failed sign-in) gets its
own small transaction (``record``). Where the request came from and its id are read from the
request's context variables (``server.logs``), which the web layer sets; nothing secret is ever
passed here."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from ...protocol.audit import AuditActor, AuditEvent, AuditEventType, AuditQuery
from ...protocol.models import RequestOrigin
from ...storage.interface import StorageError, Store, UnitOfWork
from ..logs import request_id, request_origin

log = logging.getLogger("deviceflow.audit")


class AuditService:
    """Records and reads the audit log. Needs only a store and a clock, so the operator CLI
    (key rotation, revocation) can record events without a running server."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time,
                 retention: int = 90 * 86400) -> None:
        self.store = store
        self.clock = clock
        self.retention = retention

    def event(
        self, event: AuditEventType, *, user_id: str | None = None,
        client_id: str | None = None, family_id: str | None = None,
        grant_type: str | None = None, actor: AuditActor | None = None,
        detail: str | None = None, origin: RequestOrigin | None = None,
    ) -> AuditEvent:
        """An event now, from the request being served: its ``origin`` (IP address, user
        agent) unless given, and its request id."""
        origin = origin or request_origin.get()
        rid = request_id.get()
        return AuditEvent(
            event=event, occurred_at=self.clock(), user_id=user_id, client_id=client_id,
            ip_address=None if origin is None else origin.ip_address,
            user_agent=None if origin is None else origin.user_agent,
            family_id=family_id, request_id=None if rid == "-" else rid,
            grant_type=grant_type, actor=actor, detail=detail,
        )

    async def append(
        self, uow: UnitOfWork, event: AuditEventType, *, user_id: str | None = None,
        client_id: str | None = None, family_id: str | None = None,
        grant_type: str | None = None, actor: AuditActor | None = None,
        detail: str | None = None, origin: RequestOrigin | None = None,
    ) -> AuditEvent:
        """Append to ``uow``'s transaction; call ``emit`` with the result after the commit."""
        record = self.event(event, user_id=user_id, client_id=client_id, family_id=family_id,
                            grant_type=grant_type, actor=actor, detail=detail, origin=origin)
        await uow.audit_log.append(record)
        return record

    async def record(
        self, event: AuditEventType, *, user_id: str | None = None,
        client_id: str | None = None, family_id: str | None = None,
        grant_type: str | None = None, actor: AuditActor | None = None,
        detail: str | None = None, origin: RequestOrigin | None = None,
    ) -> AuditEvent:
        """Record an event that changes nothing else, in its own transaction, and log it. A
        storage failure is logged, not raised: the person's request has been answered already
        in substance, and the log line still carries the event."""
        record = self.event(event, user_id=user_id, client_id=client_id, family_id=family_id,
                            grant_type=grant_type, actor=actor, detail=detail, origin=origin)
        try:
            async with self.store.unit_of_work() as uow:
                await uow.audit_log.append(record)
                await uow.commit()
        except StorageError as exc:
            log.warning("audit row not stored: %s", type(exc).__name__)
        self.emit(record)
        return record

    @staticmethod
    def emit(record: AuditEvent) -> None:
        """The structured log line of a committed event (the request id comes from the
        formatter, as on every line)."""
        if not log.isEnabledFor(logging.INFO):
            return
        log.info(
            "audit %s", record.event.value,
            extra={
                "event": record.event.value,
                "user_id": record.user_id,
                "client_id": record.client_id,
                "ip_address": record.ip_address,
                "user_agent": record.user_agent,
                "family_id": record.family_id,
                "grant_type": record.grant_type,
                "actor": None if record.actor is None else record.actor.value,
                "detail": record.detail,
            },
        )

    async def query(self, query: AuditQuery) -> Sequence[AuditEvent]:
        # An ordinary unit of work: the filters make a statement of their own (see sql/audit).
        async with self.store.unit_of_work() as uow:
            return await uow.audit_log.query(query)

    async def purge_expired(self, batch: int = 500) -> int:
        """Delete up to ``batch`` records older than the retention (``audit_retention``)."""
        async with self.store.unit_of_work() as uow:
            n = await uow.audit_log.purge(self.clock() - self.retention, batch)
            await uow.commit()
        return n


__all__ = ["AuditService"]

"""SQL implementation of ``AuditLogRepository``: the append-only audit log.

Only an INSERT and the retention purge's DELETE touch the table; no statement here updates a
row. Reads build their ``WHERE`` from the filters given, so they run on an ordinary unit of work
(the operator's command), never on the inline poll reader with its fixed statements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ...protocol.audit import AuditActor, AuditEvent, AuditEventType, AuditQuery
from ...protocol.models import Timestamp
from . import tables as t

_a = t.audit_log

_FIELDS = ("occurred_at", "event", "user_id", "client_id", "ip_address", "user_agent",
           "family_id", "request_id", "grant_type", "actor", "detail")
_APPEND = insert(_a)
# DELETE … WHERE id IN (SELECT id … LIMIT n): the oldest first, a small batch per statement.
_PURGE = delete(_a).where(_a.c.id.in_(
    select(_a.c.id).where(_a.c.occurred_at < bindparam("b_before"))
    .order_by(_a.c.id).limit(bindparam("b_limit"))
))


def _event(row: Row[Any]) -> AuditEvent:
    return AuditEvent(
        event=AuditEventType(row.event),
        occurred_at=row.occurred_at,
        user_id=row.user_id,
        client_id=row.client_id,
        ip_address=row.ip_address,
        user_agent=row.user_agent,
        family_id=row.family_id,
        request_id=row.request_id,
        grant_type=row.grant_type,
        actor=None if row.actor is None else AuditActor(row.actor),
        detail=row.detail,
    )


class SqlAuditLog:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def append(self, event: AuditEvent) -> None:
        values = {name: getattr(event, name) for name in _FIELDS}
        values["event"] = event.event.value
        values["actor"] = None if event.actor is None else event.actor.value
        await self._conn.execute(_APPEND, values)

    async def query(self, query: AuditQuery) -> Sequence[AuditEvent]:
        stmt = select(_a)
        if query.user_id is not None:
            stmt = stmt.where(_a.c.user_id == query.user_id)
        if query.client_id is not None:
            stmt = stmt.where(_a.c.client_id == query.client_id)
        if query.since is not None:
            stmt = stmt.where(_a.c.occurred_at >= query.since)
        if query.events:
            # OR of equalities, not IN: SQLite's inline read path takes no expanding binds.
            stmt = stmt.where(or_(*(_a.c.event == e.value for e in sorted(query.events))))
        stmt = stmt.order_by(_a.c.occurred_at.desc(), _a.c.id.desc()).limit(query.limit)
        return [_event(row) for row in await self._conn.execute(stmt)]

    async def purge(self, older_than: Timestamp, limit: int) -> int:
        if limit <= 0:
            return 0
        result = await self._conn.execute(_PURGE, {"b_before": older_than, "b_limit": limit})
        return result.rowcount


__all__ = ["SqlAuditLog"]

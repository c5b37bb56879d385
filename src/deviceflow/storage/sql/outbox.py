"""SQL implementation of ``OutboxRepository``: notifications waiting to be delivered.

A worker claims a row with one conditional ``UPDATE … WHERE message_id = :id AND status =
'pending' AND next_attempt_at <= :now AND (claimed_until IS NULL OR claimed_until <= :now)``
and a row count: of concurrent workers, on one host or many, exactly one wins. Every later step
(done, retry, give up) is conditional on the random ``claim_token`` the winner wrote, so a worker
whose lease ran out cannot overwrite the state another worker has since recorded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, and_, bindparam, delete, insert, or_, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import NullType

from ...protocol.models import Timestamp
from ...protocol.notifications import OutboxKind, OutboxMessage, OutboxStatus
from ..interface import AlreadyExistsError
from . import tables as t

_o = t.notification_outbox
_PENDING = OutboxStatus.PENDING.value

_GET = select(_o).where(_o.c.message_id == bindparam("b_id"))
_LIST = select(_o).order_by(_o.c.created_at, _o.c.message_id).limit(bindparam("b_limit"))
# Untyped binds, so SQLite's inline read-only path can run it (a Double bind needs a conversion
# it refuses); PostgreSQL infers double precision from the column compared with.
_NOW = bindparam("b_now", type_=NullType())
_DUE = (
    select(_o)
    .where(
        _o.c.status == _PENDING,
        type_coerce(_o.c.next_attempt_at, NullType()) <= _NOW,
        or_(_o.c.claimed_until.is_(None),
            type_coerce(_o.c.claimed_until, NullType()) <= _NOW),
    )
    .order_by(_o.c.next_attempt_at, _o.c.created_at)
    .limit(bindparam("b_limit"))
)
_CLAIM = (
    update(_o)
    .where(
        _o.c.message_id == bindparam("b_id"),
        _o.c.status == _PENDING,
        _o.c.next_attempt_at <= bindparam("b_now"),
        or_(_o.c.claimed_until.is_(None), _o.c.claimed_until <= bindparam("b_now")),
    )
    .values(claimed_until=bindparam("b_until"), claim_token=bindparam("b_token"),
            attempts=_o.c.attempts + 1)
)
_HELD = and_(_o.c.message_id == bindparam("b_id"), _o.c.status == _PENDING,
             _o.c.claim_token == bindparam("b_token"))
_FINISH = update(_o).where(_HELD).values(
    status=OutboxStatus.DONE.value, claimed_until=None, claim_token=None,
    finished_at=bindparam("b_now"))
_RETRY = update(_o).where(_HELD).values(
    claimed_until=None, claim_token=None, next_attempt_at=bindparam("b_at"),
    last_error=bindparam("b_error"))
_GIVE_UP = update(_o).where(_HELD).values(
    status=OutboxStatus.FAILED.value, claimed_until=None, claim_token=None,
    finished_at=bindparam("b_now"), last_error=bindparam("b_error"))
_PURGE = delete(_o).where(_o.c.message_id.in_(
    select(_o.c.message_id)
    .where(_o.c.finished_at < bindparam("b_before"))
    .limit(bindparam("b_limit"))
))


def _message(row: Row[Any]) -> OutboxMessage:
    return OutboxMessage(
        message_id=row.message_id,
        kind=OutboxKind(row.kind),
        event_id=row.event_id,
        payload=row.payload,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        destination=row.destination,
        attempts=row.attempts,
        status=OutboxStatus(row.status),
        claimed_until=row.claimed_until,
        last_error=row.last_error,
        finished_at=row.finished_at,
    )


class SqlOutbox:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, messages: Sequence[OutboxMessage]) -> None:
        if not messages:
            return
        rows = [{
            "message_id": m.message_id, "kind": m.kind.value, "event_id": m.event_id,
            "destination": m.destination, "payload": m.payload, "status": m.status.value,
            "attempts": m.attempts, "created_at": m.created_at,
            "next_attempt_at": m.next_attempt_at, "claimed_until": None, "claim_token": None,
            "last_error": m.last_error, "finished_at": m.finished_at,
        } for m in messages]
        # One multi-row INSERT; the ids are 256-bit random, so a taken one is a bug (raise).
        ids = {m.message_id for m in messages}
        if len(ids) != len(messages):
            raise AlreadyExistsError("outbox message collision")
        await self._conn.execute(insert(_o).values(rows))

    async def get(self, message_id: str) -> OutboxMessage | None:
        row = (await self._conn.execute(_GET, {"b_id": message_id})).first()
        return None if row is None else _message(row)

    async def due(self, now: Timestamp, limit: int) -> Sequence[OutboxMessage]:
        rows = await self._conn.execute(_DUE, {"b_now": now, "b_limit": limit})
        return [_message(row) for row in rows]

    async def claim(self, message_id: str, token: str, now: Timestamp, until: Timestamp
                    ) -> bool:
        params = {"b_id": message_id, "b_now": now, "b_until": until, "b_token": token}
        return (await self._conn.execute(_CLAIM, params)).rowcount == 1

    async def finish(self, message_id: str, token: str, now: Timestamp) -> bool:
        params = {"b_id": message_id, "b_token": token, "b_now": now}
        return (await self._conn.execute(_FINISH, params)).rowcount == 1

    async def retry_at(self, message_id: str, token: str, at: Timestamp, error: str) -> bool:
        params = {"b_id": message_id, "b_token": token, "b_at": at, "b_error": error}
        return (await self._conn.execute(_RETRY, params)).rowcount == 1

    async def give_up(self, message_id: str, token: str, now: Timestamp, error: str) -> bool:
        params = {"b_id": message_id, "b_token": token, "b_now": now, "b_error": error}
        return (await self._conn.execute(_GIVE_UP, params)).rowcount == 1

    async def list(self, limit: int = 1000) -> Sequence[OutboxMessage]:
        return [_message(row) for row in await self._conn.execute(_LIST, {"b_limit": limit})]

    async def purge(self, finished_before: Timestamp, limit: int) -> int:
        if limit <= 0:
            return 0
        params = {"b_before": finished_before, "b_limit": limit}
        return (await self._conn.execute(_PURGE, params)).rowcount


__all__ = ["SqlOutbox"]

"""SQL implementation of ``GrantRepository``: signed-in devices.

The list is read from ``refresh_tokens`` (a family is signed in while it has an active, unexpired
token) joined with ``grants`` (where it began); the join is outer, so a family begun before
``grants`` existed is still listed, and still revocable. Statements are built once per
combination of filters, so each stays a fixed, cached ``SELECT``."""

from __future__ import annotations

from itertools import product
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, bindparam, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import NullType

from ...protocol.models import ActiveGrant, GrantRecord, RefreshStatus, RequestOrigin, Timestamp
from . import tables as t
from .dml import insert, insert_unless_taken, purge, purge_statement

_g = t.grants
_r = t.refresh_tokens

_GRANT_INSERT = insert_unless_taken(_g)
_GRANT_PURGE = purge_statement(_g, _g.c.family_id)


def _after_now(column: ColumnElement[float]) -> ColumnElement[bool]:
    # An untyped bind, so SQLite's inline reads pass the float straight to the driver (a
    # Double bind needs a conversion they refuse); PostgreSQL infers double precision from
    # the column it is compared with.
    return type_coerce(column, NullType()) > bindparam("b_now", type_=NullType())


def _active_statement(by_user: bool, by_client: bool, by_family: bool) -> Select[Any]:
    stmt = (
        select(
            _r.c.family_id, _r.c.user_id, _r.c.client_id, _r.c.scope, _r.c.issued_at,
            _g.c.approved_at, _g.c.ip_address, _g.c.user_agent,
        )
        .select_from(_r.outerjoin(_g, _g.c.family_id == _r.c.family_id))
        .where(
            _r.c.status == RefreshStatus.ACTIVE.value,
            _after_now(_r.c.expires_at),
            _after_now(_r.c.family_expires_at),
        )
        .order_by(_r.c.family_id, _r.c.issued_at)
    )
    if by_user:
        stmt = stmt.where(_r.c.user_id == bindparam("b_user_id"))
    if by_client:
        stmt = stmt.where(_r.c.client_id == bindparam("b_client_id"))
    if by_family:
        stmt = stmt.where(_r.c.family_id == bindparam("b_family_id"))
    return stmt


_ACTIVE = {flags: _active_statement(*flags) for flags in product((False, True), repeat=3)}


def _active(row: Row[Any]) -> ActiveGrant:
    known = row.approved_at is not None
    return ActiveGrant(
        family_id=row.family_id,
        user_id=row.user_id,
        client_id=row.client_id,
        scope=tuple(row.scope.split()),
        last_used_at=row.issued_at,
        approved_at=row.approved_at,
        origin=RequestOrigin(row.ip_address, row.user_agent) if known else None,
    )


class SqlGrants:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, grant: GrantRecord) -> None:
        """Insert; ``AlreadyExistsError`` when the family id is taken."""
        values = {
            "family_id": grant.family_id,
            "user_id": grant.user_id,
            "client_id": grant.client_id,
            "approved_at": grant.approved_at,
            "ip_address": grant.origin.ip_address,
            "user_agent": grant.origin.user_agent,
            "expires_at": grant.expires_at,
        }
        await insert(self._conn, _GRANT_INSERT, values, "grant collision")

    async def active(
        self, now: Timestamp, *, user_id: str | None = None, client_id: str | None = None,
        family_id: str | None = None,
    ) -> list[ActiveGrant]:
        stmt = _ACTIVE[(user_id is not None, client_id is not None, family_id is not None)]
        params = {"b_now": now, "b_user_id": user_id, "b_client_id": client_id,
                  "b_family_id": family_id}
        result = await self._conn.execute(stmt, {k: v for k, v in params.items()
                                                 if v is not None})
        # Ordered by family, then issue time: the last row of a family is its newest live token
        # (a family holds one, but a grace-window reissue must never list a device twice).
        latest: dict[str, ActiveGrant] = {}
        for row in result:
            latest[row.family_id] = _active(row)
        return list(latest.values())

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        """Delete up to ``limit`` records whose ``expires_at`` is before ``expired_before``."""
        return await purge(self._conn, _GRANT_PURGE, expired_before, limit)


__all__ = ["SqlGrants"]

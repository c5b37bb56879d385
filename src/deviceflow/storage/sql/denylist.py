"""SQL implementation of ``DenylistRepository``: access tokens refused before their expiry.

An entry is added with ``INSERT … ON CONFLICT DO NOTHING`` (concurrent revocations of one family
store one row, and neither fails); readers fetch entries created since their last read through
the ``created_at`` index, so a per-process cache stays current for one small query a second."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import NullType

from ...protocol.models import DeniedToken, DenyKind, Timestamp
from ..interface import AlreadyExistsError
from . import tables as t
from .dml import insert, insert_unless_taken, purge, purge_statement

_n = t.token_denylist

_DENY_INSERT = insert_unless_taken(_n)
# The columns are compared untyped so the binds need no float conversion: SQLite's read-only
# units of work run a SELECT straight on the driver (``unit_of_work._InlineConnection``), which
# refuses a bind it would have to convert. The values are floats already.
_DENY_SINCE = select(_n).where(
    type_coerce(_n.c.created_at, NullType()) >= bindparam("b_created_from"),
    type_coerce(_n.c.expires_at, NullType()) > bindparam("b_now"),
)
# The key is (kind, value): the outer condition keeps a live entry of the other kind that
# happens to share a value.
_DENY_PURGE = purge_statement(_n, _n.c.value).where(_n.c.expires_at < bindparam("b_before"))


def _entry(row: Row[Any]) -> DeniedToken:
    return DeniedToken(kind=DenyKind(row.kind), value=row.value, expires_at=row.expires_at,
                       created_at=row.created_at)


class SqlDenylist:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, entry: DeniedToken) -> bool:
        values = {"kind": entry.kind.value, "value": entry.value,
                  "expires_at": entry.expires_at, "created_at": entry.created_at}
        try:
            await insert(self._conn, _DENY_INSERT, values, "denylist entry")
        except AlreadyExistsError:
            return False
        return True

    async def since(self, created_from: Timestamp, now: Timestamp) -> Sequence[DeniedToken]:
        params = {"b_created_from": created_from, "b_now": now}
        return [_entry(row) for row in await self._conn.execute(_DENY_SINCE, params)]

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        """Delete up to ``limit`` entries whose ``expires_at`` is before ``expired_before``."""
        return await purge(self._conn, _DENY_PURGE, expired_before, limit)


__all__ = ["SqlDenylist"]

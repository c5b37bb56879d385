"""SQL implementation of ``BrowserSessionRepository``: sign-ins on the verification pages.

Revocation is one conditional ``UPDATE … WHERE status = 'active'``: of concurrent revokers
exactly one sees a row change, and no statement here sets a row back to active, so a revoked
session stays revoked until the purge deletes it after its expiry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ...protocol.models import BrowserSession, BrowserSessionStatus, Timestamp
from . import tables as t
from .dml import amr_of, amr_text, insert, insert_unless_taken, purge, purge_statement

_b = t.browser_sessions

_SESSION_GET = select(_b).where(_b.c.session_hash == bindparam("b_session_hash"))
_SESSION_INSERT = insert_unless_taken(_b)
_SESSION_REVOKE = (
    update(_b)
    .where(
        _b.c.session_hash == bindparam("b_session_hash"),
        _b.c.status == BrowserSessionStatus.ACTIVE.value,
    )
    .values(status=BrowserSessionStatus.REVOKED.value)
)
_SESSION_REVOKE_USER = (
    update(_b)
    .where(
        _b.c.user_id == bindparam("b_user_id"),
        _b.c.status == BrowserSessionStatus.ACTIVE.value,
    )
    .values(status=BrowserSessionStatus.REVOKED.value)
)
_SESSION_PURGE = purge_statement(_b, _b.c.session_hash)


def _session(row: Row[Any]) -> BrowserSession:
    return BrowserSession(
        session_hash=row.session_hash,
        user_id=row.user_id,
        auth_time=row.auth_time,
        expires_at=row.expires_at,
        status=BrowserSessionStatus(row.status),
        amr=amr_of(row.amr),
    )


class SqlBrowserSessions:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, session: BrowserSession) -> None:
        """Insert; ``AlreadyExistsError`` when the hash is taken, revoked rows included."""
        values = {
            "session_hash": session.session_hash,
            "user_id": session.user_id,
            "auth_time": session.auth_time,
            "expires_at": session.expires_at,
            "status": session.status.value,
            "amr": amr_text(session.amr),
        }
        await insert(self._conn, _SESSION_INSERT, values, "browser session collision")

    async def get(self, session_hash: str) -> BrowserSession | None:
        params = {"b_session_hash": session_hash}
        row = (await self._conn.execute(_SESSION_GET, params)).first()
        return None if row is None else _session(row)

    async def revoke(self, session_hash: str) -> bool:
        result = await self._conn.execute(_SESSION_REVOKE, {"b_session_hash": session_hash})
        return result.rowcount == 1

    async def revoke_all_for_user(self, user_id: str) -> int:
        result = await self._conn.execute(_SESSION_REVOKE_USER, {"b_user_id": user_id})
        return result.rowcount

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        """Delete up to ``limit`` sessions whose ``expires_at`` is before ``expired_before``."""
        return await purge(self._conn, _SESSION_PURGE, expired_before, limit)


__all__ = ["SqlBrowserSessions"]

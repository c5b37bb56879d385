"""SQL implementation of ``FactorRepository``: authenticator apps (RFC 6238) and recovery codes.

Accepting a code is one ``UPDATE … WHERE last_step < :step`` and using a recovery code one
``UPDATE … WHERE used_at IS NULL``: of concurrent callers with the same code exactly one sees a
row change (RFC 6238 §5.2: a code is accepted once)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ...protocol.models import Timestamp
from ..interface import TotpFactor
from . import tables as t
from .dml import insert_unless_taken

_f = t.totp_factors
_r = t.recovery_codes

_GET = select(_f).where(_f.c.user_id == bindparam("b_user"))
_DROP_PENDING = delete(_f).where(_f.c.user_id == bindparam("b_user"), _f.c.active == 0)
_INSERT = insert_unless_taken(_f)
_ACTIVATE = (
    update(_f)
    .where(_f.c.user_id == bindparam("b_user"), _f.c.active == 0,
           _f.c.last_step < bindparam("b_step"))
    .values(active=1, last_step=bindparam("b_step"))
)
_USE_STEP = (
    update(_f)
    .where(_f.c.user_id == bindparam("b_user"), _f.c.active == 1,
           _f.c.last_step < bindparam("b_step"))
    .values(last_step=bindparam("b_step"))
)
_USE_RECOVERY = (
    update(_r)
    .where(_r.c.code_hash == bindparam("b_hash"), _r.c.user_id == bindparam("b_user"),
           _r.c.used_at.is_(None))
    .values(used_at=bindparam("b_now"))
)
_LEFT = select(func.count()).select_from(_r).where(_r.c.user_id == bindparam("b_user"),
                                                   _r.c.used_at.is_(None))
_DROP_RECOVERY = delete(_r).where(_r.c.user_id == bindparam("b_user"))
_DROP = delete(_f).where(_f.c.user_id == bindparam("b_user"))


class SqlFactors:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get_totp(self, user_id: str) -> TotpFactor | None:
        row = (await self._conn.execute(_GET, {"b_user": user_id})).first()
        if row is None:
            return None
        return TotpFactor(user_id=row.user_id, sealed_secret=bytes(row.secret),
                          active=bool(row.active), created_at=row.created_at,
                          last_step=row.last_step)

    async def set_pending_totp(self, factor: TotpFactor) -> bool:
        await self._conn.execute(_DROP_PENDING, {"b_user": factor.user_id})
        values = {"user_id": factor.user_id, "secret": factor.sealed_secret, "active": 0,
                  "created_at": factor.created_at, "last_step": factor.last_step}
        result = await self._conn.execute(_INSERT[self._conn.dialect.name], values)
        return result.rowcount == 1  # 0: an active factor holds the key

    async def activate_totp(self, user_id: str, step: int, recovery_hashes: Sequence[str]) -> bool:
        result = await self._conn.execute(_ACTIVATE, {"b_user": user_id, "b_step": step})
        if result.rowcount != 1:
            return False
        await self._conn.execute(_DROP_RECOVERY, {"b_user": user_id})
        if recovery_hashes:
            await self._conn.execute(insert(_r), [
                {"code_hash": h, "user_id": user_id, "used_at": None} for h in recovery_hashes
            ])
        return True

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        result = await self._conn.execute(_USE_STEP, {"b_user": user_id, "b_step": step})
        return result.rowcount == 1

    async def use_recovery_code(self, user_id: str, code_hash: str, now: Timestamp) -> bool:
        params = {"b_user": user_id, "b_hash": code_hash, "b_now": now}
        result = await self._conn.execute(_USE_RECOVERY, params)
        return result.rowcount == 1

    async def recovery_codes_left(self, user_id: str) -> int:
        # scalar_one_or_none: the inline read-only path (SQLite) offers no scalar_one.
        return int((await self._conn.execute(_LEFT, {"b_user": user_id})).scalar_one_or_none() or 0)

    async def remove(self, user_id: str) -> bool:
        await self._conn.execute(_DROP_RECOVERY, {"b_user": user_id})
        result = await self._conn.execute(_DROP, {"b_user": user_id})
        return result.rowcount == 1


__all__ = ["SqlFactors"]

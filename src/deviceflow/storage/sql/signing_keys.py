"""SQL implementation of ``SigningKeyRepository``: the lifecycle rows of the signing keys.

Rotation is one conditional ``UPDATE … WHERE kid = :current AND signs_until IS NULL`` and an
INSERT in the caller's transaction: of two rotations at once the second UPDATE waits for the
first (PostgreSQL's row lock, SQLite's write lock), then matches nothing. The partial unique
index ``uq_signing_keys_newest_alg`` backs it: two newest keys of one algorithm cannot be
stored whatever the code does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ...protocol.models import Timestamp
from ..interface import SigningKeyRecord
from . import tables as t
from .dml import insert, insert_unless_taken

_k = t.signing_keys

_KEY_LIST = select(_k).order_by(_k.c.alg, _k.c.active_from, _k.c.kid)
_KEY_INSERT = insert_unless_taken(_k)
_KEY_END = (
    update(_k)
    .where(_k.c.kid == bindparam("b_kid"), _k.c.alg == bindparam("b_alg"),
           _k.c.signs_until.is_(None))
    .values(signs_until=bindparam("b_signs_until"), retire_after=bindparam("b_retire_after"))
)


def _record(row: Row[Any]) -> SigningKeyRecord:
    return SigningKeyRecord(
        kid=row.kid, alg=row.alg, secret_name=row.secret_name, created_at=row.created_at,
        active_from=row.active_from, signs_until=row.signs_until, retire_after=row.retire_after,
    )


def _values(key: SigningKeyRecord) -> dict[str, object]:
    return {"kid": key.kid, "alg": key.alg, "secret_name": key.secret_name,
            "created_at": key.created_at, "active_from": key.active_from,
            "signs_until": None, "retire_after": None}


class SqlSigningKeys:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def list(self) -> Sequence[SigningKeyRecord]:
        return [_record(row) for row in await self._conn.execute(_KEY_LIST)]

    async def add_first(self, key: SigningKeyRecord) -> bool:
        # ON CONFLICT DO NOTHING covers the kid and the one-newest-per-alg index alike.
        stmt = _KEY_INSERT[self._conn.dialect.name]
        return (await self._conn.execute(stmt, _values(key))).rowcount == 1

    async def rotate(self, current_kid: str, signs_until: Timestamp, retire_after: Timestamp,
                     successor: SigningKeyRecord) -> bool:
        ended = await self._conn.execute(_KEY_END, {
            "b_kid": current_kid, "b_alg": successor.alg, "b_signs_until": signs_until,
            "b_retire_after": retire_after})
        if ended.rowcount != 1:
            return False
        await insert(self._conn, _KEY_INSERT, _values(successor), successor.kid)
        return True


__all__ = ["SqlSigningKeys"]

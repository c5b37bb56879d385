"""SQL repository of refresh tokens: rotation, the grace path and family revocation, each one
compare-and-set in the database (RFC 9700 §4.14.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ...protocol.models import (
    RefreshStatus,
    RefreshToken,
    Timestamp,
)
from . import tables as t
from .dml import amr_of, amr_text
from .dml import insert as _insert
from .dml import insert_unless_taken as _insert_unless_taken
from .dml import purge as _purge
from .dml import purge_statement as _purge_statement
from .dml import split_words as _split

_c = t.clients
_u = t.users
_d = t.device_authorizations
_r = t.refresh_tokens
_s = t.server_secrets


# --------------------------------------------------------------------------------- refresh tokens

_REFRESH_GET = select(_r).where(_r.c.token_hash == bindparam("b_token_hash"))
_REFRESH_INSERT = _insert_unless_taken(_r)
_REFRESH_ROTATE = (
    update(_r)
    .where(
        _r.c.token_hash == bindparam("b_token_hash"),
        _r.c.status == RefreshStatus.ACTIVE.value,
    )
    .values(
        status=RefreshStatus.ROTATED.value,
        successor_hash=bindparam("b_successor_hash"),
        rotated_at=bindparam("b_rotated_at"),
    )
)
# The grace path, parent first: concurrent retries of one rotated token queue on its row, and
# only the first still finds it pointing at the successor it read.
_REFRESH_REPOINT = (
    update(_r)
    .where(
        _r.c.token_hash == bindparam("b_token_hash"),
        _r.c.status == RefreshStatus.ROTATED.value,
        _r.c.successor_hash == bindparam("b_expected"),
    )
    .values(successor_hash=bindparam("b_successor_hash"))
)
_REFRESH_REVOKE_UNUSED = (
    update(_r)
    .where(
        _r.c.token_hash == bindparam("b_token_hash"),
        _r.c.status == RefreshStatus.ACTIVE.value,
    )
    .values(status=RefreshStatus.REVOKED.value)
)
# Row locks in one order (by token hash) before the grace path or a family revocation writes:
# the two touch several rows of one family, and without a common order PostgreSQL could
# deadlock them. Taking the family's locks first also means the revoking UPDATE, a statement
# of its own, sees a successor that a concurrent rotation committed meanwhile. SQLite has no
# FOR UPDATE (the clause compiles to nothing) and serializes writers anyway.
_REFRESH_LOCK_PAIR = (
    select(_r.c.token_hash)
    .where(_r.c.token_hash.in_([bindparam("b_first"), bindparam("b_second")]))
    .order_by(_r.c.token_hash)
    .with_for_update()
)
_REFRESH_LOCK_FAMILY = (
    select(_r.c.token_hash)
    .where(_r.c.family_id == bindparam("b_family_id"))
    .order_by(_r.c.token_hash)
    .with_for_update()
)
_REFRESH_REVOKE_FAMILY = (
    update(_r)
    .where(
        _r.c.family_id == bindparam("b_family_id"),
        _r.c.status != RefreshStatus.REVOKED.value,
    )
    .values(status=RefreshStatus.REVOKED.value)
)
_REFRESH_FAMILIES = (
    select(_r.c.family_id)
    .where(_r.c.user_id == bindparam("b_user_id"), _r.c.status != RefreshStatus.REVOKED.value)
    .distinct()
    .order_by(_r.c.family_id)
)
_REFRESH_PURGE = _purge_statement(_r, _r.c.token_hash)


def _refresh(row: Row[Any]) -> RefreshToken:
    return RefreshToken(
        token_hash=row.token_hash,
        family_id=row.family_id,
        client_id=row.client_id,
        user_id=row.user_id,
        scope=_split(row.scope),
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        auth_time=row.auth_time,
        family_expires_at=row.family_expires_at,
        grant_type=row.grant_type,
        status=RefreshStatus(row.status),
        successor_hash=row.successor_hash,
        rotated_at=row.rotated_at,
        amr=amr_of(row.amr),
    )


class SqlRefreshTokens:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, token: RefreshToken) -> None:
        """Insert; ``AlreadyExistsError`` when the token hash is taken."""
        values = {
            "token_hash": token.token_hash,
            "family_id": token.family_id,
            "client_id": token.client_id,
            "user_id": token.user_id,
            "scope": " ".join(token.scope),
            "issued_at": token.issued_at,
            "expires_at": token.expires_at,
            "auth_time": token.auth_time,
            "status": token.status.value,
            "family_expires_at": token.family_expires_at,
            "grant_type": token.grant_type,
            "successor_hash": token.successor_hash,
            "rotated_at": token.rotated_at,
            "amr": amr_text(token.amr),
        }
        await _insert(self._conn, _REFRESH_INSERT, values, "refresh token collision")

    async def get(self, token_hash: str) -> RefreshToken | None:
        row = (await self._conn.execute(_REFRESH_GET, {"b_token_hash": token_hash})).first()
        return None if row is None else _refresh(row)

    async def rotate(self, token_hash: str, successor: RefreshToken, now: Timestamp) -> bool:
        """Mark an active token rotated (naming its successor) and add the successor; True for
        exactly one of concurrent callers, and on False nothing was written.

        Carries out refresh token rotation (RFC 9700 §4.14.2: each refresh invalidates the
        previous refresh token): a second use of the same token finds it rotated, and the service
        then treats it as a retry within the grace window or as a replay."""
        params = {"b_token_hash": token_hash, "b_successor_hash": successor.token_hash,
                  "b_rotated_at": now}
        if (await self._conn.execute(_REFRESH_ROTATE, params)).rowcount != 1:
            return False
        await self.add(successor)
        return True

    async def reissue(self, token_hash: str, replaced_hash: str, successor: RefreshToken) -> bool:
        """Point the rotated ``token_hash`` from its unused successor ``replaced_hash`` to
        ``successor``, revoking ``replaced_hash``; True for exactly one of concurrent callers,
        and on False nothing was written.

        Both rows are locked first (in token-hash order, as ``revoke_family`` locks them), so
        concurrent retries serialize; if the successor turns out to be used (or revoked), the
        pointer is put back while this transaction still holds the parent's row lock."""
        conn = self._conn
        await conn.execute(_REFRESH_LOCK_PAIR, {"b_first": token_hash, "b_second": replaced_hash})
        repoint = {"b_token_hash": token_hash, "b_expected": replaced_hash,
                   "b_successor_hash": successor.token_hash}
        if (await conn.execute(_REFRESH_REPOINT, repoint)).rowcount != 1:
            return False
        revoke = {"b_token_hash": replaced_hash}
        if (await conn.execute(_REFRESH_REVOKE_UNUSED, revoke)).rowcount != 1:
            undo = {"b_token_hash": token_hash, "b_expected": successor.token_hash,
                    "b_successor_hash": replaced_hash}
            await conn.execute(_REFRESH_REPOINT, undo)
            return False
        await self.add(successor)
        return True

    async def revoke_family(self, family_id: str) -> int:
        """Revoke every not-yet-revoked token of a family; return how many changed.

        Carries out RFC 9700 §4.14.2 on replay of a rotated token (the server cannot tell the
        attacker from the legitimate client, so it revokes the active token, and with it the
        whole family) and RFC 6749 §4.1.2 on replay of a redeemed device code."""
        params = {"b_family_id": family_id}
        await self._conn.execute(_REFRESH_LOCK_FAMILY, params)
        result = await self._conn.execute(_REFRESH_REVOKE_FAMILY, params)
        return result.rowcount

    async def families(self, user_id: str) -> Sequence[str]:
        result = await self._conn.execute(_REFRESH_FAMILIES, {"b_user_id": user_id})
        return list(result.scalars())

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        """Delete up to ``limit`` tokens whose ``expires_at`` is before ``expired_before``."""
        return await _purge(self._conn, _REFRESH_PURGE, expired_before, limit)

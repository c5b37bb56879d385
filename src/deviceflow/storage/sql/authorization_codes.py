"""SQL repository of authorization codes (RFC 6749 §4.1.2): single use is one conditional
``UPDATE … WHERE status = 'issued'`` whose row count decides between concurrent redemptions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ...protocol.models import AuthorizationCode, CodeStatus, RequestOrigin, Timestamp
from . import tables as t
from .dml import (
    amr_of,
    amr_text,
    insert,
    insert_unless_taken,
    purge,
    purge_statement,
    split_words,
)

_a = t.authorization_codes

_GET = select(_a).where(_a.c.code_hash == bindparam("b_code_hash"))
_INSERT = insert_unless_taken(_a)
_REDEEM = (
    update(_a)
    .where(_a.c.code_hash == bindparam("b_code_hash"), _a.c.status == CodeStatus.ISSUED.value)
    .values(status=CodeStatus.REDEEMED.value)
)
_PURGE = purge_statement(_a, _a.c.code_hash)


def _code(row: Row[Any]) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=row.code_hash,
        client_id=row.client_id,
        user_id=row.user_id,
        redirect_uri=row.redirect_uri,
        redirect_uri_given=bool(row.redirect_uri_given),
        scope=split_words(row.scope),
        code_challenge=row.code_challenge,
        nonce=row.nonce,
        auth_time=row.auth_time,
        created_at=row.created_at,
        expires_at=row.expires_at,
        origin=RequestOrigin(row.ip_address, row.user_agent),
        status=CodeStatus(row.status),
        amr=amr_of(row.amr),
    )


class SqlAuthorizationCodes:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, code: AuthorizationCode) -> None:
        values = {
            "code_hash": code.code_hash,
            "client_id": code.client_id,
            "user_id": code.user_id,
            "redirect_uri": code.redirect_uri,
            "redirect_uri_given": int(code.redirect_uri_given),
            "scope": " ".join(code.scope),
            "code_challenge": code.code_challenge,
            "nonce": code.nonce,
            "auth_time": code.auth_time,
            "created_at": code.created_at,
            "expires_at": code.expires_at,
            "ip_address": code.origin.ip_address,
            "user_agent": code.origin.user_agent,
            "status": code.status.value,
            "amr": amr_text(code.amr),
        }
        await insert(self._conn, _INSERT, values, "authorization code")

    async def get(self, code_hash: str) -> AuthorizationCode | None:
        row = (await self._conn.execute(_GET, {"b_code_hash": code_hash})).first()
        return None if row is None else _code(row)

    async def redeem(self, code_hash: str) -> bool:
        result = await self._conn.execute(_REDEEM, {"b_code_hash": code_hash})
        return result.rowcount == 1

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        return await purge(self._conn, _PURGE, expired_before, limit)

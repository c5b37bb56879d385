"""SQL implementation of ``ConsentRepository``: remembered consent, a row per granted scope.

Granting is one ``INSERT … ON CONFLICT DO NOTHING`` of every scope's row (and the empty-scope row
that marks the client approved): the union of concurrent approvals is what the database holds,
with no read-modify-write anywhere. Withdrawing is one ``DELETE``, whose row count tells exactly
one of concurrent withdrawers that it removed the consent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ...protocol.consent import Consent
from ...protocol.models import Timestamp
from . import tables as t
from .dml import insert_unless_taken

_c = t.consents
APPROVED = ""
"""The scope of the row that marks the client approved (a consent may grant no scope)."""

_GRANT = insert_unless_taken(_c)
_GET = select(_c.c.client_id, _c.c.scope, _c.c.granted_at).where(
    _c.c.user_id == bindparam("b_user_id"), _c.c.client_id == bindparam("b_client_id"))
_FOR_USER = select(_c.c.client_id, _c.c.scope, _c.c.granted_at).where(
    _c.c.user_id == bindparam("b_user_id")).order_by(_c.c.client_id, _c.c.scope)
_FORGET_CLIENT = delete(_c).where(_c.c.client_id == bindparam("b_client_id"),
                                  _c.c.scope == APPROVED)
_FORGET_CLIENT_SCOPES = delete(_c).where(_c.c.client_id == bindparam("b_client_id"))
_WITHDRAW = delete(_c).where(_c.c.user_id == bindparam("b_user_id"),
                             _c.c.client_id == bindparam("b_client_id"))


def rows_to_consents(user_id: str, rows: Iterable[tuple[str, str, Timestamp]]
                     ) -> list[Consent]:
    """Fold (client, scope, granted_at) rows into one ``Consent`` per client that has its
    approved row (scope rows without it cannot occur: both are written in one statement)."""
    by_client: dict[str, list[tuple[str, Timestamp]]] = {}
    for client_id, scope, granted_at in rows:
        by_client.setdefault(client_id, []).append((scope, granted_at))
    found = []
    for client_id, scopes in sorted(by_client.items()):
        if not any(scope == APPROVED for scope, _ in scopes):
            continue
        times = [at for _, at in scopes]
        found.append(Consent(user_id=user_id, client_id=client_id,
                             scopes=frozenset(s for s, _ in scopes if s != APPROVED),
                             granted_at=min(times), updated_at=max(times)))
    return found


def _triples(rows: Iterable[Any]) -> list[tuple[str, str, Timestamp]]:
    return [(row.client_id, row.scope, float(row.granted_at)) for row in rows]


class SqlConsents:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def grant(self, user_id: str, client_id: str, scopes: Iterable[str],
                    now: Timestamp) -> None:
        values = [{"user_id": user_id, "client_id": client_id, "scope": scope,
                   "granted_at": now}
                  for scope in sorted({APPROVED, *scopes})]  # sorted: one lock order
        await self._conn.execute(_GRANT[self._conn.dialect.name], values)

    async def get(self, user_id: str, client_id: str) -> Consent | None:
        rows = await self._conn.execute(_GET, {"b_user_id": user_id, "b_client_id": client_id})
        found = rows_to_consents(user_id, _triples(rows))
        return found[0] if found else None

    async def for_user(self, user_id: str) -> Sequence[Consent]:
        rows = await self._conn.execute(_FOR_USER, {"b_user_id": user_id})
        return rows_to_consents(user_id, _triples(rows))

    async def withdraw(self, user_id: str, client_id: str) -> bool:
        result = await self._conn.execute(
            _WITHDRAW, {"b_user_id": user_id, "b_client_id": client_id})
        return result.rowcount > 0

    async def forget_client(self, client_id: str) -> int:
        params = {"b_client_id": client_id}
        people = (await self._conn.execute(_FORGET_CLIENT, params)).rowcount  # one row each
        await self._conn.execute(_FORGET_CLIENT_SCOPES, params)
        return people


__all__ = ["APPROVED", "SqlConsents", "rows_to_consents"]

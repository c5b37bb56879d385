"""The two statement shapes every SQL repository shares: an insert that reports a taken key
without breaking the transaction, and a purge of expired rows in small batches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Delete

from ...protocol.models import PASSWORD_AMR, Timestamp
from ..interface import AlreadyExistsError


def insert_unless_taken(table: Any) -> dict[str, Any]:
    """``INSERT … ON CONFLICT DO NOTHING`` for each dialect (the construct is dialect-specific in
    SQLAlchemy; the SQL is the same on both)."""
    return {"postgresql": pg_insert(table).on_conflict_do_nothing(),
            "sqlite": sqlite_insert(table).on_conflict_do_nothing()}


async def insert(conn: AsyncConnection, stmts: Mapping[str, Any], values: Mapping[str, Any],
                 key: str) -> None:
    """Insert, or raise ``AlreadyExistsError`` when a unique key is taken, leaving the caller's
    transaction usable (so the service can retry with a fresh user code).

    ``ON CONFLICT DO NOTHING`` turns a taken key into "0 rows inserted" instead of an error, so
    no SAVEPOINT is needed to keep a PostgreSQL transaction alive after it: one statement where
    a savepoint took three round trips, on every device authorization and token issue. Only
    uniqueness is absorbed; any other integrity error (a CHECK the schema does not know) is a
    bug and still raises."""
    result = await conn.execute(stmts[conn.dialect.name], values)
    if result.rowcount == 0:
        raise AlreadyExistsError(key)


async def purge(conn: AsyncConnection, stmt: Delete, expired_before: Timestamp, limit: int) -> int:
    if limit <= 0:
        return 0
    result = await conn.execute(stmt, {"b_before": expired_before, "b_limit": limit})
    return result.rowcount


def purge_statement(table: Any, pk: Any) -> Delete:
    # DELETE … WHERE pk IN (SELECT pk … LIMIT n): both dialects accept it (neither needs
    # DELETE … LIMIT, which PostgreSQL lacks), and a small batch keeps each lock short.
    doomed = (
        select(pk).where(table.c.expires_at < bindparam("b_before")).limit(bindparam("b_limit"))
    )
    return delete(table).where(pk.in_(doomed))


__all__ = ["insert", "insert_unless_taken", "purge", "purge_statement"]


def join_words(words: frozenset[str]) -> str:
    """A set of words (scopes, grant types) as one column: sorted, so equal sets are equal text."""
    return " ".join(sorted(words))


def split_words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def amr_text(amr: tuple[str, ...]) -> str:
    """RFC 8176 ``amr`` values as one column, in their order."""
    return " ".join(amr)


def amr_of(text: str | None) -> tuple[str, ...]:
    """A stored ``amr``; NULL (a row from before 0012) was a password sign-in."""
    return tuple(text.split()) if text else PASSWORD_AMR

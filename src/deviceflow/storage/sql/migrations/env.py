"""Alembic environment for the packaged migrations: one history for SQLite and PostgreSQL.

``engine.upgrade`` hands in an open connection (``config.attributes["connection"]``) inside the
transaction it owns. Without one (a developer running ``command.revision`` with
``engine.alembic_config(url)``), this module opens an async engine on ``attributes["url"]``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.pool import NullPool

from deviceflow.storage.sql.engine import _create_engine, async_url, default_db_url
from deviceflow.storage.sql.tables import metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode copies the table, and is a no-op
        # wrapper on PostgreSQL, so one migration script serves both.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_new_engine(url: str) -> None:
    engine = _create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await engine.dispose()


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    return str(url) if url else default_db_url()


if context.is_offline_mode():
    context.configure(
        url=async_url(_url()),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    _configure(connection)
else:
    asyncio.run(_run_on_new_engine(_url()))

"""Opening the configured database the same way everywhere (server, operator commands, demo):
migrate to the newest revision when asked, then open the pooled store."""

from __future__ import annotations

from ..storage.interface import Store


async def open_store(db_url: str, *, migrate: bool = True) -> Store:
    from ..storage.sql.engine import create_store, upgrade

    if migrate:
        await upgrade(db_url)
    return create_store(db_url)

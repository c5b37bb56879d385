"""The packaged Alembic history on SQLite and PostgreSQL: upgrade from empty, idempotence, the
reported revision, and a migrated schema identical to ``tables.metadata``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Connection, Integer, MetaData, Table, insert, inspect, text
from sqlalchemy.exc import IntegrityError
from tests.support.databases import sqlite_url

from deviceflow.storage.interface import SecretEncryption, StoredSecret
from deviceflow.storage.sql import tables
from deviceflow.storage.sql.engine import (
    alembic_config,
    create_store,
    current_revision,
    head_revision,
    upgrade,
    upgrade_sync,
)
from deviceflow.storage.sql.repository import SqlStore

pytestmark = pytest.mark.anyio

KEY = StoredSecret(b"key", SecretEncryption.AES_256_GCM)
TABLES = {
    "clients", "users", "device_authorizations", "refresh_tokens", "server_secrets",
    "browser_sessions", "token_denylist", "audit_log", "signing_keys", "grants",
    "authorization_codes",
    "notification_outbox",
    "code_accounts",
    "totp_factors", "recovery_codes",
    "consents",
}


def schema_diff(conn: Connection, metadata: MetaData) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def diff_against(store: SqlStore, metadata: MetaData) -> list[object]:
    async with store.engine.connect() as conn:
        return await conn.run_sync(schema_diff, metadata)


def test_the_history_has_one_head() -> None:
    assert head_revision() == "0013"


async def test_upgrade_from_empty_reaches_head(empty_db_url: str) -> None:
    assert await current_revision(empty_db_url) is None
    await upgrade(empty_db_url)
    assert await current_revision(empty_db_url) == head_revision()
    store = create_store(empty_db_url)
    try:
        async with store.engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await store.close()
    assert names == TABLES | {"alembic_version"}


async def test_upgrade_twice_is_idempotent_and_keeps_data(empty_db_url: str) -> None:
    await upgrade(empty_db_url)
    store = create_store(empty_db_url)
    try:
        async with store.unit_of_work() as uow:
            await uow.secrets.add_if_absent("hmac", KEY)
            await uow.commit()
        await upgrade(empty_db_url)
        assert await current_revision(empty_db_url) == head_revision()
        async with store.unit_of_work() as uow:
            assert await uow.secrets.get("hmac") == KEY
    finally:
        await store.close()


async def test_workers_upgrading_at_once_all_succeed(empty_db_url: str) -> None:
    # Several server processes starting together on a fresh database (PostgreSQL: advisory
    # lock; SQLite: BEGIN IMMEDIATE).
    await asyncio.gather(*(upgrade(empty_db_url) for _ in range(4)))
    assert await current_revision(empty_db_url) == head_revision()
    if empty_db_url.startswith("sqlite"):
        # Only one of them could switch the fresh file to WAL; the others went on regardless.
        store = create_store(empty_db_url)
        try:
            async with store.engine.connect() as conn:
                mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
        finally:
            await store.close()
        assert mode == "wal"


async def test_migrated_schema_equals_the_tables(empty_db_url: str) -> None:
    await upgrade(empty_db_url)
    store = create_store(empty_db_url)
    try:
        assert await diff_against(store, tables.metadata) == []
        # The comparison is not vacuous: a column the migrations lack shows up.
        changed = MetaData(naming_convention=tables.NAMING_CONVENTION)
        for table in tables.metadata.sorted_tables:
            table.to_metadata(changed)
        Table("clients", changed, Column("extra", Integer), extend_existing=True)
        diff = await diff_against(store, changed)
    finally:
        await store.close()
    assert [d[0] for d in diff if isinstance(d, tuple)] == ["add_column"]


async def test_downgrade_to_base_and_upgrade_again(empty_db_url: str) -> None:
    await upgrade(empty_db_url)
    store = create_store(empty_db_url)

    def downgrade(conn: Connection) -> None:
        config = alembic_config(empty_db_url)
        config.attributes["connection"] = conn
        command.downgrade(config, "base")

    try:
        async with store.engine.connect() as conn:
            await conn.run_sync(downgrade)
            await conn.commit()
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await store.close()
    assert names & TABLES == set()
    assert await current_revision(empty_db_url) is None
    await upgrade(empty_db_url)
    assert await current_revision(empty_db_url) == head_revision()


def test_upgrade_sync_from_plain_code(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "nested" / "dirs" / "db.sqlite3")  # parents are created
    upgrade_sync(url)
    assert asyncio.run(current_revision(url)) == head_revision()


async def test_upgrade_sync_inside_a_running_event_loop(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "db.sqlite3")
    upgrade_sync(url)  # runs on a helper thread: this loop is already running
    assert await current_revision(url) == head_revision()


async def test_current_revision_does_not_create_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.sqlite3"
    assert await current_revision(sqlite_url(path)) is None
    assert not path.exists()


async def test_the_schema_refuses_an_unknown_status(empty_db_url: str) -> None:
    # The CHECK constraints hold on both dialects, so a bug cannot store an unknown state.
    await upgrade(empty_db_url)
    store = create_store(empty_db_url)
    try:
        async with store.unit_of_work() as uow:
            with pytest.raises(IntegrityError):
                await uow.connection.execute(
                    insert(tables.clients).values(
                        client_id="c",
                        name="n",
                        client_type="bogus",
                        grant_types="",
                        scopes="",
                        created_at=0.0,
                    )
                )
    finally:
        await store.close()


async def test_0004_keeps_existing_refresh_tokens_working(empty_db_url: str) -> None:
    # A token stored before 0004 gets the device grant as its gty and a family end 90 days
    # (the default absolute lifetime) after its sign-in, and still reads through the port.
    store = create_store(empty_db_url)

    def migrate(conn: Connection, target: str) -> None:
        config = alembic_config(empty_db_url)
        config.attributes["connection"] = conn
        command.upgrade(config, target)

    try:
        async with store.engine.connect() as conn:
            await conn.run_sync(migrate, "0001")
            await conn.execute(text(
                "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scope,"
                " issued_at, expires_at, auth_time, status) VALUES ('h', 'f', 'c', 'u',"
                " 'openid offline_access', 100.0, 200.0, 50.5, 'active')"))
            await conn.commit()
            await conn.run_sync(migrate, "head")
            await conn.commit()
        async with store.unit_of_work() as uow:
            token = await uow.refresh_tokens.get("h")
    finally:
        await store.close()
    assert token is not None
    assert token.grant_type == "urn:ietf:params:oauth:grant-type:device_code"
    assert token.family_expires_at == 50.5 + 90 * 86400
    assert (token.successor_hash, token.rotated_at) == (None, None)
    assert token.scope == ("openid", "offline_access")


async def test_0008_lists_families_begun_before_it_without_an_origin(empty_db_url: str) -> None:
    # A family from before 0008 has no grants row: it is still a signed-in device (listed,
    # revocable), with its approval and origin unknown.
    store = create_store(empty_db_url)

    def migrate(conn: Connection, target: str) -> None:
        config = alembic_config(empty_db_url)
        config.attributes["connection"] = conn
        command.upgrade(config, target)

    try:
        async with store.engine.connect() as conn:
            await conn.run_sync(migrate, "0004")
            await conn.execute(text(
                "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scope,"
                " issued_at, expires_at, auth_time, status, family_expires_at, grant_type)"
                " VALUES ('h', 'f', 'c', 'u', 'openid offline_access', 100.0, 200.0, 50.5,"
                " 'active', 300.0, 'urn:ietf:params:oauth:grant-type:device_code')"))
            await conn.commit()
            await conn.run_sync(migrate, "head")
            await conn.commit()
        async with store.unit_of_work() as uow:
            grants = await uow.grants.active(150.0, user_id="u")
    finally:
        await store.close()
    assert [(g.family_id, g.client_id, g.last_used_at, g.approved_at, g.origin)
            for g in grants] == [("f", "c", 100.0, None, None)]


async def test_0009_gives_existing_clients_no_redirect_uri(empty_db_url: str) -> None:
    # A client from before 0009 keeps its grants and gets no redirect URI: /authorize refuses
    # it until the operator registers one.
    store = create_store(empty_db_url)

    def migrate(conn: Connection, target: str) -> None:
        config = alembic_config(empty_db_url)
        config.attributes["connection"] = conn
        command.upgrade(config, target)

    try:
        async with store.engine.connect() as conn:
            await conn.run_sync(migrate, "0008")
            await conn.execute(text(
                "INSERT INTO clients (client_id, name, client_type, grant_types, scopes,"
                " created_at) VALUES ('tv', 'TV', 'public', 'refresh_token', 'openid', 1.0)"))
            await conn.commit()
            await conn.run_sync(migrate, "head")
            await conn.commit()
        async with store.unit_of_work() as uow:
            client = await uow.clients.get("tv")
    finally:
        await store.close()
    assert client is not None
    assert (client.redirect_uris, client.grant_types) == (frozenset(), frozenset({"refresh_token"}))

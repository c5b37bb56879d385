"""Secrets at rest on SQLite and PostgreSQL (docs/security.md, "Secrets at rest"): the raw
``server_secrets`` rows hold no key material, a dump opens with no other key, a missing or wrong
key-encryption key stops the start, a 0.1 database is sealed on its first start with the same
keys, and the app refuses key material that other local users can read."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.pool import NullPool
from tests.support.stores import empty_database_url

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.tokens import ACCESS_TOKEN_TYP
from deviceflow.server import keys as keys_module
from deviceflow.server.bootstrap import key_source
from deviceflow.server.embedded import free_port, serve_in_thread
from deviceflow.server.keys import (
    HMAC_SECRET_NAME,
    SESSION_SECRET_NAME,
    SIGNING_KEY_PREFIX,
    KeyRing,
    load_keyring,
)
from deviceflow.server.secretbox import (
    SEALED_PREFIX,
    KeyFile,
    MissingKeyError,
    SecretBox,
    WrongKeyError,
)
from deviceflow.server.web.app import create_app
from deviceflow.storage.files import ExposedFileError
from deviceflow.storage.sql import engine
from deviceflow.storage.sql.engine import alembic_config, create_store, upgrade

pytestmark = pytest.mark.anyio

CLAIMS: dict[str, object] = {"iss": "https://as.example", "sub": "u1", "exp": 4_000_000_000}
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database."""
    with empty_database_url(request.param, tmp_path) as url:
        yield url


async def raw_rows(url: str) -> dict[str, tuple[bytes, str]]:
    """``server_secrets`` as a dump shows it: name → (value, encryption)."""
    store = create_store(url, pool_size=1)
    try:
        async with store.engine.connect() as conn:
            result = await conn.execute(text("SELECT name, value, encryption FROM server_secrets"))
            return {row[0]: (bytes(row[1]), row[2]) for row in result}
    finally:
        await store.close()


async def keyring(url: str, kek: KeyFile | SecretBox) -> KeyRing:
    store = create_store(url, pool_size=2)
    try:
        return await load_keyring(store, kek, "RS256", ("ES256",))
    finally:
        await store.close()


def private_material(name: str, plaintext: bytes) -> list[bytes]:
    if not name.startswith(SIGNING_KEY_PREFIX):
        return [plaintext]
    jwk = json.loads(plaintext)
    return [plaintext, *(str(jwk[m]).encode() for m in PRIVATE_MEMBERS if m in jwk)]


async def test_a_dump_of_server_secrets_holds_no_key_material(
    db_url: str, tmp_path: Path
) -> None:
    await upgrade(db_url)
    kek = KeyFile(tmp_path / "deviceflow.key")
    ring = await keyring(db_url, kek)
    rows = await raw_rows(db_url)
    assert set(rows) == {HMAC_SECRET_NAME, SESSION_SECRET_NAME, SIGNING_KEY_PREFIX + "RS256",
                         SIGNING_KEY_PREFIX + "ES256"}
    box = kek.load(create=False)
    assert box.open(SESSION_SECRET_NAME, rows[SESSION_SECRET_NAME][0]) == ring.session_secret
    for name, (value, encryption) in rows.items():
        assert encryption == "aes-256-gcm"
        assert value.startswith(SEALED_PREFIX)
        plaintext = box.open(name, value)
        material = private_material(name, plaintext)
        assert len(material) == (1 if name in (HMAC_SECRET_NAME, SESSION_SECRET_NAME) else
                                 1 + (6 if name.endswith("RS256") else 1))
        for secret in material:
            assert secret not in value, name
        with pytest.raises(WrongKeyError):  # without the KEK the dump is noise
            SecretBox.generate().open(name, value)


async def test_a_missing_or_wrong_kek_stops_the_start_and_changes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    await upgrade(db_url)
    kek = KeyFile(tmp_path / "deviceflow.key")
    first = await keyring(db_url, kek)
    before = await raw_rows(db_url)
    kept = kek.path.read_bytes()
    kek.path.unlink()
    with pytest.raises(MissingKeyError, match="is missing; restore it from your backup"):
        await keyring(db_url, kek)
    assert not kek.path.exists()
    with pytest.raises(WrongKeyError, match="DEVICEFLOW_SECRET_KEY"):
        await keyring(db_url, SecretBox.generate("DEVICEFLOW_SECRET_KEY"))
    assert await raw_rows(db_url) == before  # never regenerated
    kek.path.write_bytes(kept)
    kek.path.chmod(0o600)
    again = await keyring(db_url, kek)
    assert again.jwks == first.jwks


# --- a database of deviceflow 0.1 ---------------------------------------------------------------


async def upgrade_to(url: str, revision: str) -> None:
    def run(conn: Connection) -> None:
        conn.begin()
        config = alembic_config(url)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)

    path = engine.sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    sql = engine._create_engine(url, poolclass=NullPool)
    try:
        async with sql.connect() as conn:
            await conn.run_sync(run)
            await conn.commit()
    finally:
        await sql.dispose()


async def a_0_1_database(url: str) -> KeyRing:
    """Schema 0001 with the secrets in plaintext, as 0.1's load_keyring wrote them; returns the
    key ring 0.1 served with."""
    await upgrade_to(url, "0001")
    hmac_secret, session_secret = secrets.token_bytes(32), secrets.token_bytes(32)
    keys = {alg: keys_module.generate_key(alg) for alg in ("RS256", "ES256")}
    rows = {HMAC_SECRET_NAME: hmac_secret, SESSION_SECRET_NAME: session_secret} | {
        SIGNING_KEY_PREFIX + alg: json.dumps(key.as_dict(private=True)).encode()
        for alg, key in keys.items()}
    sql = engine._create_engine(url, poolclass=NullPool)
    try:
        async with sql.begin() as conn:
            for name, value in rows.items():
                await conn.execute(
                    text("INSERT INTO server_secrets (name, value) VALUES (:name, :value)"),
                    {"name": name, "value": value},
                )
    finally:
        await sql.dispose()
    return KeyRing(hmac_secret, session_secret, dict(keys), "RS256")


async def test_a_0_1_database_is_sealed_on_first_start_with_the_same_keys(
    db_url: str, tmp_path: Path
) -> None:
    old = await a_0_1_database(db_url)
    token = old.signer.sign(CLAIMS, ACCESS_TOKEN_TYP)
    plaintext = await raw_rows_0001(db_url)
    assert plaintext[SESSION_SECRET_NAME] == old.session_secret  # 0.1: in clear

    await upgrade(db_url)
    assert {e for _, e in (await raw_rows(db_url)).values()} == {"none"}
    kek = KeyFile(tmp_path / "deviceflow.key")
    ring = await keyring(db_url, kek)

    rows = await raw_rows(db_url)
    box = kek.load(create=False)
    for name, (value, encryption) in rows.items():
        assert encryption == "aes-256-gcm", name
        for secret in private_material(name, box.open(name, value)):
            assert secret not in value, name
    assert ring.verify(token, ACCESS_TOKEN_TYP) == CLAIMS  # signed by 0.1, verified now
    assert ring.jwks == old.jwks
    assert ring.hasher.device_code("dc") == old.hasher.device_code("dc")
    assert ring.hasher.user_code("BCDFGHJK") == old.hasher.user_code("BCDFGHJK")
    assert ring.session_secret == old.session_secret
    again = await keyring(db_url, kek)  # the next start opens them, and seals nothing again
    assert await raw_rows(db_url) == rows
    assert again.jwks == old.jwks


async def raw_rows_0001(url: str) -> dict[str, bytes]:
    """``server_secrets`` of schema 0001, which has no ``encryption`` column."""
    store = create_store(url, pool_size=1)
    try:
        async with store.engine.connect() as conn:
            result = await conn.execute(text("SELECT name, value FROM server_secrets"))
            return {row[0]: bytes(row[1]) for row in result}
    finally:
        await store.close()


async def test_workers_starting_at_once_on_a_0_1_database_seal_it_once(
    db_url: str, tmp_path: Path
) -> None:
    old = await a_0_1_database(db_url)
    await upgrade(db_url)
    kek = KeyFile(tmp_path / "deviceflow.key")  # not there yet: the workers create it
    rings = await asyncio.gather(*(keyring(db_url, kek) for _ in range(4)))
    assert all(r.jwks == old.jwks for r in rings)
    assert {r.hasher.device_code("dc") for r in rings} == {old.hasher.device_code("dc")}
    box = kek.load(create=False)
    for name, (value, encryption) in (await raw_rows(db_url)).items():
        assert encryption == "aes-256-gcm"
        box.open(name, value)  # sealed once: it opens (sealed twice, it would not)


# --- the app's start-up checks ------------------------------------------------------------------


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def settings_for(tmp_path: Path, **overrides: object) -> ServerSettings:
    database = tmp_path / "data" / "deviceflow.sqlite3"
    return ServerSettings(issuer="http://127.0.0.1:8000", db=f"sqlite:///{database}",
                          log_format="text", **overrides)  # type: ignore[arg-type]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_app_makes_private_files_whatever_the_umask(
    tmp_path: Path, open_umask: None
) -> None:
    settings = settings_for(tmp_path)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        data = tmp_path / "data"
        names = {p.name for p in data.iterdir()}
        assert {"deviceflow.sqlite3", "deviceflow.sqlite3-wal", "deviceflow.sqlite3-shm",
                "deviceflow.key"} <= names, names
        assert {p.name: mode(p) for p in data.iterdir()} == dict.fromkeys(names, 0o600)
        assert mode(data) == 0o700
        assert settings.effective_secret_key_file == data / "deviceflow.key"


@pytest.mark.parametrize("exposed", ["deviceflow.sqlite3", "deviceflow.key"])
async def test_the_app_refuses_key_material_other_users_can_read(
    tmp_path: Path, exposed: str
) -> None:
    settings = settings_for(tmp_path)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass
    path = tmp_path / "data" / exposed
    path.chmod(0o644)
    app = create_app(settings)
    with pytest.raises(ExposedFileError) as info:
        async with app.router.lifespan_context(app):
            pass
    assert str(info.value) == (
        f"{path} is readable by other users (mode 0644); run: chmod 600 {path}")
    assert app.state.startup_error is info.value


async def test_the_app_takes_its_kek_from_deviceflow_secret_key(tmp_path: Path) -> None:
    value = secrets.token_urlsafe(32)
    settings = settings_for(tmp_path, secret_key=value)
    assert key_source(settings) == SecretBox.from_text(value)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass
    assert not (tmp_path / "data" / "deviceflow.key").exists()  # no key file beside it
    wrong = create_app(settings_for(tmp_path, secret_key=secrets.token_urlsafe(32)))
    with pytest.raises(WrongKeyError):
        async with wrong.router.lifespan_context(wrong):
            pass


def test_the_embedded_server_raises_the_refusal_itself(tmp_path: Path) -> None:
    # What `deviceflow demo` shows: the sentence, not "the embedded server did not start".
    settings = settings_for(tmp_path, port=free_port())
    database = tmp_path / "data" / "deviceflow.sqlite3"
    database.parent.mkdir()
    database.write_bytes(b"")
    database.chmod(0o644)
    with (pytest.raises(ExposedFileError, match=r"run: chmod 600 .*deviceflow\.sqlite3$"),
          serve_in_thread(settings, timeout=20)):
        pass


async def test_downgrading_below_0002_refuses_sealed_secrets(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'deviceflow.sqlite3'}"
    await upgrade(url)
    await keyring(url, SecretBox.generate())

    def downgrade(conn: Connection) -> None:
        conn.begin()
        config = alembic_config(url)
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")

    sql = engine._create_engine(url, poolclass=NullPool)
    try:
        async with sql.connect() as conn:
            with pytest.raises(RuntimeError, match=r"0\.1 cannot read"):
                await conn.run_sync(downgrade)
    finally:
        await sql.dispose()
    assert {e for _, e in (await raw_rows(url)).values()} == {"aes-256-gcm"}

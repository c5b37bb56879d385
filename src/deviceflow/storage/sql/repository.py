"""SQL implementations of the storage ports (``storage/interface.py``) on SQLAlchemy 2 Core.

The same SQL runs on SQLite (aiosqlite) and PostgreSQL (asyncpg); only ``INSERT … ON CONFLICT DO
NOTHING`` needs a construct per dialect in SQLAlchemy. Every compare-and-set is
one ``UPDATE … WHERE <key> AND <expected state>`` whose rowcount says who won: the database, not
Python, decides between concurrent callers, so single use of a device code and of a rotated refresh
token holds across processes and hosts.

Statements are built once at import time with named bind parameters, so SQLAlchemy's compiled
cache (and asyncpg's prepared-statement cache) reuses them; SQLite's read-only units of work
compile them once more and run them straight on the driver (``_InlineConnection``).
"""

from __future__ import annotations

import asyncio
import threading
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, cast

from sqlalchemy import Dialect, Engine, Row, Select, bindparam, delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ...protocol.models import (
    Client,
    ClientChanges,
    ClientType,
    DeviceAuthorization,
    DeviceStatus,
    RefreshStatus,
    RefreshToken,
    RequestOrigin,
    Timestamp,
    User,
)
from ..interface import (
    AlreadyExistsError,
    SecretEncryption,
    StorageError,
    StorageUnavailableError,
    StoredSecret,
)
from . import tables as t
from .audit import SqlAuditLog
from .denylist import SqlDenylist
from .dml import insert as _insert
from .dml import insert_unless_taken as _insert_unless_taken
from .dml import purge as _purge
from .dml import purge_statement as _purge_statement
from .grants import SqlGrants
from .sessions import SqlBrowserSessions
from .signing_keys import SqlSigningKeys

_c = t.clients
_u = t.users
_d = t.device_authorizations
_r = t.refresh_tokens
_s = t.server_secrets


def _join(words: frozenset[str]) -> str:
    # Sorted, so that equal sets are stored as equal text.
    return " ".join(sorted(words))


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# ---------------------------------------------------------------------------------------- clients

_CLIENT_GET = select(_c).where(_c.c.client_id == bindparam("b_client_id"))
_CLIENT_LIST = select(_c).order_by(_c.c.client_id)
_CLIENT_INSERT = _insert_unless_taken(_c)
_CLIENT_DELETE = delete(_c).where(_c.c.client_id == bindparam("b_client_id"))


def _client(row: Row[Any]) -> Client:
    return Client(
        client_id=row.client_id,
        name=row.name,
        client_type=ClientType(row.client_type),
        grant_types=frozenset(row.grant_types.split()),
        scopes=frozenset(row.scopes.split()),
        secret_hash=row.secret_hash,
        device_code_lifetime=row.device_code_lifetime,
        created_at=row.created_at,
    )


class SqlClients:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, client_id: str) -> Client | None:
        row = (await self._conn.execute(_CLIENT_GET, {"b_client_id": client_id})).first()
        return None if row is None else _client(row)

    async def add(self, client: Client) -> None:
        """Insert; ``AlreadyExistsError`` when the client id is taken."""
        values = {
            "client_id": client.client_id,
            "name": client.name,
            "client_type": client.client_type.value,
            "grant_types": _join(client.grant_types),
            "scopes": _join(client.scopes),
            "secret_hash": client.secret_hash,
            "device_code_lifetime": client.device_code_lifetime,
            "created_at": client.created_at,
        }
        await _insert(self._conn, _CLIENT_INSERT, values, client.client_id)

    async def list(self) -> Sequence[Client]:
        return [_client(row) for row in await self._conn.execute(_CLIENT_LIST)]

    async def remove(self, client_id: str) -> bool:
        result = await self._conn.execute(_CLIENT_DELETE, {"b_client_id": client_id})
        return result.rowcount == 1

    async def update(self, client_id: str, changes: ClientChanges) -> bool:
        values: dict[str, object] = {}
        if changes.name is not None:
            values["name"] = changes.name
        if changes.grant_types is not None:
            values["grant_types"] = _join(changes.grant_types)
        if changes.scopes is not None:
            values["scopes"] = _join(changes.scopes)
        if changes.default_device_code_lifetime:
            values["device_code_lifetime"] = None
        elif changes.device_code_lifetime is not None:
            values["device_code_lifetime"] = changes.device_code_lifetime
        where = _c.c.client_id == client_id
        # Nothing to change still answers whether the client exists (a no-op UPDATE would not).
        statement = update(_c).where(where).values(values) if values else (
            update(_c).where(where).values(client_id=_c.c.client_id))
        result = await self._conn.execute(statement)
        return result.rowcount == 1


# ------------------------------------------------------------------------------------------ users

_USER_GET = select(_u).where(_u.c.user_id == bindparam("b_user_id"))
_USER_BY_NAME = select(_u).where(_u.c.username == bindparam("b_username"))
_USER_LIST = select(_u).order_by(_u.c.username)
_USER_INSERT = _insert_unless_taken(_u)
_USER_DELETE = delete(_u).where(_u.c.username == bindparam("b_username"))
_USER_SET_PASSWORD = (
    update(_u)
    .where(_u.c.username == bindparam("b_username"))
    .values(password_hash=bindparam("b_password_hash"))
)


def _user(row: Row[Any]) -> User:
    return User(
        user_id=row.user_id,
        username=row.username,
        name=row.name,
        password_hash=row.password_hash,
        created_at=row.created_at,
    )


class SqlUsers:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, user_id: str) -> User | None:
        row = (await self._conn.execute(_USER_GET, {"b_user_id": user_id})).first()
        return None if row is None else _user(row)

    async def get_by_username(self, username: str) -> User | None:
        row = (await self._conn.execute(_USER_BY_NAME, {"b_username": username})).first()
        return None if row is None else _user(row)

    async def add(self, user: User) -> None:
        """Insert; ``AlreadyExistsError`` when the username (or the user id) is taken."""
        values = {
            "user_id": user.user_id,
            "username": user.username,
            "name": user.name,
            "password_hash": user.password_hash,
            "created_at": user.created_at,
        }
        await _insert(self._conn, _USER_INSERT, values, user.username)

    async def list(self) -> Sequence[User]:
        return [_user(row) for row in await self._conn.execute(_USER_LIST)]

    async def remove(self, username: str) -> bool:
        result = await self._conn.execute(_USER_DELETE, {"b_username": username})
        return result.rowcount == 1

    async def set_password_hash(self, username: str, password_hash: str) -> bool:
        params = {"b_username": username, "b_password_hash": password_hash}
        result = await self._conn.execute(_USER_SET_PASSWORD, params)
        return result.rowcount == 1


# -------------------------------------------------------------------------- device authorizations

_DEVICE_BY_DEVICE_CODE = select(_d).where(_d.c.device_code_hash == bindparam("b_device_code_hash"))
_DEVICE_BY_USER_CODE = select(_d).where(_d.c.user_code_hash == bindparam("b_user_code_hash"))
_DEVICE_INSERT = _insert_unless_taken(_d)

_POLL_SET: dict[str, Any] = {
    "last_polled_at": bindparam("b_last_polled_at"),
    "interval": bindparam("b_interval"),
}
_POLL_WHERE = (
    _d.c.device_code_hash == bindparam("b_device_code_hash"),
    _d.c.status == DeviceStatus.PENDING.value,
)
# Two statements rather than IS NOT DISTINCT FROM, which SQLite spells IS: ``= NULL`` is never
# true, so the first poll (no stored poll time yet) needs its own ``IS NULL`` form.
_POLL_AFTER_POLL = (
    update(_d)
    .where(*_POLL_WHERE, _d.c.last_polled_at == bindparam("b_expected_last_polled_at"))
    .values(_POLL_SET)
)
_POLL_FIRST = update(_d).where(*_POLL_WHERE, _d.c.last_polled_at.is_(None)).values(_POLL_SET)

_DEVICE_TRANSITION = (
    update(_d)
    .where(
        _d.c.device_code_hash == bindparam("b_device_code_hash"),
        _d.c.status == bindparam("b_expected"),
    )
    .values(
        status=bindparam("b_status"),
        user_id=bindparam("b_user_id"),
        auth_time=bindparam("b_auth_time"),
        decided_at=bindparam("b_decided_at"),
        last_polled_at=bindparam("b_last_polled_at"),
    )
)
_DEVICE_PURGE = _purge_statement(_d, _d.c.device_code_hash)


def _device(row: Row[Any]) -> DeviceAuthorization:
    return DeviceAuthorization(
        device_code_hash=row.device_code_hash,
        user_code_hash=row.user_code_hash,
        client_id=row.client_id,
        scope=_split(row.scope),
        status=DeviceStatus(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
        interval=row.interval,
        origin=RequestOrigin(ip_address=row.ip_address, user_agent=row.user_agent),
        last_polled_at=row.last_polled_at,
        user_id=row.user_id,
        auth_time=row.auth_time,
        decided_at=row.decided_at,
    )


class SqlDeviceAuthorizations:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, record: DeviceAuthorization) -> None:
        """Insert; ``AlreadyExistsError`` when the user code hash (or device code hash) is taken,
        and the transaction stays usable so the service can retry with a fresh code."""
        values = {
            "device_code_hash": record.device_code_hash,
            "user_code_hash": record.user_code_hash,
            "client_id": record.client_id,
            "scope": " ".join(record.scope),
            "status": record.status.value,
            "created_at": record.created_at,
            "expires_at": record.expires_at,
            "interval": record.interval,
            "ip_address": record.origin.ip_address,
            "user_agent": record.origin.user_agent,
            "last_polled_at": record.last_polled_at,
            "user_id": record.user_id,
            "auth_time": record.auth_time,
            "decided_at": record.decided_at,
        }
        await _insert(self._conn, _DEVICE_INSERT, values, "code collision")

    async def get_by_device_code(self, device_code_hash: str) -> DeviceAuthorization | None:
        params = {"b_device_code_hash": device_code_hash}
        row = (await self._conn.execute(_DEVICE_BY_DEVICE_CODE, params)).first()
        return None if row is None else _device(row)

    async def get_by_user_code(self, user_code_hash: str) -> DeviceAuthorization | None:
        params = {"b_user_code_hash": user_code_hash}
        row = (await self._conn.execute(_DEVICE_BY_USER_CODE, params)).first()
        return None if row is None else _device(row)

    async def transition(self, record: DeviceAuthorization, expected: DeviceStatus) -> bool:
        """Move to ``record.status`` with its decision fields only if the stored status is still
        ``expected``; exactly one of any number of concurrent callers gets True.

        Carries out single use: a device code is exchanged for tokens once, as an authorization
        code is (RFC 6749 §4.1.2: "The client MUST NOT use the authorization code more than
        once"), and a pending request is decided once (pending → approved | denied). The row
        lock makes each loser re-check the status after the winner commits and update 0 rows."""
        params = {
            "b_device_code_hash": record.device_code_hash,
            "b_expected": expected.value,
            "b_status": record.status.value,
            "b_user_id": record.user_id,
            "b_auth_time": record.auth_time,
            "b_decided_at": record.decided_at,
            "b_last_polled_at": record.last_polled_at,
        }
        result = await self._conn.execute(_DEVICE_TRANSITION, params)
        return result.rowcount == 1

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        """Delete up to ``limit`` records whose ``expires_at`` is before ``expired_before``."""
        return await _purge(self._conn, _DEVICE_PURGE, expired_before, limit)


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


# ---------------------------------------------------------------------------------------- secrets

_SECRET_GET = select(_s.c.value, _s.c.encryption).where(_s.c.name == bindparam("b_name"))
_SECRET_INSERT = _insert_unless_taken(_s)
_SECRET_NAMES = select(_s.c.name).order_by(_s.c.name)
# Compare-and-set on the plaintext marker: of two workers sealing 0.1's rows at once, the second
# UPDATE waits for the first (row lock, or SQLite's write lock) and then matches nothing.
_SECRET_SEAL = (
    update(_s)
    .where(_s.c.name == bindparam("b_name"), _s.c.encryption == SecretEncryption.NONE.value)
    .values(value=bindparam("b_value"), encryption=bindparam("b_encryption"))
)


class SqlSecrets:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, name: str) -> StoredSecret | None:
        row = (await self._conn.execute(_SECRET_GET, {"b_name": name})).first()
        return None if row is None else StoredSecret(bytes(row.value),
                                                     SecretEncryption(row.encryption))

    async def add_if_absent(self, name: str, secret: StoredSecret) -> StoredSecret:
        """Store ``secret`` unless ``name`` exists; return whichever is stored.

        Two workers starting at once agree on one secret: the losing INSERT waits for the
        winner's row (PostgreSQL) or its write lock (SQLite), inserts nothing, and then reads
        the winner's committed value."""
        values = {"name": name, "value": secret.value, "encryption": secret.encryption.value}
        try:
            await _insert(self._conn, _SECRET_INSERT, values, name)
        except AlreadyExistsError:
            stored = await self.get(name)
            if stored is None:  # pragma: no cover - the port has no way to delete a secret
                raise StorageError(f"secret {name!r} vanished while being created") from None
            return stored
        return secret

    async def seal(self, name: str, sealed: StoredSecret) -> bool:
        result = await self._conn.execute(_SECRET_SEAL, {
            "b_name": name, "b_value": sealed.value, "b_encryption": sealed.encryption.value})
        return result.rowcount == 1

    async def names(self) -> Sequence[str]:
        return list((await self._conn.execute(_SECRET_NAMES)).scalars())


# ------------------------------------------------------------------------------ unit of work, store


READ_ONLY_OPTION = "deviceflow_read_only"
"""Execution option marking a connection whose transaction only reads."""


class SqlUnitOfWork:
    """One transaction on one pooled connection. ``commit()`` commits; leaving the block without
    it rolls back. A statement after ``commit()`` starts a new transaction (autobegin).

    On SQLite, a unit of work also holds its store's write lock from entry to exit, so do not
    open one unit of work inside another on the same store: the inner one would wait for the
    outer (and fail after ``lock_timeout``)."""

    clients: SqlClients
    users: SqlUsers
    device_authorizations: SqlDeviceAuthorizations
    refresh_tokens: SqlRefreshTokens
    secrets: SqlSecrets
    browser_sessions: SqlBrowserSessions
    denylist: SqlDenylist
    audit_log: SqlAuditLog
    signing_keys: SqlSigningKeys
    grants: SqlGrants

    __slots__ = (
        "_conn",
        "_engine",
        "_held",
        "_lock",
        "_lock_timeout",
        "_read_only",
        "audit_log",
        "browser_sessions",
        "clients",
        "denylist",
        "device_authorizations",
        "grants",
        "refresh_tokens",
        "secrets",
        "signing_keys",
        "users",
    )

    def __init__(
        self, engine: AsyncEngine, lock: asyncio.Lock | None = None, lock_timeout: float = 30.0,
        *, read_only: bool = False,
    ) -> None:
        self._engine = engine
        self._read_only = read_only
        self._lock = lock
        self._lock_timeout = lock_timeout
        self._held = False
        self._conn: AsyncConnection | None = None

    @property
    def connection(self) -> AsyncConnection:
        """The connection of this unit of work, for tests and maintenance tasks."""
        if self._conn is None:
            raise RuntimeError("the unit of work is not open: use `async with`")
        return self._conn

    async def __aenter__(self) -> Self:
        if self._conn is not None:
            raise RuntimeError("a unit of work is entered once")
        if self._lock is not None:
            try:
                async with asyncio.timeout(self._lock_timeout):
                    await self._lock.acquire()
                self._held = True
            except TimeoutError:
                raise StorageError(
                    f"waited {self._lock_timeout:g} s for the SQLite write lock"
                ) from None
        try:
            conn = await self._engine.connect()
        except DBAPIError as exc:
            self._release()
            raise StorageUnavailableError(f"cannot connect: {type(exc.orig).__name__}") from exc
        except BaseException:
            self._release()
            raise
        if self._read_only:
            # Autocommit: a read-only unit of work needs no BEGIN/ROLLBACK round trips (each
            # SELECT sees committed data); the SQLite "begin" listener also skips its BEGIN.
            await conn.execution_options(**{READ_ONLY_OPTION: True}, isolation_level="AUTOCOMMIT")
        self._conn = conn
        self.clients = SqlClients(conn)
        self.users = SqlUsers(conn)
        self.device_authorizations = SqlDeviceAuthorizations(conn)
        self.refresh_tokens = SqlRefreshTokens(conn)
        self.secrets = SqlSecrets(conn)
        self.browser_sessions = SqlBrowserSessions(conn)
        self.denylist = SqlDenylist(conn)
        self.audit_log = SqlAuditLog(conn)
        self.signing_keys = SqlSigningKeys(conn)
        self.grants = SqlGrants(conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self.connection, None
        try:
            if exc_type is None:
                # Closing rolls back whatever was not committed and returns the connection to
                # the pool.
                await conn.close()
            else:
                # Leaving on an error may mean the task is being cancelled (a client hung up):
                # the shield lets the rollback finish so the connection returns to the pool.
                await asyncio.shield(conn.close())
        finally:
            self._release()
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            # The server went away under this unit of work. SQLAlchemy has invalidated the pool
            # (every connection older than this error is replaced), so a retry starts clean.
            raise StorageUnavailableError(
                f"database connection lost: {type(exc.orig).__name__}") from exc

    def _release(self) -> None:
        if self._lock is not None and self._held:
            self._held = False
            self._lock.release()

    async def commit(self) -> None:
        await self.connection.commit()


class _Compiled:
    """A Core ``SELECT`` compiled once for SQLite: the same SQL text SQLAlchemy would send, the
    order of its positional bind parameters, and a row type named after its columns."""

    __slots__ = ("binds", "make_row", "sql")

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        columns = list(statement.selected_columns)
        for column in columns:  # the rows come straight from the driver, unconverted
            if column.type._cached_result_processor(dialect, None) is not None:
                raise StorageError(f"inline reads cannot convert {column.type!r}")
        binds = compiled.binds
        for name in compiled.positiontup or ():
            if binds[name].expanding or binds[name].type._cached_bind_processor(dialect):
                raise StorageError(f"inline reads cannot bind {name!r}")
        self.sql = compiled.string
        # (name, from the caller?, fixed value): a named parameter comes from the caller, a
        # literal from the statement itself (``.limit(1)`` and the like).
        self.binds = [(name, binds[name].required, binds[name].effective_value)
                      for name in compiled.positiontup or ()]
        row: Any = namedtuple("Row", [c.key for c in columns], rename=True)  # type: ignore[misc]
        self.make_row: Callable[[Sequence[Any]], Any] = row._make


_MAX_COMPILED = 256


class _InlineResult:
    """The slice of SQLAlchemy's ``Result`` that the repositories' reads use."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar_one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise StorageError("more than one row where at most one was expected")
        return self._rows[0][0] if self._rows else None

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class _InlineConnection:
    """Just enough of ``AsyncConnection`` for the repositories' reads, run inline on the event
    loop straight on the SQLite driver (see ``InlineReadUnitOfWork``). Each statement is the
    repositories' own Core statement, compiled once (``_Compiled``): SQLAlchemy's per-execution
    work (connection object, compiled-cache lookup, result machinery) was most of a poll's
    storage cost, and none of it is needed for a fixed SELECT on an autocommit connection."""

    __slots__ = ("_compiled", "_dbapi", "_dialect")

    def __init__(self, dbapi: Any, dialect: Dialect, compiled: dict[Select[Any], _Compiled]
                 ) -> None:
        self._dbapi = dbapi
        self._dialect = dialect
        self._compiled = compiled

    async def execute(self, statement: Any, parameters: Mapping[str, Any] | None = None
                      ) -> _InlineResult:
        compiled = self._compiled.get(statement)
        if compiled is None:
            if not isinstance(statement, Select):
                raise StorageError("a read-only unit of work only reads")
            if len(self._compiled) >= _MAX_COMPILED:  # bounded, should a caller build statements
                self._compiled.clear()
            # Keyed by the statement object itself (hashed by identity), which the cache keeps
            # alive: the repositories' statements are module constants, compiled once each.
            compiled = self._compiled[statement] = _Compiled(statement, self._dialect)
        given = parameters or {}
        values = [given[name] if required else fixed for name, required, fixed in compiled.binds]
        rows = self._dbapi.execute(compiled.sql, values).fetchall()
        make = compiled.make_row
        return _InlineResult([make(row) for row in rows])


class _InlineReader:
    """The read-only side of a SQLite store: one autocommit connection per thread (in practice
    the event loop's), kept for the store's life instead of a pool checkout per read, and the
    compiled statements."""

    __slots__ = ("_compiled", "_local", "engine")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._compiled: dict[Select[Any], _Compiled] = {}
        self._local = threading.local()

    def connection(self) -> _InlineConnection:
        conn: _InlineConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            # This thread's connection, held checked out (kept here, so it is never returned
            # to the pool) until dispose() closes it.
            pooled: Any = self.engine.raw_connection()
            conn = _InlineConnection(pooled.driver_connection, self.engine.dialect,
                                     self._compiled)
            self._local.pooled, self._local.conn = pooled, conn
        return conn

    def dispose(self) -> None:
        self._local = threading.local()
        self.engine.dispose()


class InlineReadUnitOfWork:
    """A read-only unit of work on SQLite that runs its SELECTs inline on the event loop.

    Why: through aiosqlite every statement is several hand-offs to a worker thread and back,
    and on the polling path those wake-ups cost far more CPU than the query (an indexed lookup
    in SQLite's page cache takes tens of microseconds). The connection is in autocommit mode, so
    each SELECT reads its own committed WAL snapshot beside the writer, holds no lock, and leaves
    no transaction open across the awaits of interleaved units of work sharing it."""

    clients: SqlClients
    users: SqlUsers
    device_authorizations: SqlDeviceAuthorizations
    refresh_tokens: SqlRefreshTokens
    secrets: SqlSecrets
    browser_sessions: SqlBrowserSessions
    denylist: SqlDenylist
    audit_log: SqlAuditLog
    signing_keys: SqlSigningKeys
    grants: SqlGrants

    __slots__ = ("_reader", "audit_log", "browser_sessions", "clients", "denylist",
                 "device_authorizations", "grants", "refresh_tokens", "secrets", "signing_keys",
                 "users")

    def __init__(self, reader: _InlineReader) -> None:
        self._reader = reader

    async def __aenter__(self) -> Self:
        conn = cast(AsyncConnection, self._reader.connection())
        self.clients = SqlClients(conn)
        self.users = SqlUsers(conn)
        self.device_authorizations = SqlDeviceAuthorizations(conn)
        self.refresh_tokens = SqlRefreshTokens(conn)
        self.secrets = SqlSecrets(conn)
        self.browser_sessions = SqlBrowserSessions(conn)
        self.denylist = SqlDenylist(conn)
        self.audit_log = SqlAuditLog(conn)
        self.signing_keys = SqlSigningKeys(conn)
        self.grants = SqlGrants(conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        raise StorageError("a read-only unit of work has nothing to commit")


class SqlStore:
    """The SQL store: a pooled async engine that hands out units of work.

    On SQLite, units of work of one store take turns through an ``asyncio.Lock``. SQLite has one
    writer at a time anyway (every transaction here is ``BEGIN IMMEDIATE``); without the lock,
    the waiters sleep-poll in SQLite's busy handler (up to 100 ms a try), which wastes most of
    the time under load and, past ``busy_timeout``, fails with "database is locked". The lock
    wakes the next waiter as soon as the previous one finishes. Other processes on the same file
    still meet ``busy_timeout``."""

    __slots__ = ("_engine", "_lock", "_lock_timeout", "_reader")

    def __init__(
        self, engine: AsyncEngine, *, lock_timeout: float = 30.0, reader: Engine | None = None
    ) -> None:
        self._engine = engine
        self._lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._lock_timeout = lock_timeout
        self._reader = None if reader is None else _InlineReader(reader)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def unit_of_work(self, *, read_only: bool = False) -> SqlUnitOfWork | InlineReadUnitOfWork:
        # A read-only unit of work skips the write lock. On SQLite it reads inline (above); on
        # PostgreSQL it is an ordinary transaction on a pooled connection.
        if read_only:
            if self._reader is not None:
                return InlineReadUnitOfWork(self._reader)
            return SqlUnitOfWork(self._engine, None, self._lock_timeout, read_only=True)
        return SqlUnitOfWork(self._engine, self._lock, self._lock_timeout)

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._reader is not None:
            self._reader.dispose()
        await self._engine.dispose()


__all__ = [
    "InlineReadUnitOfWork",
    "SqlClients",
    "SqlDeviceAuthorizations",
    "SqlRefreshTokens",
    "SqlSecrets",
    "SqlStore",
    "SqlUnitOfWork",
    "SqlUsers",
]

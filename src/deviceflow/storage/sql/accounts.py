"""SQL repositories of clients and users (ports in ``storage/interface.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ...protocol.models import (
    Client,
    ClientChanges,
    ClientType,
    User,
)
from ...protocol.proximity import ProximityPolicy
from . import tables as t
from .dml import insert as _insert
from .dml import insert_unless_taken as _insert_unless_taken
from .dml import join_words as _join

_c = t.clients
_u = t.users
_d = t.device_authorizations
_r = t.refresh_tokens
_s = t.server_secrets


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
        redirect_uris=frozenset(row.redirect_uris.split()),
        proximity_policy=ProximityPolicy(row.proximity_policy) if row.proximity_policy
        else None,
        device_networks=tuple((row.device_networks or "").split()),
        device_countries=tuple((row.device_countries or "").split()),
        device_scopes=frozenset(row.device_scopes.split()) if row.device_scopes else None,
        device_access_token_lifetime=row.device_access_token_lifetime,
        device_refresh_token_lifetime=row.device_refresh_token_lifetime,
    )


def _rule_values(client: Client) -> dict[str, object]:
    return {
        "proximity_policy": client.proximity_policy.value if client.proximity_policy else None,
        "device_networks": " ".join(client.device_networks) or None,
        "device_countries": " ".join(client.device_countries) or None,
        "device_scopes": _join(client.device_scopes) if client.device_scopes else None,
        "device_access_token_lifetime": client.device_access_token_lifetime,
        "device_refresh_token_lifetime": client.device_refresh_token_lifetime,
    }


def _rule_changes(changes: ClientChanges) -> dict[str, object]:
    """The rule columns ``changes`` names: an empty list, an empty set or a lifetime of 0
    removes a rule (NULL)."""
    values: dict[str, object] = {}
    if changes.default_proximity_policy:
        values["proximity_policy"] = None
    elif changes.proximity_policy is not None:
        values["proximity_policy"] = changes.proximity_policy.value
    if changes.device_networks is not None:
        values["device_networks"] = " ".join(changes.device_networks) or None
    if changes.device_countries is not None:
        values["device_countries"] = " ".join(changes.device_countries) or None
    if changes.device_scopes is not None:
        values["device_scopes"] = _join(changes.device_scopes) or None
    for name in ("device_access_token_lifetime", "device_refresh_token_lifetime"):
        lifetime = getattr(changes, name)
        if lifetime is not None:
            values[name] = lifetime or None
    return values


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
            "redirect_uris": _join(client.redirect_uris),
            **_rule_values(client),
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
        if changes.redirect_uris is not None:
            values["redirect_uris"] = _join(changes.redirect_uris)
        values.update(_rule_changes(changes))
        where = _c.c.client_id == client_id
        if changes.expected_redirect_uris is not None:
            where = where & (_c.c.redirect_uris == _join(changes.expected_redirect_uris))
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
        email=row.email,
    )


_USER_SET_EMAIL = (
    update(_u)
    .where(_u.c.username == bindparam("b_username"))
    .values(email=bindparam("b_email"))
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
            "email": user.email,
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

    async def set_email(self, username: str, email: str | None) -> bool:
        params = {"b_username": username, "b_email": email}
        result = await self._conn.execute(_USER_SET_EMAIL, params)
        return result.rowcount == 1

"""Administration of users and clients (the operator CLI and the demo)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

import anyio

from ...protocol.audit import AuditActor, AuditEvent, AuditEventType, AuditQuery
from ...protocol.codes import hash_client_secret
from ...protocol.display import unsafe_characters
from ...protocol.models import Client, ClientChanges, ClientType, User
from ...storage.interface import AlreadyExistsError, Store
from .. import identity
from .audit import AuditService
from .context import Clock

MAX_CLIENT_NAME = 100
"""Characters in a client's display name: enough for any product name, short enough to show."""


class AdminRefused(Exception):
    """An administrative change refused as asked; the message is one sentence for the operator."""


def check_client_name(name: str) -> None:
    """A client's name is what the consent page asks a person to trust (RFC 8628 §5.4): refuse
    names that render as something else (``protocol.display``)."""
    if not name.strip():
        raise AdminRefused("the client name is empty")
    if len(name) > MAX_CLIENT_NAME:
        raise AdminRefused(f"the client name is longer than {MAX_CLIENT_NAME} characters")
    unsafe = unsafe_characters(name)
    if unsafe:
        raise AdminRefused(
            "the client name contains characters that can disguise it on the consent page "
            f"({', '.join(unsafe)}); use plain text"
        )


class AdminService:
    """Users and clients. Shares the store with the server; needs no keys."""

    def __init__(self, store: Store, clock: Clock = time.time) -> None:
        self.store = store
        self._clock = clock
        self.audit = AuditService(store, clock)

    async def add_user(self, username: str, password: str, name: str = "") -> User:
        password_hash = await anyio.to_thread.run_sync(identity.hash_password, password)
        user = User(identity.new_user_id(), username, name or username, password_hash,
                    self._clock())
        async with self.store.unit_of_work() as uow:
            await uow.users.add(user)
            await uow.commit()
        return user

    async def list_users(self) -> Sequence[User]:
        async with self.store.unit_of_work(read_only=True) as uow:
            return await uow.users.list()

    async def remove_user(self, username: str) -> bool:
        """Remove a user and end their sign-ins on the verification pages, in one transaction."""
        async with self.store.unit_of_work() as uow:
            user = await uow.users.get_by_username(username)
            removed = await uow.users.remove(username)
            if user is not None:
                await uow.browser_sessions.revoke_all_for_user(user.user_id)
            await uow.commit()
        return removed

    async def set_password(self, username: str, password: str) -> bool:
        """Change a password and end every sign-in made with the old one, in one transaction:
        whoever learnt the old password (or copied a signed-in cookie) is out."""
        password_hash = await anyio.to_thread.run_sync(identity.hash_password, password)
        async with self.store.unit_of_work() as uow:
            user = await uow.users.get_by_username(username)
            changed = await uow.users.set_password_hash(username, password_hash)
            if user is not None:
                await uow.browser_sessions.revoke_all_for_user(user.user_id)
            await uow.commit()
        return changed

    async def sign_out_user(self, username: str) -> int | None:
        """End every sign-in of a user on the verification pages (one UPDATE); return how many
        were live, or None when there is no such user."""
        async with self.store.unit_of_work() as uow:
            user = await uow.users.get_by_username(username)
            if user is None:
                return None
            ended = await uow.browser_sessions.revoke_all_for_user(user.user_id)
            event = await self.audit.append(
                uow, AuditEventType.REVOKED, user_id=user.user_id, actor=AuditActor.OPERATOR,
                detail=f"{ended} browser sign-ins") if ended else None
            await uow.commit()
        if event is not None:
            self.audit.emit(event)
        return ended

    async def audit_events(
        self, query: AuditQuery, username: str | None = None
    ) -> tuple[Sequence[AuditEvent], Mapping[str, str]]:
        """Audit records (``query``; ``username`` narrows to that user's, and names a removed
        user's id too), and the current username of each user id they name, for display."""
        if username is not None:
            async with self.store.unit_of_work(read_only=True) as uow:
                user = await uow.users.get_by_username(username)
            query = dataclasses.replace(query, user_id=username if user is None else user.user_id)
        events = await self.audit.query(query)
        names: dict[str, str] = {}
        async with self.store.unit_of_work(read_only=True) as uow:
            for user_id in {e.user_id for e in events if e.user_id is not None}:
                named = await uow.users.get(user_id)
                if named is not None:
                    names[user_id] = named.username
        return events, names

    async def add_client(
        self, client_id: str, name: str, client_type: ClientType, grant_types: Sequence[str],
        scopes: Sequence[str], device_code_lifetime: int | None = None,
    ) -> tuple[Client, str | None]:
        """Register a client; a confidential client's secret is returned once, stored hashed."""
        check_client_name(name)
        secret = identity.new_client_secret() if client_type is ClientType.CONFIDENTIAL else None
        client = Client(
            client_id=client_id, name=name, client_type=client_type,
            grant_types=frozenset(grant_types), scopes=frozenset(scopes),
            secret_hash=hash_client_secret(secret) if secret else None,
            device_code_lifetime=device_code_lifetime, created_at=self._clock(),
        )
        async with self.store.unit_of_work() as uow:
            try:
                await uow.clients.add(client)
            except AlreadyExistsError:
                raise AdminRefused(
                    f"client {client_id!r} already exists; change it with: "
                    f"deviceflow client update {client_id} [--grant …] [--scope …] [--name …]"
                ) from None
            await uow.commit()
        return client, secret

    async def update_client(self, client_id: str, changes: ClientChanges) -> Client:
        """Change a registered client in one statement, and return it as stored. Takes effect in
        running servers within their client cache time (``CLIENT_CACHE_SECONDS``)."""
        if changes.name is not None:
            check_client_name(changes.name)
        async with self.store.unit_of_work() as uow:
            if not await uow.clients.update(client_id, changes):
                raise AdminRefused(f"no client {client_id!r}")
            client = await uow.clients.get(client_id)
            await uow.commit()
        if client is None:  # pragma: no cover - removed inside our own transaction
            raise AdminRefused(f"no client {client_id!r}")
        return client

    async def list_clients(self) -> Sequence[Client]:
        async with self.store.unit_of_work(read_only=True) as uow:
            return await uow.clients.list()

    async def remove_client(self, client_id: str) -> bool:
        async with self.store.unit_of_work() as uow:
            removed = await uow.clients.remove(client_id)
            await uow.commit()
        return removed

"""Administration of users, clients and signed-in devices (the operator CLI and the demo)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import anyio

from ...protocol.audit import AuditActor, AuditEvent, AuditEventType, AuditQuery
from ...protocol.codes import hash_client_secret
from ...protocol.display import unsafe_characters
from ...protocol.email_address import EmailAddressRefused, normalized_email
from ...protocol.models import (
    CLIENT_CREDENTIALS_GRANT,
    ActiveGrant,
    Client,
    ClientChanges,
    ClientType,
    User,
    with_device_rules,
)
from ...protocol.redirects import RedirectUriRefused, check_redirect_uri
from ...storage.interface import AlreadyExistsError, Store, UnitOfWork
from .. import identity
from .audit import AuditService
from .context import Clock
from .notify import Notifier
from .revocation import LoginEnded, end_selected_logins_in

MAX_CLIENT_NAME = 100
"""Characters in a client's display name: enough for any product name, short enough to show."""


DENY_FOR = 24 * 3600
"""How long an operator's revocation denies a login's access tokens when the caller does not
know the servers' ``access_token_lifetime`` (the CLI passes it from the same settings as
``serve``): a day outlasts any access token the defaults issue, and an entry only costs a row."""


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


_EDIT_RETRIES = 20
"""Compare-and-set attempts of one ``client update`` against concurrent edits."""


def check_redirect_uris(uris: Iterable[str]) -> frozenset[str]:
    """Every URI must be one a client may register (``protocol.redirects``)."""
    try:
        return frozenset(check_redirect_uri(uri) for uri in uris)
    except RedirectUriRefused as refused:
        raise AdminRefused(str(refused)) from None


def check_grants(client_type: ClientType, grant_types: frozenset[str]) -> None:
    """RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential
    clients"; refused when registering, as well as at the token endpoint."""
    if client_type is ClientType.PUBLIC and CLIENT_CREDENTIALS_GRANT in grant_types:
        raise AdminRefused("only a confidential client may use client_credentials "
                           "(add it with --confidential)")
def checked_email(address: str) -> str:
    """The normalized address, or ``AdminRefused`` with the reason (syntax only, no DNS)."""
    try:
        return normalized_email(address)
    except EmailAddressRefused as exc:
        raise AdminRefused(str(exc)) from None


@dataclass(frozen=True, slots=True)
class SignedOut:
    """What ending a user's access ended."""

    browser_sessions: int
    """Sign-ins on the verification pages."""
    devices: int
    """Refresh-token families (signed-in devices)."""


@dataclass(frozen=True, slots=True)
class DeviceSession:
    """A signed-in device as the operator sees it."""

    grant: ActiveGrant
    username: str
    """Empty when the user was removed (their families are revoked with them)."""


class AdminService:
    """Users and clients. Shares the store with the server; needs no keys."""

    def __init__(self, store: Store, clock: Clock = time.time,
                 access_token_lifetime: int = DENY_FOR) -> None:
        self.store = store
        self._clock = clock
        self.audit = AuditService(store, clock)
        # Always on: the CLI does not know the servers' destinations; their delivery task does.
        self.notifier = Notifier(clock, enabled=True)
        self.access_token_lifetime = access_token_lifetime

    async def add_user(self, username: str, password: str, name: str = "",
                       email: str | None = None) -> User:
        address = checked_email(email) if email else None
        password_hash = await anyio.to_thread.run_sync(identity.hash_password, password)
        user = User(identity.new_user_id(), username, name or username, password_hash,
                    self._clock(), email=address)
        async with self.store.unit_of_work() as uow:
            await uow.users.add(user)
            await uow.commit()
        return user

    async def set_email(self, username: str, email: str | None) -> str | None:
        """Set the address "A device signed in to your account" goes to (``None`` or empty:
        none); return the stored form. ``AdminRefused`` for a bad address or unknown user."""
        address = checked_email(email) if email else None
        async with self.store.unit_of_work() as uow:
            if not await uow.users.set_email(username, address):
                raise AdminRefused(f"no user named {username!r}")
            await uow.commit()
        return address

    async def list_users(self) -> Sequence[User]:
        async with self.store.unit_of_work(read_only=True) as uow:
            return await uow.users.list()

    async def remove_user(self, username: str) -> SignedOut | None:
        """Remove a user, end their sign-ins on the verification pages and sign out their
        devices (revoke their refresh-token families), in one transaction; None when there is
        no such user."""
        async with self.store.unit_of_work() as uow:
            user = await uow.users.get_by_username(username)
            if user is None or not await uow.users.remove(username):
                return None
            ended, logins = await self._sign_out_everywhere(uow, user.user_id)
            await uow.commit()
        self._emit(logins)
        return ended

    async def set_password(self, username: str, password: str) -> SignedOut | None:
        """Change a password, end every sign-in made with the old one and sign out every device
        signed in with it, in one transaction: whoever learnt the old password (or copied a
        signed-in cookie, or a device's refresh token) is out. None when there is no such
        user."""
        password_hash = await anyio.to_thread.run_sync(identity.hash_password, password)
        async with self.store.unit_of_work() as uow:
            user = await uow.users.get_by_username(username)
            if user is None or not await uow.users.set_password_hash(username, password_hash):
                return None
            ended, logins = await self._sign_out_everywhere(uow, user.user_id)
            await uow.commit()
        self._emit(logins)
        return ended

    async def _sign_out_everywhere(
        self, uow: UnitOfWork, user_id: str
    ) -> tuple[SignedOut, list[LoginEnded]]:
        browsers = await uow.browser_sessions.revoke_all_for_user(user_id)
        logins = await self._end_logins(uow, user_id=user_id)
        return SignedOut(browser_sessions=browsers, devices=len(logins)), logins

    async def _end_logins(
        self, uow: UnitOfWork, *, user_id: str | None = None, client_id: str | None = None,
        family_id: str | None = None,
    ) -> list[LoginEnded]:
        """The same revocation as the server's: refresh tokens, the access-token denylist (the
        servers read new entries within a second) and the audit log, in ``uow``."""
        return await end_selected_logins_in(
            uow, actor=AuditActor.OPERATOR.value, now=self._clock(),
            access_token_lifetime=self.access_token_lifetime, audit=self.audit,
            user_id=user_id, client_id=client_id, family_id=family_id, notifier=self.notifier)

    def _emit(self, logins: Sequence[LoginEnded]) -> None:
        for login in logins:
            for event in login.events:
                self.audit.emit(event)

    async def list_sessions(
        self, *, username: str | None = None, client_id: str | None = None
    ) -> Sequence[DeviceSession]:
        """Signed-in devices (refresh-token families with a live token), optionally of one user
        and/or one client, ordered by family id."""
        async with self.store.unit_of_work(read_only=True) as uow:
            user_id = await self._user_id(uow, username)
            grants = await uow.grants.active(self._clock(), user_id=user_id,
                                             client_id=client_id)
            names: dict[str, str] = {}
            for grant in grants:
                if grant.user_id not in names:
                    user = await uow.users.get(grant.user_id)
                    names[grant.user_id] = user.username if user else ""
        return [DeviceSession(grant, names[grant.user_id]) for grant in grants]

    async def revoke_sessions(
        self, *, username: str | None = None, client_id: str | None = None,
        family_id: str | None = None,
    ) -> int:
        """Sign out the devices exactly one selector names, through the same revocation as
        the server's "Your devices" page; return how many were signed out by this call."""
        if sum(x is not None for x in (username, client_id, family_id)) != 1:
            raise AdminRefused("name exactly one of a user, a client or a family")
        async with self.store.unit_of_work() as uow:
            user_id = await self._user_id(uow, username)
            logins = await self._end_logins(uow, user_id=user_id, client_id=client_id,
                                            family_id=family_id)
            await uow.commit()
        self._emit(logins)
        return len(logins)

    @staticmethod
    async def _user_id(uow: UnitOfWork, username: str | None) -> str | None:
        if username is None:
            return None
        user = await uow.users.get_by_username(username)
        if user is None:
            raise AdminRefused(f"no user named {username!r}")
        return user.user_id

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

    async def factor_status(self, username: str) -> tuple[bool, int] | None:
        """Whether the user has an authenticator app on, and how many recovery codes are left;
        None when there is no such user."""
        async with self.store.unit_of_work(read_only=True) as uow:
            user = await uow.users.get_by_username(username)
            if user is None:
                return None
            factor = await uow.factors.get_totp(user.user_id)
            left = await uow.factors.recovery_codes_left(user.user_id)
        return factor is not None and factor.active, left

    async def reset_factors(self, username: str) -> bool | None:
        """Remove the user's second factor and recovery codes (a lost phone): they sign in with
        the password alone until they enrol again. Audited; None when there is no such user,
        else whether there was a factor."""
        async with self.store.unit_of_work() as uow:
            user = await uow.users.get_by_username(username)
            if user is None:
                return None
            removed = await uow.factors.remove(user.user_id)
            event = await self.audit.append(
                uow, AuditEventType.FACTOR_RESET, user_id=user.user_id,
                actor=AuditActor.OPERATOR, detail="totp" if removed else "none")
            await uow.commit()
        self.audit.emit(event)
        return removed

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
        redirect_uris: Sequence[str] = (),
        rules: ClientChanges | None = None,
    ) -> tuple[Client, str | None]:
        """Register a client; a confidential client's secret is returned once, stored hashed.
        ``redirect_uris`` are where ``/authorize`` may send a browser back (RFC 6749 §3.1.2);
        ``rules``: its device-flow rules (proximity policy, networks, countries, scopes,
        lifetimes), stored with it in the same insert."""
        check_client_name(name)
        check_grants(client_type, frozenset(grant_types))
        uris = check_redirect_uris(redirect_uris)
        secret = identity.new_client_secret() if client_type is ClientType.CONFIDENTIAL else None
        client = Client(
            client_id=client_id, name=name, client_type=client_type,
            grant_types=frozenset(grant_types), scopes=frozenset(scopes),
            secret_hash=hash_client_secret(secret) if secret else None,
            device_code_lifetime=device_code_lifetime, created_at=self._clock(),
            redirect_uris=uris,
        )
        if rules is not None:
            client = with_device_rules(client, rules)
            if client.device_scopes is not None and not client.device_scopes <= client.scopes:
                outside = " ".join(sorted(client.device_scopes - client.scopes))
                raise AdminRefused(f"--device-scope {outside} is not among the client's scopes; "
                                   "add it with --scope first")
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

    async def update_client(
        self, client_id: str, changes: ClientChanges, *,
        add_redirect_uris: Sequence[str] = (), remove_redirect_uris: Sequence[str] = (),
    ) -> Client:
        """Change a registered client in one statement, and return it as stored. Takes effect in
        running servers within their client cache time (``CLIENT_CACHE_SECONDS``).
        ``changes.redirect_uris`` replaces the registered redirect URIs; ``add_redirect_uris``
        and ``remove_redirect_uris`` change the registered set (or the replacement)."""
        if changes.name is not None:
            check_client_name(changes.name)
        if changes.redirect_uris is not None:
            check_redirect_uris(changes.redirect_uris)
        added = check_redirect_uris(add_redirect_uris)
        # Adding or removing one URI reads the set and writes it back: the write is a
        # compare-and-set on the set it read, retried when another edit came in between.
        for _attempt in range(_EDIT_RETRIES):
            async with self.store.unit_of_work() as uow:
                stored = await uow.clients.get(client_id)
                if stored is None:
                    raise AdminRefused(f"no client {client_id!r}")
                if changes.grant_types is not None:
                    # A client's type never changes, so reading it first races nothing.
                    check_grants(stored.client_type, changes.grant_types)
                wanted = changes
                if added or remove_redirect_uris:
                    base = (stored.redirect_uris if changes.redirect_uris is None
                            else changes.redirect_uris)
                    unknown = sorted(set(remove_redirect_uris) - base)
                    if unknown:
                        raise AdminRefused(
                            f"client {client_id!r} has no redirect URI {unknown[0]!r}")
                    wanted = dataclasses.replace(
                        changes, redirect_uris=(base - set(remove_redirect_uris)) | added,
                        expected_redirect_uris=stored.redirect_uris)
                if not await uow.clients.update(client_id, wanted):
                    continue  # changed meanwhile (or removed): read again
                client = await uow.clients.get(client_id)
                await uow.commit()
                break
        else:
            raise AdminRefused(f"client {client_id!r} kept changing; try again")
        if client is None:  # pragma: no cover - removed inside our own transaction
            raise AdminRefused(f"no client {client_id!r}")
        return client

    async def list_clients(self) -> Sequence[Client]:
        async with self.store.unit_of_work(read_only=True) as uow:
            return await uow.clients.list()

    async def remove_client(self, client_id: str) -> bool:
        """Remove a client and forget every consent to it, in one transaction: a client later
        registered under the same id is asked for in full (issue 11)."""
        async with self.store.unit_of_work() as uow:
            removed = await uow.clients.remove(client_id)
            if removed:
                await uow.consents.forget_client(client_id)
            await uow.commit()
        return removed

"""The in-memory store: the executable statement of the storage contract, and a fast store for
unit tests. Single process only. Each compare-and-set runs without an ``await`` between its read
and its write, so it is atomic under asyncio."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from ..protocol.audit import AuditEvent, AuditQuery
from ..protocol.models import (
    ActiveGrant,
    AuthorizationCode,
    BrowserSession,
    BrowserSessionStatus,
    Client,
    ClientChanges,
    CodeStatus,
    DeniedToken,
    DenyKind,
    DeviceAuthorization,
    DeviceStatus,
    GrantRecord,
    RefreshStatus,
    RefreshToken,
    Timestamp,
    User,
    with_device_rules,
)
from ..protocol.notifications import OutboxMessage
from .interface import AlreadyExistsError, SecretEncryption, SigningKeyRecord, StoredSecret
from .memory_consents import ConsentState, MemoryConsents
from .memory_factors import FactorState, MemoryFactors
from .memory_outbox import MemoryOutbox


class _State:
    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}
        self.users: dict[str, User] = {}
        self.devices: dict[str, DeviceAuthorization] = {}
        self.user_codes: dict[str, str] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.secrets: dict[str, StoredSecret] = {}
        self.browser_sessions: dict[str, BrowserSession] = {}
        self.denylist: dict[tuple[DenyKind, str], DeniedToken] = {}
        self.audit_log: list[AuditEvent] = []  # in order of appending
        self.signing_keys: dict[str, SigningKeyRecord] = {}
        self.grants: dict[str, GrantRecord] = {}
        self.authorization_codes: dict[str, AuthorizationCode] = {}
        self.outbox: dict[str, OutboxMessage] = {}  # in order of adding
        self.claims: dict[str, str] = {}  # message id → the token holding its claim
        self.code_accounts: dict[str, tuple[set[str], Timestamp]] = {}
        self.factors = FactorState()
        self.consents: ConsentState = {}


class MemoryClients:
    def __init__(self, state: _State) -> None:
        self._s = state

    async def get(self, client_id: str) -> Client | None:
        return self._s.clients.get(client_id)

    async def add(self, client: Client) -> None:
        if client.client_id in self._s.clients:
            raise AlreadyExistsError(client.client_id)
        self._s.clients[client.client_id] = client

    async def list(self) -> Sequence[Client]:
        return sorted(self._s.clients.values(), key=lambda c: c.client_id)

    async def remove(self, client_id: str) -> bool:
        return self._s.clients.pop(client_id, None) is not None

    async def update(self, client_id: str, changes: ClientChanges) -> bool:
        client = self._s.clients.get(client_id)
        if client is None or (changes.expected_redirect_uris is not None
                              and client.redirect_uris != changes.expected_redirect_uris):
            return False
        self._s.clients[client_id] = dataclasses.replace(
            client,
            name=client.name if changes.name is None else changes.name,
            grant_types=client.grant_types if changes.grant_types is None
            else changes.grant_types,
            scopes=client.scopes if changes.scopes is None else changes.scopes,
            device_code_lifetime=None if changes.default_device_code_lifetime
            else changes.device_code_lifetime or client.device_code_lifetime,
            redirect_uris=client.redirect_uris if changes.redirect_uris is None
            else changes.redirect_uris,
        )
        self._s.clients[client_id] = with_device_rules(self._s.clients[client_id], changes)
        return True


class MemoryUsers:
    def __init__(self, state: _State) -> None:
        self._s = state

    async def get(self, user_id: str) -> User | None:
        return next((u for u in self._s.users.values() if u.user_id == user_id), None)

    async def get_by_username(self, username: str) -> User | None:
        return self._s.users.get(username)

    async def add(self, user: User) -> None:
        if user.username in self._s.users or any(
            u.user_id == user.user_id for u in self._s.users.values()
        ):
            raise AlreadyExistsError(user.username)
        self._s.users[user.username] = user

    async def list(self) -> Sequence[User]:
        return sorted(self._s.users.values(), key=lambda u: u.username)

    async def remove(self, username: str) -> bool:
        return self._s.users.pop(username, None) is not None

    async def set_password_hash(self, username: str, password_hash: str) -> bool:
        user = self._s.users.get(username)
        if user is None:
            return False
        self._s.users[username] = dataclasses.replace(user, password_hash=password_hash)
        return True

    async def set_email(self, username: str, email: str | None) -> bool:
        user = self._s.users.get(username)
        if user is None:
            return False
        self._s.users[username] = dataclasses.replace(user, email=email)
        return True


class MemoryDeviceAuthorizations:
    def __init__(self, state: _State) -> None:
        self._s = state

    async def add(self, record: DeviceAuthorization) -> None:
        taken = record.device_code_hash in self._s.devices
        if taken or record.user_code_hash in self._s.user_codes:
            raise AlreadyExistsError("code collision")
        self._s.devices[record.device_code_hash] = record
        self._s.user_codes[record.user_code_hash] = record.device_code_hash

    async def get_by_device_code(self, device_code_hash: str) -> DeviceAuthorization | None:
        return self._s.devices.get(device_code_hash)

    async def get_by_user_code(self, user_code_hash: str) -> DeviceAuthorization | None:
        key = self._s.user_codes.get(user_code_hash)
        return None if key is None else self._s.devices.get(key)

    async def transition(self, record: DeviceAuthorization, expected: DeviceStatus) -> bool:
        stored = self._s.devices.get(record.device_code_hash)
        if stored is None or stored.status is not expected:
            return False
        self._s.devices[record.device_code_hash] = dataclasses.replace(
            stored,
            status=record.status,
            user_id=record.user_id,
            auth_time=record.auth_time,
            decided_at=record.decided_at,
            amr=record.amr,
            last_polled_at=record.last_polled_at,
        )
        return True

    async def note_account(self, device_code_hash: str, user_id: str,
                           expires_at: Timestamp) -> int:
        # No await between reading and adding: atomic under asyncio.
        accounts, _ = self._s.code_accounts.setdefault(device_code_hash, (set(), expires_at))
        accounts.add(user_id)
        return len(accounts)

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        doomed = [k for k, r in self._s.devices.items() if r.expires_at < expired_before][:limit]
        for key in doomed:
            record = self._s.devices.pop(key)
            self._s.user_codes.pop(record.user_code_hash, None)
        for key in [k for k, (_, exp) in self._s.code_accounts.items() if exp < expired_before]:
            del self._s.code_accounts[key]
        return len(doomed)


class MemoryRefreshTokens:
    def __init__(self, state: _State) -> None:
        self._s = state

    async def add(self, token: RefreshToken) -> None:
        if token.token_hash in self._s.refresh:
            raise AlreadyExistsError("refresh token collision")
        self._s.refresh[token.token_hash] = token

    async def get(self, token_hash: str) -> RefreshToken | None:
        return self._s.refresh.get(token_hash)

    async def rotate(self, token_hash: str, successor: RefreshToken, now: Timestamp) -> bool:
        stored = self._s.refresh.get(token_hash)
        if stored is None or stored.status is not RefreshStatus.ACTIVE:
            return False
        if successor.token_hash in self._s.refresh:
            raise AlreadyExistsError("refresh token collision")
        self._s.refresh[token_hash] = dataclasses.replace(
            stored, status=RefreshStatus.ROTATED, successor_hash=successor.token_hash,
            rotated_at=now,
        )
        self._s.refresh[successor.token_hash] = successor
        return True

    async def reissue(self, token_hash: str, replaced_hash: str, successor: RefreshToken) -> bool:
        stored = self._s.refresh.get(token_hash)
        replaced = self._s.refresh.get(replaced_hash)
        if (
            stored is None
            or stored.status is not RefreshStatus.ROTATED
            or stored.successor_hash != replaced_hash
            or replaced is None
            or replaced.status is not RefreshStatus.ACTIVE
        ):
            return False
        if successor.token_hash in self._s.refresh:
            raise AlreadyExistsError("refresh token collision")
        self._s.refresh[replaced_hash] = dataclasses.replace(
            replaced, status=RefreshStatus.REVOKED
        )
        self._s.refresh[token_hash] = dataclasses.replace(
            stored, successor_hash=successor.token_hash
        )
        self._s.refresh[successor.token_hash] = successor
        return True

    async def revoke_family(self, family_id: str) -> int:
        count = 0
        for key, token in list(self._s.refresh.items()):
            if token.family_id == family_id and token.status is not RefreshStatus.REVOKED:
                self._s.refresh[key] = dataclasses.replace(token, status=RefreshStatus.REVOKED)
                count += 1
        return count

    async def families(self, user_id: str) -> Sequence[str]:
        return sorted({t.family_id for t in self._s.refresh.values()
                       if t.user_id == user_id and t.status is not RefreshStatus.REVOKED})

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        doomed = [k for k, t in self._s.refresh.items() if t.expires_at < expired_before][:limit]
        for key in doomed:
            del self._s.refresh[key]
        return len(doomed)


class MemoryDenylist:
    def __init__(self, state: _State) -> None:
        self._s = state

    async def add(self, entry: DeniedToken) -> bool:
        # setdefault: the test and the insert are one step on the event loop.
        return self._s.denylist.setdefault((entry.kind, entry.value), entry) is entry

    async def since(self, created_from: Timestamp, now: Timestamp) -> Sequence[DeniedToken]:
        return [e for e in self._s.denylist.values()
                if e.created_at >= created_from and e.expires_at > now]

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        entries = self._s.denylist
        doomed = [k for k, e in entries.items() if e.expires_at < expired_before][:limit]
        for key in doomed:
            del entries[key]
        return len(doomed)


class MemorySecrets:
    def __init__(self, state: _State) -> None:
        self._s = state

    async def get(self, name: str) -> StoredSecret | None:
        return self._s.secrets.get(name)

    async def add_if_absent(self, name: str, secret: StoredSecret) -> StoredSecret:
        return self._s.secrets.setdefault(name, secret)

    async def seal(self, name: str, sealed: StoredSecret) -> bool:
        # No await between the test and the write: atomic on the event loop.
        current = self._s.secrets.get(name)
        if current is None or current.encryption is not SecretEncryption.NONE:
            return False
        self._s.secrets[name] = sealed
        return True

    async def names(self) -> Sequence[str]:
        return sorted(self._s.secrets)


class MemorySigningKeys:
    def __init__(self, state: _State) -> None:
        self._s = state

    async def list(self) -> Sequence[SigningKeyRecord]:
        return sorted(self._s.signing_keys.values(), key=lambda k: (k.alg, k.active_from))

    def _newest(self, alg: str) -> SigningKeyRecord | None:
        return next((k for k in self._s.signing_keys.values()
                     if k.alg == alg and k.signs_until is None), None)

    async def add_first(self, key: SigningKeyRecord) -> bool:
        # No await between the tests and the write: atomic on the event loop.
        if key.kid in self._s.signing_keys or self._newest(key.alg) is not None:
            return False
        self._s.signing_keys[key.kid] = dataclasses.replace(key, signs_until=None,
                                                            retire_after=None)
        return True

    async def rotate(self, current_kid: str, signs_until: Timestamp, retire_after: Timestamp,
                     successor: SigningKeyRecord) -> bool:
        if successor.kid in self._s.signing_keys:
            raise AlreadyExistsError(successor.kid)
        current = self._s.signing_keys.get(current_kid)
        if current is None or current.signs_until is not None or successor.alg != current.alg:
            return False
        self._s.signing_keys[current_kid] = dataclasses.replace(
            current, signs_until=signs_until, retire_after=retire_after)
        self._s.signing_keys[successor.kid] = dataclasses.replace(
            successor, signs_until=None, retire_after=None)
        return True


class MemoryBrowserSessions:
    def __init__(self, state: _State) -> None:
        self._s = state

    async def add(self, session: BrowserSession) -> None:
        if session.session_hash in self._s.browser_sessions:
            raise AlreadyExistsError("browser session collision")
        self._s.browser_sessions[session.session_hash] = session

    async def get(self, session_hash: str) -> BrowserSession | None:
        return self._s.browser_sessions.get(session_hash)

    async def revoke(self, session_hash: str) -> bool:
        stored = self._s.browser_sessions.get(session_hash)
        if stored is None or stored.status is not BrowserSessionStatus.ACTIVE:
            return False
        self._s.browser_sessions[session_hash] = dataclasses.replace(
            stored, status=BrowserSessionStatus.REVOKED
        )
        return True

    async def revoke_all_for_user(self, user_id: str) -> int:
        count = 0
        for key, session in list(self._s.browser_sessions.items()):
            if session.user_id == user_id and session.status is BrowserSessionStatus.ACTIVE:
                self._s.browser_sessions[key] = dataclasses.replace(
                    session, status=BrowserSessionStatus.REVOKED
                )
                count += 1
        return count

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        sessions = self._s.browser_sessions
        doomed = [k for k, v in sessions.items() if v.expires_at < expired_before][:limit]
        for key in doomed:
            del sessions[key]
        return len(doomed)


class MemoryAuditLog:
    def __init__(self, state: _State) -> None:
        self._s = state

    async def append(self, event: AuditEvent) -> None:
        self._s.audit_log.append(event)

    async def query(self, query: AuditQuery) -> Sequence[AuditEvent]:
        found: list[AuditEvent] = []
        # Newest first; of records with the same time, the later appended first (as SQL's id).
        ordered = sorted(enumerate(self._s.audit_log), key=lambda p: (p[1].occurred_at, p[0]),
                         reverse=True)
        for _, event in ordered:
            if len(found) >= query.limit:
                break
            if (
                (query.user_id is None or event.user_id == query.user_id)
                and (query.client_id is None or event.client_id == query.client_id)
                and (query.since is None or event.occurred_at >= query.since)
                and (not query.events or event.event in query.events)
            ):
                found.append(event)
        return found

    async def purge(self, older_than: Timestamp, limit: int) -> int:
        log = self._s.audit_log
        doomed = [i for i, e in enumerate(log) if e.occurred_at < older_than][:max(limit, 0)]
        for i in reversed(doomed):
            del log[i]
        return len(doomed)


class MemoryGrants:
    def __init__(self, state: _State) -> None:
        self._s = state

    async def add(self, grant: GrantRecord) -> None:
        if grant.family_id in self._s.grants:
            raise AlreadyExistsError("grant collision")
        self._s.grants[grant.family_id] = grant

    async def active(
        self, now: Timestamp, *, user_id: str | None = None, client_id: str | None = None,
        family_id: str | None = None,
    ) -> Sequence[ActiveGrant]:
        live: dict[str, RefreshToken] = {}
        for token in self._s.refresh.values():
            if (
                token.status is not RefreshStatus.ACTIVE
                or token.expires_at <= now
                or token.family_expires_at <= now
                or (user_id is not None and token.user_id != user_id)
                or (client_id is not None and token.client_id != client_id)
                or (family_id is not None and token.family_id != family_id)
            ):
                continue
            seen = live.get(token.family_id)
            if seen is None or token.issued_at > seen.issued_at:
                live[token.family_id] = token
        result = []
        for fid in sorted(live):
            token = live[fid]
            grant = self._s.grants.get(fid)
            result.append(ActiveGrant(
                family_id=fid, user_id=token.user_id, client_id=token.client_id,
                scope=token.scope, last_used_at=token.issued_at,
                approved_at=grant.approved_at if grant else None,
                origin=grant.origin if grant else None,
            ))
        return result

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        grants = self._s.grants
        doomed = [k for k, g in grants.items() if g.expires_at < expired_before][:limit]
        for key in doomed:
            del grants[key]
        return len(doomed)


class MemoryAuthorizationCodes:
    def __init__(self, state: _State) -> None:
        self._s = state

    async def add(self, code: AuthorizationCode) -> None:
        if code.code_hash in self._s.authorization_codes:
            raise AlreadyExistsError("code collision")
        self._s.authorization_codes[code.code_hash] = code

    async def get(self, code_hash: str) -> AuthorizationCode | None:
        return self._s.authorization_codes.get(code_hash)

    async def redeem(self, code_hash: str) -> bool:
        stored = self._s.authorization_codes.get(code_hash)
        if stored is None or stored.status is not CodeStatus.ISSUED:
            return False
        self._s.authorization_codes[code_hash] = dataclasses.replace(
            stored, status=CodeStatus.REDEEMED)
        return True

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        codes = self._s.authorization_codes
        doomed = [k for k, c in codes.items() if c.expires_at < expired_before][:limit]
        for key in doomed:
            del codes[key]
        return len(doomed)


class MemoryUnitOfWork:
    """Writes apply at once; the memory store is for one process and for the contract, where
    transactional rollback is exercised by the SQL implementation."""

    def __init__(self, state: _State) -> None:
        self.clients = MemoryClients(state)
        self.users = MemoryUsers(state)
        self.device_authorizations = MemoryDeviceAuthorizations(state)
        self.refresh_tokens = MemoryRefreshTokens(state)
        self.secrets = MemorySecrets(state)
        self.browser_sessions = MemoryBrowserSessions(state)
        self.denylist = MemoryDenylist(state)
        self.audit_log = MemoryAuditLog(state)
        self.signing_keys = MemorySigningKeys(state)
        self.grants = MemoryGrants(state)
        self.authorization_codes = MemoryAuthorizationCodes(state)
        self.outbox = MemoryOutbox(state)
        self.factors = MemoryFactors(state.factors)
        self.consents = MemoryConsents(state.consents)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        return None


class MemoryStore:
    def __init__(self) -> None:
        self._state = _State()

    def unit_of_work(self, *, read_only: bool = False) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self._state)

    async def close(self) -> None:
        return None

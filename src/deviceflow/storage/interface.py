"""Storage ports. Every implementation (memory, SQL on SQLite or PostgreSQL) passes one contract
test suite. Single use and state transitions are compare-and-set operations here — the storage
enforces them, so no caller can race a read against a write."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self

from ..protocol.audit import AuditEvent, AuditQuery
from ..protocol.consent import Consent
from ..protocol.models import (
    ActiveGrant,
    AuthorizationCode,
    BrowserSession,
    Client,
    ClientChanges,
    DeniedToken,
    DeviceAuthorization,
    DeviceStatus,
    GrantRecord,
    RefreshToken,
    Timestamp,
    User,
)
from ..protocol.notifications import OutboxMessage


class StorageError(Exception):
    """Base of storage failures the service layer may handle."""


class AlreadyExistsError(StorageError):
    """A unique key (client id, username, user code hash) is taken."""


class StorageUnavailableError(StorageError):
    """The database could not be reached, or dropped the connection mid-work. What the unit of
    work did is rolled back, unless the connection died during the commit itself, when it is
    unknown; either way the request can be tried again (``temporarily_unavailable``)."""


class ClientRepository(Protocol):
    async def get(self, client_id: str) -> Client | None: ...
    async def add(self, client: Client) -> None: ...
    async def list(self) -> Sequence[Client]: ...
    async def remove(self, client_id: str) -> bool: ...

    async def update(self, client_id: str, changes: ClientChanges) -> bool:
        """Change only the fields ``changes`` names, in one statement; False for an unknown id,
        or when ``changes.expected_redirect_uris`` no longer matches (compare-and-set)."""


class UserRepository(Protocol):
    async def get(self, user_id: str) -> User | None: ...
    async def get_by_username(self, username: str) -> User | None: ...
    async def add(self, user: User) -> None: ...
    async def list(self) -> Sequence[User]: ...
    async def remove(self, username: str) -> bool: ...
    async def set_password_hash(self, username: str, password_hash: str) -> bool: ...

    async def set_email(self, username: str, email: str | None) -> bool:
        """Set (or with ``None`` clear) the user's e-mail address; False for an unknown user."""


class DeviceAuthorizationRepository(Protocol):
    async def add(self, record: DeviceAuthorization) -> None:
        """Insert; raise ``AlreadyExistsError`` when the user code hash is taken."""

    async def get_by_device_code(self, device_code_hash: str) -> DeviceAuthorization | None: ...
    async def get_by_user_code(self, user_code_hash: str) -> DeviceAuthorization | None: ...

    async def transition(self, record: DeviceAuthorization, expected: DeviceStatus) -> bool:
        """Move to ``record.status`` (with its decision fields) only if the stored status is still
        ``expected``: exactly one of any number of concurrent callers gets True."""

    async def note_account(self, device_code_hash: str, user_id: str,
                           expires_at: Timestamp) -> int:
        """Count ``user_id`` among the accounts that opened this code (each account once) and
        return how many distinct accounts have, this one included. Hit-then-test in one step:
        of N different accounts racing on one code, each gets a different count 1…N, so the
        proximity judgement (RFC 10027 §6.1.4) never misses a second account in a race."""

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        """Delete up to ``limit`` (≥ 1) records whose ``expires_at`` is before
        ``expired_before``; return how many were deleted (and every account noted for a code
        that expired before then)."""


class AuthorizationCodeRepository(Protocol):
    """Authorization codes (RFC 6749 §4.1.2), by the HMAC of the code."""

    async def add(self, code: AuthorizationCode) -> None:
        """Insert; raise ``AlreadyExistsError`` when the hash is taken."""

    async def get(self, code_hash: str) -> AuthorizationCode | None:
        """The stored code whatever its status or expiry: the caller judges both."""

    async def redeem(self, code_hash: str) -> bool:
        """Mark an issued code redeemed in one conditional UPDATE: True for exactly one of any
        number of concurrent callers; False when unknown or redeemed already."""

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        """Delete up to ``limit`` (≥ 1) codes whose ``expires_at`` is before
        ``expired_before``; return how many were deleted."""


class RefreshTokenRepository(Protocol):
    async def add(self, token: RefreshToken) -> None: ...
    async def get(self, token_hash: str) -> RefreshToken | None: ...

    async def rotate(self, token_hash: str, successor: RefreshToken, now: Timestamp) -> bool:
        """Mark an active token rotated, recording ``successor.token_hash`` and ``now`` on it,
        and add ``successor``: one step, True for exactly one of concurrent callers; on False
        nothing changed."""

    async def reissue(self, token_hash: str, replaced_hash: str, successor: RefreshToken) -> bool:
        """The reuse grace path: only if the rotated token ``token_hash`` still points at
        ``replaced_hash`` and that token is still active (never used), revoke it, point
        ``token_hash`` at ``successor`` and add ``successor``. One step, True for exactly one
        of concurrent callers; on False nothing changed."""

    async def revoke_family(self, family_id: str) -> int:
        """Revoke every not-yet-revoked token of the family; how many changed (idempotent)."""

    async def families(self, user_id: str) -> Sequence[str]:
        """The ids of the user's families that still hold a token not revoked, sorted."""

    async def purge(self, expired_before: Timestamp, limit: int) -> int: ...


class DenylistRepository(Protocol):
    """Access tokens refused before their expiry (revocation, RFC 7009 §2), by ``jti`` or by
    family. Readers cache it (``server/denylist.py``) and fetch only what is new."""

    async def add(self, entry: DeniedToken) -> bool:
        """Insert unless an entry of the same kind and value exists (idempotent: the first one
        stays); True when this call inserted it."""

    async def since(self, created_from: Timestamp, now: Timestamp) -> Sequence[DeniedToken]:
        """Entries created at or after ``created_from`` that have not expired by ``now``."""

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        """Delete up to ``limit`` (≥ 1) entries whose ``expires_at`` is before
        ``expired_before``; return how many were deleted."""


class GrantRepository(Protocol):
    """Signed-in devices: where each refresh-token family began, joined with its live token."""

    async def add(self, grant: GrantRecord) -> None:
        """Insert; raise ``AlreadyExistsError`` when the family id is taken."""

    async def active(
        self, now: Timestamp, *, user_id: str | None = None, client_id: str | None = None,
        family_id: str | None = None,
    ) -> Sequence[ActiveGrant]:
        """Families with an active refresh token whose ``expires_at`` and ``family_expires_at``
        are after ``now``, narrowed by every filter given, one entry per family ordered by
        ``family_id``. A family without a ``GrantRecord`` (begun before they were written) is
        listed with ``approved_at`` and ``origin`` None."""

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        """Delete up to ``limit`` (≥ 1) records whose ``expires_at`` is before
        ``expired_before``; return how many were deleted."""


class ConsentRepository(Protocol):
    """Remembered consent (``protocol/consent.py``): the scopes a person granted a client."""

    async def grant(self, user_id: str, client_id: str, scopes: Iterable[str],
                    now: Timestamp) -> None:
        """Add ``scopes`` to what the person granted the client (remembering the client as
        approved even with no scope), in the caller's transaction. A merge in storage, one
        atomic step (no read-modify-write): concurrent grants keep the union of their scopes,
        and a scope keeps the time it was first granted."""

    async def get(self, user_id: str, client_id: str) -> Consent | None: ...

    async def for_user(self, user_id: str) -> Sequence[Consent]:
        """The person's remembered consents, by client id."""

    async def withdraw(self, user_id: str, client_id: str) -> bool:
        """Forget the person's consent for the client in one DELETE; True for exactly one of
        concurrent callers, False when none was remembered."""

    async def forget_client(self, client_id: str) -> int:
        """Forget every person's consent for the client (it is being removed: a client later
        registered under the same id must ask in full); return how many people's."""


class SecretEncryption(StrEnum):
    """How a stored server secret is protected (docs/security.md, "Secrets at rest")."""

    NONE = "none"  # written by deviceflow 0.1; sealed on the next start
    AES_256_GCM = "aes-256-gcm"  # sealed under the key-encryption key (server/secretbox.py)


@dataclass(frozen=True, slots=True)
class StoredSecret:
    """A server secret as the database holds it: sealed bytes, or 0.1's plaintext."""

    value: bytes
    encryption: SecretEncryption


class BrowserSessionRepository(Protocol):
    """Sign-ins on the verification pages, keyed by the HMAC of the cookie's random id."""

    async def add(self, session: BrowserSession) -> None:
        """Insert; raise ``AlreadyExistsError`` when the hash is taken (a revoked row included,
        so a revoked id can never be stored as active again)."""

    async def get(self, session_hash: str) -> BrowserSession | None:
        """The stored session whatever its status or expiry: the caller judges both."""

    async def revoke(self, session_hash: str) -> bool:
        """Mark one active session revoked in one conditional UPDATE; True for exactly one of
        concurrent callers, False when unknown or already revoked."""

    async def revoke_all_for_user(self, user_id: str) -> int:
        """Revoke every active session of a user in one UPDATE; return how many."""

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        """Delete up to ``limit`` (≥ 1) sessions, revoked or not, whose ``expires_at`` is before
        ``expired_before``; return how many were deleted."""


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    """One signing key's identity and lifecycle (docs/operator.md, "Signing keys"). Its private
    JWK is the server secret ``secret_name``, sealed like every other secret; this row holds no
    key material. The lifecycle follows from the times alone, so every worker and host that
    reads the same row reaches the same state at the same moment."""

    kid: str
    alg: str
    secret_name: str
    created_at: Timestamp
    active_from: Timestamp
    """Signs from this moment; published in JWKS from ``created_at``, before it signs."""
    signs_until: Timestamp | None = None
    """When its successor takes over; ``None`` for the newest key of its algorithm."""
    retire_after: Timestamp | None = None
    """Gone from JWKS, and its tokens refused, from this moment (every token it signed has
    expired by then); set together with ``signs_until``."""


class SigningKeyRepository(Protocol):
    """Signing keys, several per algorithm. Exactly one key per algorithm is the newest (its
    ``signs_until`` is unset): ``add_first`` and ``rotate`` keep it so under any concurrency."""

    async def list(self) -> Sequence[SigningKeyRecord]:
        """Every key, retired ones included, by algorithm then ``active_from``."""

    async def add_first(self, key: SigningKeyRecord) -> bool:
        """Insert the first key of ``key.alg`` (``signs_until`` unset) unless that algorithm
        already has a newest key or the kid is taken; True when inserted. Two workers adopting
        the same key at once both go on, one having inserted it."""

    async def rotate(self, current_kid: str, signs_until: Timestamp, retire_after: Timestamp,
                     successor: SigningKeyRecord) -> bool:
        """Only if ``current_kid`` is still the newest key of its algorithm: end it at
        ``signs_until``, retire it at ``retire_after`` and add ``successor`` as the newest. One
        compare-and-set: of concurrent rotations from the same key exactly one gets True; on
        False nothing changed. A taken successor kid raises ``AlreadyExistsError`` (roll back).
        """


class SecretRepository(Protocol):
    """Server secrets and signing keys, created once and never regenerated by accident."""

    async def get(self, name: str) -> StoredSecret | None: ...

    async def add_if_absent(self, name: str, secret: StoredSecret) -> StoredSecret:
        """Store ``secret`` unless ``name`` exists; return whichever is stored (so two workers
        starting at once agree on one secret)."""

    async def seal(self, name: str, sealed: StoredSecret) -> bool:
        """Replace a plaintext secret (encryption ``none``) by its sealed form; True for exactly
        one of concurrent callers, so two workers never seal a sealed value again."""

    async def names(self) -> Sequence[str]: ...


class AuditLogRepository(Protocol):
    """The audit log: append-only. No method changes or removes a record except the retention
    purge, so a record, once committed, stays until it is older than the retention."""

    async def append(self, event: AuditEvent) -> None:
        """Add one record, in the caller's transaction: it commits or rolls back with the
        change it records."""

    async def query(self, query: AuditQuery) -> Sequence[AuditEvent]:
        """Records matching every filter of ``query``, newest first, at most ``query.limit``."""

    async def purge(self, older_than: Timestamp, limit: int) -> int:
        """Delete up to ``limit`` (≥ 1) records that occurred before ``older_than``; return how
        many were deleted."""


class OutboxRepository(Protocol):
    """Notifications waiting to be delivered (``protocol/notifications.py``). A message is
    written in the transaction of what it reports, so it exists if and only if that committed;
    delivery claims it with a compare-and-set and a lease, so of any number of workers exactly
    one sends it (again only after a lease ran out: a worker died holding it)."""

    async def add(self, messages: Sequence[OutboxMessage]) -> None:
        """Insert the messages (one statement); ``AlreadyExistsError`` when an id is taken."""

    async def get(self, message_id: str) -> OutboxMessage | None: ...

    async def due(self, now: Timestamp, limit: int) -> Sequence[OutboxMessage]:
        """Pending messages whose ``next_attempt_at`` is not after ``now`` and that no live
        claim holds, oldest first, at most ``limit``: candidates, each still to be claimed."""

    async def claim(self, message_id: str, token: str, now: Timestamp, until: Timestamp
                    ) -> bool:
        """Only if the message is pending, due, and unclaimed or its claim expired by ``now``:
        hold it for ``token`` until ``until`` and count an attempt. True for exactly one of
        concurrent callers; on False nothing changed."""

    async def finish(self, message_id: str, token: str, now: Timestamp) -> bool:
        """Mark done, only while ``token`` holds the claim."""

    async def retry_at(self, message_id: str, token: str, at: Timestamp, error: str) -> bool:
        """Release the claim and make the message due again at ``at``, noting ``error``; only
        while ``token`` holds the claim."""

    async def give_up(self, message_id: str, token: str, now: Timestamp, error: str) -> bool:
        """Mark failed for good, noting ``error``; only while ``token`` holds the claim."""

    async def list(self, limit: int = 1000) -> Sequence[OutboxMessage]:
        """Every message, oldest first (operators and tests)."""

    async def purge(self, finished_before: Timestamp, limit: int) -> int:
        """Delete up to ``limit`` (≥ 1) done or failed messages finished before
        ``finished_before``; return how many."""


@dataclass(frozen=True, slots=True)
class TotpFactor:
    """A person's authenticator app (RFC 6238): its secret sealed under the KEK, whether it
    was confirmed with a code, and the last time step a code was accepted for (replay guard)."""

    user_id: str
    sealed_secret: bytes
    active: bool
    created_at: Timestamp
    last_step: int = 0


class FactorRepository(Protocol):
    """Second factors. Accepting a code is a compare-and-set on the stored time step, and a
    recovery code is used by one conditional UPDATE: of concurrent callers exactly one wins."""

    async def get_totp(self, user_id: str) -> TotpFactor | None: ...

    async def set_pending_totp(self, factor: TotpFactor) -> bool:
        """Replace any unconfirmed factor of the user by ``factor``; False (nothing written)
        when the user has an active one."""

    async def activate_totp(self, user_id: str, step: int, recovery_hashes: Sequence[str]) -> bool:
        """Confirm the pending factor with a code of time step ``step`` (it becomes the last
        used step) and replace the user's recovery codes, only if still pending."""

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        """Accept a code of ``step`` only if the active factor's last used step is older."""

    async def use_recovery_code(self, user_id: str, code_hash: str, now: Timestamp) -> bool:
        """Mark one unused recovery code of the user used; False when none matches."""

    async def recovery_codes_left(self, user_id: str) -> int: ...

    async def remove(self, user_id: str) -> bool:
        """Remove the user's factor and recovery codes; True when there was a factor."""


class UnitOfWork(Protocol):
    """One transaction. Leaving the block without ``commit()`` rolls back."""

    # Read-only members, so implementations may narrow them to their own repository classes.
    @property
    def clients(self) -> ClientRepository: ...
    @property
    def users(self) -> UserRepository: ...
    @property
    def device_authorizations(self) -> DeviceAuthorizationRepository: ...
    @property
    def refresh_tokens(self) -> RefreshTokenRepository: ...
    @property
    def secrets(self) -> SecretRepository: ...
    @property
    def browser_sessions(self) -> BrowserSessionRepository: ...
    @property
    def denylist(self) -> DenylistRepository: ...
    @property
    def audit_log(self) -> AuditLogRepository: ...
    @property
    def signing_keys(self) -> SigningKeyRepository: ...
    @property
    def grants(self) -> GrantRepository: ...
    @property
    def authorization_codes(self) -> AuthorizationCodeRepository: ...
    @property
    def outbox(self) -> OutboxRepository: ...
    @property
    def factors(self) -> FactorRepository: ...
    @property
    def consents(self) -> ConsentRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class Store(Protocol):
    def unit_of_work(self, *, read_only: bool = False) -> UnitOfWork:
        """A new transaction. ``read_only`` promises that it only reads: it may then run beside
        writers on a snapshot (SQLite's WAL readers), which keeps hot read paths such as a
        pending poll off the single write lock. Decisions taken on such a read are persisted
        later with a compare-and-set, never by trusting the snapshot."""
    async def close(self) -> None: ...

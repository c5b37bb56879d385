"""The only place that opens a transaction: load → protocol decides → persist.

Every method takes typed input from the web layer (or the admin CLI), runs the pure protocol core
and persists its decision through storage compare-and-sets. Nothing here knows about HTTP.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import anyio

from ..protocol import client_auth, device_authorization, tokens
from ..protocol.codes import (
    CodeSource,
    SecretsCodeSource,
    format_user_code,
    hash_client_secret,
    normalize_user_code,
)
from ..protocol.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidTokenError,
    OAuthError,
    ServerError,
    UnsupportedGrantTypeError,
)
from ..protocol.grants import device_code, refresh_token
from ..protocol.models import (
    Client,
    ClientType,
    DevicePolicy,
    DeviceStatus,
    IssuedTokens,
    RefreshToken,
    RequestOrigin,
    Timestamp,
    TokenPolicy,
    User,
)
from ..protocol.params import FormParams
from ..protocol.scopes import PROFILE, describe_scope
from ..protocol.verification import Decision, decide, is_actionable
from ..storage.interface import AlreadyExistsError, Store, UnitOfWork
from . import identity
from .keys import KeyRing, TokenVerificationError
from .polling import MemoryPollState, PollState
from .ratelimit import Check, Limiter, ip_key

log = logging.getLogger("deviceflow.service")

Clock = Callable[[], float]

CLIENT_CACHE_SECONDS = 5.0
"""How long a client record is reused before it is read again."""

_CLIENT_CACHE_SIZE = 10_000

_USER_CODE_ATTEMPTS = 8
"""Retries when a new user code collides with a live one (20^8 codes make this very rare)."""


@dataclass(frozen=True, slots=True)
class ServicePolicy:
    device: DevicePolicy
    token: TokenPolicy
    grant_types: tuple[str, ...]
    expired_code_retention: int = 24 * 3600
    """How long an expired device code is kept so a late poll still hears ``expired_token``."""
    session_lifetime: int = 8 * 3600


# --- results for the verification pages -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """What the consent page shows about one device authorization (RFC 8628 §5.4)."""

    user_code: str
    client_name: str
    client_id: str
    scopes: tuple[tuple[str, str], ...]
    origin: RequestOrigin
    created_at: Timestamp
    expires_at: Timestamp


@dataclass(frozen=True, slots=True)
class Throttled:
    retry_after: int
    sign_in_helps: bool = False
    """True when only the global anonymous budget is spent: a signed-in person may go on."""


class CodeRefused(StrEnum):
    """Unknown, expired, used and denied codes all map here: the page is no oracle (§5.1)."""

    INVALID = "invalid"


CodeEntry = PendingRequest | Throttled | CodeRefused


@dataclass(frozen=True, slots=True)
class CodeAttempt:
    session_id: str
    ip_address: str
    user_id: str | None


class SignInRefused(StrEnum):
    INVALID = "invalid"


SignIn = User | Throttled | SignInRefused


class DecisionOutcome(StrEnum):
    RECORDED = "recorded"
    GONE = "gone"
    """The code was decided elsewhere, expired, or never existed: nothing changed."""


class DeviceFlowService:
    def __init__(
        self,
        store: Store,
        keyring: KeyRing,
        policy: ServicePolicy,
        limiter: Limiter,
        *,
        clock: Clock = time.time,
        codes: CodeSource | None = None,
        poll_state: PollState | None = None,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.policy = policy
        self.limiter = limiter
        self._clock = clock
        self._codes = codes or SecretsCodeSource()
        self.poll_state: PollState = poll_state or MemoryPollState()
        self._clients: dict[str, tuple[Client, float]] = {}
        self._grants = {
            device_code.GRANT_TYPE: self._device_code_grant,
            refresh_token.GRANT_TYPE: self._refresh_token_grant,
        }

    def now(self) -> Timestamp:
        """The service's clock (injected under test); pages use it for session ages too."""
        return self._clock()

    # --- RFC 8628 §3.1–3.2 ---------------------------------------------------------------------

    async def _client(self, client_id: str) -> Client | None:
        """A registered client, from a short in-process cache: every poll authenticates its
        client, and clients change rarely. A removed or changed client takes effect within
        ``CLIENT_CACHE_SECONDS``."""
        now = time.monotonic()
        cached = self._clients.get(client_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self.store.unit_of_work(read_only=True) as uow:
            client = await uow.clients.get(client_id)
        if client is None:
            self._clients.pop(client_id, None)  # unknown ids are not cached: no memory to flood
        else:
            if len(self._clients) >= _CLIENT_CACHE_SIZE:
                self._clients.clear()
            self._clients[client_id] = (client, now + CLIENT_CACHE_SECONDS)
        return client

    async def authenticate_client(self, params: FormParams, authorization: str | None) -> Client:
        credentials = client_auth.parse_client_credentials(authorization, params)
        return client_auth.authenticate_client(
            credentials, await self._client(credentials.client_id)
        )

    async def device_authorization(
        self, params: FormParams, authorization: str | None, origin: RequestOrigin
    ) -> device_authorization.DeviceAuthorizationResponse:
        request = device_authorization.parse_request(params)
        client = await self.authenticate_client(params, authorization)
        async with self.store.unit_of_work() as uow:
            for _ in range(_USER_CODE_ATTEMPTS):
                record, response = device_authorization.authorize_device(
                    request, client, self.policy.device, origin, self._clock(),
                    self._codes, self.keyring.hasher,
                )
                try:
                    await uow.device_authorizations.add(record)
                except AlreadyExistsError:
                    continue  # a live code already has this user code: draw another
                await uow.commit()
                return response
        raise ServerError("could not allocate a unique user code")

    # --- RFC 6749 §5 token endpoint --------------------------------------------------------------

    async def token(
        self, params: FormParams, authorization: str | None
    ) -> IssuedTokens | OAuthError:
        """Tokens, or the error that answers a poll (``authorization_pending``, ``slow_down``,
        a lost redemption race), returned rather than raised: that is the hot path, and an
        answer, not a failure. A malformed or unauthorized request raises its error."""
        grant_type = params.get("grant_type")
        if grant_type is None:
            raise InvalidRequestError("missing grant_type")
        handler = self._grants.get(grant_type)
        if handler is None or grant_type not in self.policy.grant_types:
            raise UnsupportedGrantTypeError(f"grant_type {grant_type!r}")
        client = await self.authenticate_client(params, authorization)
        return await handler(params, client)

    async def _device_code_grant(
        self, params: FormParams, client: Client
    ) -> IssuedTokens | OAuthError:
        """RFC 8628 §3.4–3.5. The hot path: a pending poll is at most one read (a snapshot,
        beside any writer; with Redis, usually none: see ``PENDING_COPY_SECONDS``) and a
        polling-state update outside the database. Redemption is a compare-and-set on the
        approved record: of any number of concurrent polls of one approved code exactly one
        gets tokens; the rest get ``invalid_grant``."""
        request = device_code.parse(params)
        now = self._clock()
        code_hash = self.keyring.hasher.device_code(request.device_code)
        snapshot = await self.poll_state.load(code_hash, now)
        stored = snapshot.pending
        from_database = stored is None
        if stored is None:
            async with self.store.unit_of_work(read_only=True) as uow:
                stored = await uow.device_authorizations.get_by_device_code(code_hash)
        record = None if stored is None else snapshot.apply(stored)
        decision = device_code.poll(record, client, now)
        if isinstance(decision, device_code.Redeem):
            return await self._redeem(decision, client, now)
        # Pending or slow_down: record the poll. If another poll of this code got there first,
        # this one came too fast by definition, so it is answered slow_down.
        assert stored is not None  # poll() raised for a missing record
        keep = stored if from_database and stored.status is DeviceStatus.PENDING else None
        if not await self.poll_state.save(decision.record, snapshot, now, pending=keep):
            return device_code.outcome_error(device_code.SlowDown(decision.record))
        return device_code.outcome_error(decision)

    async def _redeem(
        self, decision: device_code.Redeem, client: Client, now: Timestamp
    ) -> IssuedTokens | OAuthError:
        new = decision.record
        async with self.store.unit_of_work() as uow:
            if not await uow.device_authorizations.transition(new, DeviceStatus.APPROVED):
                return InvalidGrantError("device code redeemed by a concurrent poll")
            user = await uow.users.get(new.user_id) if new.user_id is not None else None
            if user is None or new.auth_time is None:
                return InvalidGrantError("approving user no longer exists")
            grant = tokens.Grant(user, client.client_id, new.scope, new.auth_time)
            issued = await self._issue(uow, grant, client, now, secrets.token_hex(16))
            await uow.commit()
        return issued

    async def _refresh_token_grant(
        self, params: FormParams, client: Client
    ) -> IssuedTokens | OAuthError:
        request = refresh_token.parse(params)
        now = self._clock()
        token_hash = self.keyring.hasher.refresh_token(request.refresh_token)
        async with self.store.unit_of_work() as uow:
            decision = refresh_token.refresh(
                request, await uow.refresh_tokens.get(token_hash), client, now
            )
            if isinstance(decision, refresh_token.RevokeFamily):
                count = await uow.refresh_tokens.revoke_family(decision.family_id)
                await uow.commit()
                log.warning("rotated refresh token replayed; revoked %d in its family", count)
                return InvalidGrantError("refresh token reuse")
            if not await uow.refresh_tokens.rotate(decision.old.token_hash):
                return InvalidGrantError("refresh token rotated by a concurrent request")
            user = await uow.users.get(decision.old.user_id)
            if user is None:
                return InvalidGrantError("user no longer exists")
            grant = tokens.Grant(user, client.client_id, decision.scope, decision.old.auth_time)
            issued = await self._issue(uow, grant, client, now, decision.old.family_id,
                                       refresh_scope=decision.old.scope)
            await uow.commit()
        return issued

    async def _issue(
        self, uow: UnitOfWork, grant: tokens.Grant, client: Client, now: Timestamp,
        family_id: str, refresh_scope: tuple[str, ...] | None = None,
    ) -> IssuedTokens:
        plain_refresh: str | None = None
        if refresh_token.GRANT_TYPE in client.grant_types and (
            refresh_token.GRANT_TYPE in self.policy.grant_types
        ):
            plain_refresh = self._codes.token()
            await uow.refresh_tokens.add(
                RefreshToken(
                    token_hash=self.keyring.hasher.refresh_token(plain_refresh),
                    family_id=family_id,
                    client_id=client.client_id,
                    user_id=grant.user.user_id,
                    scope=refresh_scope or grant.scope,
                    issued_at=now,
                    expires_at=now + self.policy.token.refresh_token_lifetime,
                    auth_time=grant.auth_time,
                )
            )
        return tokens.issue(
            grant, self.policy.token, self.keyring.signer, now, secrets.token_urlsafe(16),
            plain_refresh,
        )

    # --- OIDC Core §5.3 userinfo ----------------------------------------------------------------

    async def userinfo(self, access_token: str) -> dict[str, str]:
        """Verify an RFC 9068 access token (signature, typ, iss, exp) and describe its subject."""
        try:
            claims = self.keyring.verify(access_token, tokens.ACCESS_TOKEN_TYP)
        except TokenVerificationError as exc:
            raise InvalidTokenError(str(exc)) from None
        exp = claims.get("exp")
        if claims.get("iss") != self.policy.token.issuer or not isinstance(exp, int):
            raise InvalidTokenError("wrong issuer or no exp")
        if exp <= self._clock():
            raise InvalidTokenError("expired")
        sub = claims.get("sub")
        async with self.store.unit_of_work(read_only=True) as uow:
            user = await uow.users.get(sub) if isinstance(sub, str) else None
        if user is None:
            raise InvalidTokenError("subject no longer exists")
        info = {"sub": user.user_id}
        scope = claims.get("scope")
        if isinstance(scope, str) and PROFILE in scope.split(" "):
            info.update(tokens.profile_claims(user))
        return info

    # --- verification pages (RFC 8628 §3.3, §5.1, §5.4) -------------------------------------------

    def _code_checks(self, attempt: CodeAttempt, *, signed_in: bool) -> list[Check]:
        checks = [
            self.limiter.check("code_per_session", attempt.session_id),
            self.limiter.check("code_per_ip", ip_key(attempt.ip_address)),
        ]
        if signed_in and attempt.user_id is not None:
            checks.append(self.limiter.check("code_per_account", attempt.user_id))
        else:
            checks.append(self.limiter.check("code_global", "all"))
        return checks

    async def enter_user_code(self, raw: str, attempt: CodeAttempt) -> CodeEntry:
        """Look up a typed user code under the brute-force budgets.

        Anonymous entries spend the session, IP and global budgets. When only the global budget is
        spent, a signed-in person may still enter codes against a per-account budget: the attack
        is stopped without locking every real user out."""
        signed_in = attempt.user_id is not None
        checks = self._code_checks(attempt, signed_in=signed_in)
        verdict = await self.limiter.verdict(checks)
        if not verdict.allowed:
            return Throttled(
                verdict.retry_after,
                sign_in_helps=not signed_in and set(verdict.tripped) == {"code_global"},
            )
        normalized = normalize_user_code(raw)
        found = await self._lookup(normalized) if normalized is not None else None
        if found is None:
            if signed_in:
                checks.append(self.limiter.check("code_global", "all"))
            await self.limiter.hit(checks)
            return CodeRefused.INVALID
        return found

    async def _lookup(self, normalized: str) -> PendingRequest | None:
        code_hash = self.keyring.hasher.user_code(normalized)
        async with self.store.unit_of_work(read_only=True) as uow:
            record = await uow.device_authorizations.get_by_user_code(code_hash)
        if record is None or not is_actionable(record, self._clock()):
            return None
        client = await self._client(record.client_id)
        if client is None:
            return None
        return PendingRequest(
            user_code=format_user_code(normalized),
            client_name=client.name,
            client_id=client.client_id,
            scopes=tuple((s, describe_scope(s)) for s in record.scope),
            origin=record.origin,
            created_at=record.created_at,
            expires_at=record.expires_at,
        )

    async def pending_request(self, user_code: str) -> PendingRequest | None:
        """Re-read a code this browser session already entered (no budget spent): it may have been
        decided or expired since."""
        normalized = normalize_user_code(user_code)
        return await self._lookup(normalized) if normalized is not None else None

    async def record_decision(
        self, user_code: str, decision: Decision, user_id: str, auth_time: Timestamp
    ) -> DecisionOutcome:
        """Store approve/deny with a compare-and-set on ``pending``: a decided code can never be
        revived, and of concurrent decisions exactly one is recorded."""
        now = self._clock()
        normalized = normalize_user_code(user_code)
        if normalized is None:
            return DecisionOutcome.GONE
        async with self.store.unit_of_work() as uow:
            record = await uow.device_authorizations.get_by_user_code(
                self.keyring.hasher.user_code(normalized)
            )
            if record is None or not is_actionable(record, now):
                return DecisionOutcome.GONE
            new = decide(record, decision, user_id, auth_time, now)
            if not await uow.device_authorizations.transition(new, DeviceStatus.PENDING):
                return DecisionOutcome.GONE
            await uow.commit()
        await self.poll_state.decided(new.device_code_hash, new.expires_at, now)
        return DecisionOutcome.RECORDED

    async def sign_in(self, username: str, password: str, ip_address: str) -> SignIn:
        checks = [
            self.limiter.check("login_per_account", username.casefold()),
            self.limiter.check("login_per_ip", ip_key(ip_address)),
        ]
        verdict = await self.limiter.verdict(checks)
        if not verdict.allowed:
            return Throttled(verdict.retry_after)
        async with self.store.unit_of_work(read_only=True) as uow:
            user = await uow.users.get_by_username(username)
        # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
        ok = await anyio.to_thread.run_sync(
            identity.verify_password, password, user.password_hash if user else None
        )
        if not ok or user is None:
            await self.limiter.hit(checks)
            return SignInRefused.INVALID
        return user

    async def get_user(self, user_id: str) -> User | None:
        async with self.store.unit_of_work(read_only=True) as uow:
            return await uow.users.get(user_id)

    # --- housekeeping ----------------------------------------------------------------------------

    async def purge_expired(self, batch: int = 500) -> int:
        """Delete device codes past their ``expired_token`` window and expired refresh tokens, in
        small batches so no request waits long behind the purge."""
        now = self._clock()
        async with self.store.unit_of_work() as uow:
            n = await uow.device_authorizations.purge(
                now - self.policy.expired_code_retention, batch
            )
            n += await uow.refresh_tokens.purge(now, batch)
            await uow.commit()
        return n


# --- administration (used by the operator CLI and the demo) ------------------------------------


class AdminService:
    """Users and clients. Shares the store with the server; needs no keys."""

    def __init__(self, store: Store, clock: Clock = time.time) -> None:
        self.store = store
        self._clock = clock

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
        async with self.store.unit_of_work() as uow:
            removed = await uow.users.remove(username)
            await uow.commit()
        return removed

    async def set_password(self, username: str, password: str) -> bool:
        password_hash = await anyio.to_thread.run_sync(identity.hash_password, password)
        async with self.store.unit_of_work() as uow:
            changed = await uow.users.set_password_hash(username, password_hash)
            await uow.commit()
        return changed

    async def add_client(
        self, client_id: str, name: str, client_type: ClientType, grant_types: Sequence[str],
        scopes: Sequence[str], device_code_lifetime: int | None = None,
    ) -> tuple[Client, str | None]:
        """Register a client; a confidential client's secret is returned once, stored hashed."""
        secret = identity.new_client_secret() if client_type is ClientType.CONFIDENTIAL else None
        client = Client(
            client_id=client_id, name=name, client_type=client_type,
            grant_types=frozenset(grant_types), scopes=frozenset(scopes),
            secret_hash=hash_client_secret(secret) if secret else None,
            device_code_lifetime=device_code_lifetime, created_at=self._clock(),
        )
        async with self.store.unit_of_work() as uow:
            await uow.clients.add(client)
            await uow.commit()
        return client, secret

    async def list_clients(self) -> Sequence[Client]:
        async with self.store.unit_of_work(read_only=True) as uow:
            return await uow.clients.list()

    async def remove_client(self, client_id: str) -> bool:
        async with self.store.unit_of_work() as uow:
            removed = await uow.clients.remove(client_id)
            await uow.commit()
        return removed

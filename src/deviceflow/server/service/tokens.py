"""The token side of the service: device authorization (RFC 8628 §3.1–3.2), the token endpoint
(RFC 6749 §5) with its grants, userinfo (OIDC Core §5.3), and the purge of expired records."""

from __future__ import annotations

import logging
import secrets

from ...protocol import client_auth, device_authorization, tokens
from ...protocol.audit import AuditEventType
from ...protocol.device_authorization import (
    DeviceAuthorizationRequest,
    DeviceAuthorizationResponse,
)
from ...protocol.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidTokenError,
    OAuthError,
    ServerError,
    TemporarilyUnavailableError,
    UnsupportedGrantTypeError,
)
from ...protocol.grants import authorization_code, client_credentials, device_code, refresh_token
from ...protocol.models import (
    Client,
    DeviceStatus,
    GrantRecord,
    IssuedTokens,
    RequestOrigin,
    Timestamp,
    TokenPolicy,
)
from ...protocol.notifications import NotificationType
from ...protocol.params import FormParams
from ...protocol.proximity import NetworkFacts
from ...protocol.scopes import PROFILE
from ...storage.interface import AlreadyExistsError
from ..keys import TokenVerificationError
from ..ratelimit import ip_key
from .authorization import AuthorizationService
from .context import ServiceContext
from .proximity import ProximityService
from .revocation import RevocationService

log = logging.getLogger("deviceflow.service")

_USER_CODE_ATTEMPTS = 8
"""Retries when a new user code collides with a live one (20^8 codes make this very rare)."""

_REFRESH_ATTEMPTS = 4
"""Decisions one refresh request may take when concurrent requests on the same family keep
winning the compare-and-set first; then it is refused, and the family is left alone."""


def _network_detail(facts: NetworkFacts | None) -> str | None:
    """The device's network for the audit log (no secret: a network's public facts)."""
    if facts is None:
        return None
    if facts.local:
        return "network=local"
    parts = [f"network={facts.network}"]
    if facts.country:
        parts.append(f"country={facts.country}")
    if facts.hosting:
        parts.append(f"hosting={facts.hosting.replace(' ', '_')}")
    return " ".join(parts)


class TokenService:
    def __init__(self, ctx: ServiceContext,
                 authorization: AuthorizationService | None = None) -> None:
        self.ctx = ctx
        self._revocation = RevocationService(ctx)
        # The code half of browser authorization lives with the rest of it.
        self._authorization = authorization or AuthorizationService(ctx, self._revocation)
        self._proximity = ProximityService(ctx)
        self._grants = {
            authorization_code.GRANT_TYPE: self._authorization.redeem,
            device_code.GRANT_TYPE: self._device_code_grant,
            refresh_token.GRANT_TYPE: self._refresh_token_grant,
            client_credentials.GRANT_TYPE: self._client_credentials_grant,
        }

    async def authenticate_client(self, params: FormParams, authorization: str | None) -> Client:
        credentials = client_auth.parse_client_credentials(authorization, params)
        return client_auth.authenticate_client(
            credentials, await self.ctx.client(credentials.client_id)
        )

    # --- RFC 8628 §3.1–3.2 ---------------------------------------------------------------------

    async def device_authorization(
        self, params: FormParams, authorization: str | None, origin: RequestOrigin
    ) -> device_authorization.DeviceAuthorizationResponse:
        """RFC 8628 §3.1–3.2, under two budgets spent before any row is written: a rate per
        client and IP, and at most ``device_codes_per_client`` codes issued to the client
        within one code lifetime (which bounds the codes it holds live). Over either, 429
        ``temporarily_unavailable`` with ``Retry-After``."""
        ctx = self.ctx
        request = device_authorization.parse_request(params)
        client = await self.authenticate_client(params, authorization)
        limiter = ctx.limiter
        lifetime = client.device_code_lifetime or ctx.policy.device.expires_in
        # Fails open: these budgets keep one client or IP from filling the database, and a
        # Redis outage is no flood; failing closed would stop every device from starting.
        verdict = await limiter.spend([
            limiter.check("device_authorization_per_ip",
                          f"{client.client_id} {ip_key(origin.ip_address)}"),
            limiter.live_codes_check(client.client_id, lifetime),
        ], fail_open=True)
        if not verdict.allowed:
            raise TemporarilyUnavailableError(
                f"device authorization budget spent: {', '.join(verdict.tripped)}",
                retry_after=verdict.retry_after,
            )
        try:
            response = await self._add_device_authorization(request, client, origin)
        except Exception:
            await limiter.refund(verdict)  # no code was issued: nothing was spent
            raise
        return response

    async def _add_device_authorization(
        self, request: DeviceAuthorizationRequest, client: Client, origin: RequestOrigin
    ) -> DeviceAuthorizationResponse:
        ctx = self.ctx
        network = self._proximity.device_facts(client, origin)
        async with ctx.store.unit_of_work() as uow:
            for _ in range(_USER_CODE_ATTEMPTS):
                record, response = device_authorization.authorize_device(
                    request, client, ctx.policy.device, origin, ctx.clock(),
                    ctx.codes, ctx.keyring.hasher, network,
                )
                try:
                    await uow.device_authorizations.add(record)
                except AlreadyExistsError:
                    continue  # a live code already has this user code: draw another
                event = await ctx.audit.append(
                    uow, AuditEventType.DEVICE_AUTHORIZATION_REQUESTED,
                    client_id=client.client_id, family_id=device_code.family_id(record),
                    origin=origin, detail=_network_detail(network))
                await uow.commit()
                ctx.audit.emit(event)
                await self._proximity.count_device_network(network)
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
        if handler is None or grant_type not in self.ctx.policy.grant_types:
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
        ctx = self.ctx
        request = device_code.parse(params)
        now = ctx.clock()
        code_hash = ctx.keyring.hasher.device_code(request.device_code)
        snapshot = await ctx.poll_state.load(code_hash, now)
        stored = snapshot.pending
        from_database = stored is None
        if stored is None:
            async with ctx.store.unit_of_work(read_only=True) as uow:
                stored = await uow.device_authorizations.get_by_device_code(code_hash)
        record = None if stored is None else snapshot.apply(stored)
        decision = device_code.poll(record, client, now)
        if isinstance(decision, device_code.Redeem):
            return await self._redeem(decision, client, now)
        if isinstance(decision, device_code.Replayed):
            return await self._revoke_replayed(decision, client)
        # Pending or slow_down: record the poll. If another poll of this code got there first,
        # this one came too fast by definition, so it is answered slow_down.
        assert stored is not None  # poll() raised for a missing record
        keep = stored if from_database and stored.status is DeviceStatus.PENDING else None
        if not await ctx.poll_state.save(decision.record, snapshot, now, pending=keep):
            return device_code.outcome_error(device_code.SlowDown(decision.record))
        return device_code.outcome_error(decision)

    async def _redeem(
        self, decision: device_code.Redeem, client: Client, now: Timestamp
    ) -> IssuedTokens | OAuthError:
        ctx = self.ctx
        new = decision.record
        async with ctx.store.unit_of_work() as uow:
            if not await uow.device_authorizations.transition(new, DeviceStatus.APPROVED):
                return InvalidGrantError("device code redeemed by a concurrent poll")
            user = await uow.users.get(new.user_id) if new.user_id is not None else None
            if user is None or new.auth_time is None:
                return InvalidGrantError("approving user no longer exists")
            family = device_code.family_id(new)
            grant = tokens.Grant(user, client.client_id, new.scope, new.auth_time,
                                 device_code.GRANT_TYPE, family, new.amr)
            policy = device_code.token_policy(client, ctx.policy.token)
            plain: str | None = None
            if refresh_token.issues_refresh_token(client, grant.scope, ctx.policy.grant_types):
                plain = ctx.codes.token()
                first = refresh_token.start_family(
                    grant, ctx.keyring.hasher.refresh_token(plain), family, now, policy)
                await uow.refresh_tokens.add(first)
                # Where the device asked from, kept with the family for "Your devices": the
                # device authorization itself is purged soon after it expires.
                await uow.grants.add(GrantRecord(
                    family_id=first.family_id, user_id=user.user_id, client_id=client.client_id,
                    approved_at=new.decided_at if new.decided_at is not None else now,
                    origin=new.origin, expires_at=first.family_expires_at))
            event = await ctx.audit.append(
                uow, AuditEventType.TOKENS_ISSUED, user_id=user.user_id,
                client_id=client.client_id, family_id=family,
                grant_type=device_code.GRANT_TYPE,
                detail="with refresh token" if plain else None)
            await uow.commit()
        ctx.audit.emit(event)
        return self._tokens(grant, now, plain, policy)

    async def _revoke_replayed(self, decision: device_code.Replayed, client: Client
                               ) -> OAuthError:
        """RFC 6749 §4.1.2: a redeemed code polled again is refused, and "the authorization
        server SHOULD revoke (when possible) all tokens previously issued based on that
        authorization code": its refresh tokens, and its access tokens through the denylist
        (idempotent: a revoked family stays revoked; audited as revoked by the server)."""
        count = await self._revocation.revoke_family(
            decision.family_id, actor=f"server:{client.client_id}")
        if count:
            log.warning("redeemed device code replayed; revoked %d refresh tokens", count)
        return InvalidGrantError("device code already redeemed")

    async def _refresh_token_grant(
        self, params: FormParams, client: Client
    ) -> IssuedTokens | OAuthError:
        """RFC 6749 §6 with rotation and its reuse grace window (``protocol.grants.
        refresh_token``). Each decision is persisted by one compare-and-set; a caller that loses
        one to a concurrent request loads the token again and decides again, a few times."""
        ctx = self.ctx
        request = refresh_token.parse(params)
        now = ctx.clock()
        token_hash = ctx.keyring.hasher.refresh_token(request.refresh_token)
        plain = ctx.codes.token()  # a lost compare-and-set wrote nothing: reused on a retry
        new_hash = ctx.keyring.hasher.refresh_token(plain)
        policy = ctx.policy.token
        for _ in range(_REFRESH_ATTEMPTS):
            async with ctx.store.unit_of_work() as uow:
                token = await uow.refresh_tokens.get(token_hash)
                successor = None
                if token is not None and token.successor_hash is not None:
                    successor = await uow.refresh_tokens.get(token.successor_hash)
                decision = refresh_token.refresh(
                    request, token, successor, client, now, policy.refresh_token_reuse_grace
                )
                if isinstance(decision, refresh_token.RevokeFamily):
                    ended = await self._revocation.revoke_family_in(
                        uow, decision.family_id, actor=f"server:{client.client_id}")
                    event = await ctx.audit.append(
                        uow, AuditEventType.REFRESH_REUSE_DETECTED,
                        user_id=token.user_id if token else None, client_id=client.client_id,
                        family_id=decision.family_id,
                        detail=f"{ended.refresh_tokens} refresh tokens revoked")
                    await ctx.notifier.add_in(uow, ctx.notifier.notification(
                        NotificationType.REFRESH_REUSE_DETECTED,
                        user_id=token.user_id if token else None, client_id=client.client_id,
                        family_id=decision.family_id,
                        origin=ended.grant.origin if ended.grant else None,
                        detail=event.detail, occurred_at=now))
                    await uow.commit()
                    self._revocation.committed(ended)
                    ctx.audit.emit(event)
                    log.warning("rotated refresh token replayed; revoked %d in its family",
                                ended.refresh_tokens)
                    return InvalidGrantError("refresh token reuse")
                old = decision.old
                user = await uow.users.get(old.user_id)
                if user is None:
                    return InvalidGrantError("user no longer exists")
                lifetime = (device_code.token_policy(client, policy)
                            if old.grant_type == device_code.GRANT_TYPE else policy)
                new = refresh_token.successor(decision, new_hash, now,
                                              lifetime.refresh_token_lifetime)
                if isinstance(decision, refresh_token.Rotate):
                    won = await uow.refresh_tokens.rotate(old.token_hash, new, now)
                else:
                    won = await uow.refresh_tokens.reissue(old.token_hash, decision.replaced, new)
                if not won:
                    continue  # a concurrent request changed the family first: decide again
                event = await ctx.audit.append(
                    uow, AuditEventType.REFRESHED, user_id=old.user_id,
                    client_id=client.client_id, family_id=old.family_id,
                    grant_type=refresh_token.GRANT_TYPE,
                    detail="reissued within the reuse grace window"
                    if isinstance(decision, refresh_token.ReissueWithinGrace) else None)
                await uow.commit()
            ctx.audit.emit(event)
            if isinstance(decision, refresh_token.ReissueWithinGrace):
                log.info("refresh token presented again within the reuse grace window; "
                         "its unused successor was replaced")
            grant = tokens.Grant(user, client.client_id, decision.scope, old.auth_time,
                                 old.grant_type, old.family_id, old.amr)
            # A device-grant login keeps the client's shorter lifetimes through every refresh.
            issued = device_code.token_policy(client, policy) \
                if old.grant_type == device_code.GRANT_TYPE else policy
            return self._tokens(grant, now, plain, issued)
        return InvalidGrantError("refresh token contended by concurrent requests")

    async def _client_credentials_grant(
        self, params: FormParams, client: Client
    ) -> IssuedTokens | OAuthError:
        """RFC 6749 §4.4: a confidential client's token for itself, with an audit row; no
        refresh token and no ID token (``protocol.grants.client_credentials``)."""
        ctx = self.ctx
        request = client_credentials.parse(params)
        scope = client_credentials.grant_scope(request, client)
        now = ctx.clock()
        async with ctx.store.unit_of_work() as uow:
            event = await ctx.audit.append(
                uow, AuditEventType.TOKENS_ISSUED, client_id=client.client_id,
                grant_type=client_credentials.GRANT_TYPE, detail=f"scope {' '.join(scope)}")
            await uow.commit()
        ctx.audit.emit(event)
        return client_credentials.issue(client, scope, ctx.policy.token, ctx.keyring.signer,
                                        now, secrets.token_urlsafe(16))

    def _tokens(self, grant: tokens.Grant, now: Timestamp, plain_refresh: str | None,
                policy: TokenPolicy) -> IssuedTokens:
        return tokens.issue(
            grant, policy, self.ctx.keyring.signer, now, secrets.token_urlsafe(16),
            plain_refresh,
        )

    # --- OIDC Core §5.3 userinfo ----------------------------------------------------------------

    async def userinfo(self, access_token: str) -> dict[str, str]:
        """Verify an RFC 9068 access token (signature, typ, iss, exp), refuse a revoked one
        (the denylist, by ``jti`` and by login) and describe its subject."""
        ctx = self.ctx
        try:
            claims = ctx.keyring.verify(access_token, tokens.ACCESS_TOKEN_TYP)
        except TokenVerificationError as exc:
            raise InvalidTokenError(str(exc)) from None
        token = tokens.read_access_token(claims, ctx.policy.token.issuer)
        if token is None:
            raise InvalidTokenError("wrong issuer or a required claim missing")
        if not token.active(ctx.clock()):
            raise InvalidTokenError("expired")
        if await ctx.denylist.denied(token.jti, token.family_id):
            raise InvalidTokenError("revoked")
        async with ctx.store.unit_of_work(read_only=True) as uow:
            user = await uow.users.get(token.sub)
        if user is None:
            raise InvalidTokenError("subject no longer exists")
        info = {"sub": user.user_id}
        if PROFILE in token.scope:
            info.update(tokens.profile_claims(user))
        return info

    # --- housekeeping ----------------------------------------------------------------------------

    async def purge_expired(self, batch: int = 500) -> int:
        """Delete device codes past their ``expired_token`` window, expired refresh tokens and
        denylist entries that can match no live token and the records of families past their
        absolute end, in small batches so no request waits
        long behind the purge."""
        ctx = self.ctx
        now = ctx.clock()
        async with ctx.store.unit_of_work() as uow:
            n = await uow.device_authorizations.purge(
                now - ctx.policy.expired_code_retention, batch
            )
            n += await uow.refresh_tokens.purge(now, batch)
            n += await uow.denylist.purge(now, batch)
            n += await uow.grants.purge(now, batch)
            await uow.commit()
        return n

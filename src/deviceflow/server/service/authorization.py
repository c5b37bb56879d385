"""Browser authorization (RFC 6749 §4.1 with PKCE, RFC 7636): checking an authorization request
at ``/authorize``, issuing a code on the person's approval, and redeeming it at the token
endpoint.

A code is stored only as its HMAC, lives ``CODE_LIFETIME`` seconds, and is redeemed by one
compare-and-set in storage; a code presented again (or redeemed by two requests at once) ends
the login it began through ``revocation.end_login_in``, as RFC 6749 §4.1.2 asks."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence

from ...protocol import tokens
from ...protocol.audit import AuditEventType
from ...protocol.errors import InvalidGrantError, OAuthError
from ...protocol.grants import authorization_code, refresh_token
from ...protocol.grants.authorization_code import AuthorizationRequest, NoRedirect
from ...protocol.models import (
    PASSWORD_AMR,
    Client,
    GrantRecord,
    IssuedTokens,
    RequestOrigin,
    Timestamp,
)
from ...protocol.params import FormParams
from ...storage.interface import UnitOfWork
from .context import ServiceContext
from .revocation import RevocationService

log = logging.getLogger("deviceflow.service")


class AuthorizationService:
    def __init__(self, ctx: ServiceContext, revocation: RevocationService) -> None:
        self.ctx = ctx
        self._revocation = revocation

    # --- /authorize (RFC 6749 §4.1.1–4.1.2) -------------------------------------------------

    async def check(self, items: Sequence[tuple[str, str]]) -> AuthorizationRequest:
        """The request as it will be honoured, or ``NoRedirect`` / ``RedirectError``."""
        client_ids = [value for name, value in items if name == "client_id" and value]
        client = await self.ctx.client(client_ids[0]) if len(client_ids) == 1 else None
        return authorization_code.check_request(items, client, self.ctx.policy.grant_types)

    async def client(self, request: AuthorizationRequest) -> Client:
        """The request's client as registered now, still allowed to send the person back to
        the request's redirect URI; ``NoRedirect`` when it was removed or changed meanwhile."""
        client = await self.ctx.client(request.client_id)
        if client is None:
            raise NoRedirect("The application that sent you here is no longer registered.")
        authorization_code.redirect_uri_for(
            request.redirect_uri if request.redirect_uri_given else None, client)
        return client

    async def approve(self, request: AuthorizationRequest, user_id: str, auth_time: Timestamp,
                      origin: RequestOrigin, amr: tuple[str, ...] = PASSWORD_AMR) -> str:
        """Issue a code for the approved ``request``; return the URI to send the browser to
        (``code``, ``state``, ``iss``: RFC 6749 §4.1.2, RFC 9207 §2). The person's consent to
        the request's scopes is remembered in the same transaction."""
        ctx = self.ctx
        client = await self.client(request)
        plain = ctx.codes.token()
        record = authorization_code.new_code(
            request, ctx.keyring.hasher.authorization_code(plain), user_id, auth_time, origin,
            ctx.clock(), amr)
        async with ctx.store.unit_of_work() as uow:
            await uow.authorization_codes.add(record)
            # Remembered with the approval, in its transaction (issue 11).
            await uow.consents.grant(user_id, client.client_id, request.scope, record.created_at)
            event = await ctx.audit.append(
                uow, AuditEventType.APPROVED, user_id=user_id, client_id=client.client_id,
                family_id=authorization_code.family_id(record),
                grant_type=authorization_code.GRANT_TYPE, origin=origin)
            await uow.commit()
        ctx.audit.emit(event)
        return authorization_code.success_uri(request, plain, ctx.policy.token.issuer)

    async def deny(self, request: AuthorizationRequest, user_id: str,
                   origin: RequestOrigin) -> str:
        """The person chose Deny: ``access_denied`` to the client (RFC 6749 §4.1.2.1)."""
        await self.ctx.audit.record(
            AuditEventType.DENIED, user_id=user_id, client_id=request.client_id,
            grant_type=authorization_code.GRANT_TYPE, origin=origin)
        return self.error_uri(request.redirect_uri, request.state, "access_denied",
                              "The person denied the request.")

    def error_uri(self, redirect_uri: str, state: str | None, error: str,
                  description: str) -> str:
        return authorization_code.error_uri(redirect_uri, state, error, description,
                                            self.ctx.policy.token.issuer)

    # --- /token (RFC 6749 §4.1.3–4.1.4) -----------------------------------------------------

    async def redeem(self, params: FormParams, client: Client) -> IssuedTokens | OAuthError:
        """Exactly one redemption of a code gets tokens; any other (a replay, or the loser of a
        concurrent redemption) gets ``invalid_grant`` and ends the login the code began."""
        ctx = self.ctx
        request = authorization_code.parse(params)
        now = ctx.clock()
        code_hash = ctx.keyring.hasher.authorization_code(request.code)
        async with ctx.store.unit_of_work() as uow:
            record = await uow.authorization_codes.get(code_hash)
            decision = authorization_code.redeem(request, record, client, now)
            if isinstance(decision, authorization_code.Replayed):
                return await self._end_replayed(uow, decision.family_id, client)
            code = decision.record
            family = authorization_code.family_id(code)
            if not await uow.authorization_codes.redeem(code_hash):
                return await self._end_replayed(uow, family, client)
            user = await uow.users.get(code.user_id)
            if user is None:
                await uow.commit()  # the code stays used
                return InvalidGrantError("approving user no longer exists")
            grant = tokens.Grant(user, client.client_id, code.scope, code.auth_time,
                                 authorization_code.GRANT_TYPE, family, code.amr)
            plain: str | None = None
            if refresh_token.issues_refresh_token(client, grant.scope, ctx.policy.grant_types):
                plain = ctx.codes.token()
                first = refresh_token.start_family(
                    grant, ctx.keyring.hasher.refresh_token(plain), family, now,
                    ctx.policy.token)
                await uow.refresh_tokens.add(first)
                await uow.grants.add(GrantRecord(
                    family_id=family, user_id=user.user_id, client_id=client.client_id,
                    approved_at=code.created_at, origin=code.origin,
                    expires_at=first.family_expires_at))
            event = await ctx.audit.append(
                uow, AuditEventType.TOKENS_ISSUED, user_id=user.user_id,
                client_id=client.client_id, family_id=family,
                grant_type=authorization_code.GRANT_TYPE,
                detail="with refresh token" if plain else None)
            await uow.commit()
        ctx.audit.emit(event)
        return tokens.issue(grant, ctx.policy.token, ctx.keyring.signer, now,
                            secrets.token_urlsafe(16), plain, nonce=code.nonce,
                            with_at_hash=True)

    async def _end_replayed(self, uow: UnitOfWork, family: str, client: Client) -> OAuthError:
        """RFC 6749 §4.1.2: deny, and revoke what the code issued (refresh tokens, and access
        tokens through the denylist), in the caller's transaction."""
        ended = await self._revocation.revoke_family_in(
            uow, family, actor=f"server:{client.client_id}")
        await uow.commit()
        self._revocation.committed(ended)
        log.warning("authorization code used again; its login was ended (%d refresh tokens)",
                    ended.refresh_tokens)
        return InvalidGrantError("authorization code already redeemed")

    async def purge_expired(self, batch: int = 500) -> int:
        """Delete codes past their lifetime plus the retention in which a replay is still
        recognised (``expired_code_retention``)."""
        ctx = self.ctx
        async with ctx.store.unit_of_work() as uow:
            n = await uow.authorization_codes.purge(
                ctx.clock() - ctx.policy.expired_code_retention, batch)
            await uow.commit()
        return n


__all__ = ["AuthorizationService"]

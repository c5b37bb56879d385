"""Revocation: ending a login (its refresh-token family and the access tokens issued from it), all
of a person's logins, or one access token; and the revocation endpoint (RFC 7009 §2).

Every path that ends a login — RFC 7009 requests, refresh reuse, a replayed device code, "Your
devices", the operator's ``deviceflow sessions revoke``, ``user passwd``/``user remove`` — goes
through ``end_login_in``: the refresh tokens are revoked, the family's denylist entry and its
audit row written in one transaction, so they commit together or not at all, and the access
tokens of the login are refused from then on (``server/denylist.py``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ...protocol import client_auth, revocation, tokens
from ...protocol.audit import AuditActor, AuditEvent, AuditEventType
from ...protocol.models import ActiveGrant, Client, DeniedToken, RefreshToken, Timestamp
from ...protocol.notifications import NotificationType
from ...protocol.params import FormParams
from ...protocol.revocation import TokenKind
from ...storage.interface import UnitOfWork
from ..keys import TokenVerificationError
from .audit import AuditService
from .context import ServiceContext
from .notify import Notifier

log = logging.getLogger("deviceflow.service")


@dataclass(frozen=True, slots=True)
class LoginEnded:
    """What ``revoke_family_in`` wrote: hand it to ``committed`` after the commit."""

    refresh_tokens: int
    """How many refresh tokens of the family were still active (or rotated) and are revoked."""
    entries: tuple[DeniedToken, ...]
    events: tuple[AuditEvent, ...] = ()
    grant: ActiveGrant | None = None
    """The login as it was before it ended (whose, which client, where it began), when the
    notifications needed it."""


def audit_actor(actor: str) -> tuple[AuditActor, str | None]:
    """``"person"``, ``"operator"``, ``"client:<id>"`` (an RFC 7009 request) or
    ``"server:<id>"`` (the server's own rule, on a request of that client) as the audit log's
    actor and client."""
    kind, _, client_id = actor.partition(":")
    return AuditActor(kind), client_id or None


async def end_login_in(
    uow: UnitOfWork, family_id: str, *, actor: str, now: Timestamp,
    access_token_lifetime: int, audit: AuditService, notifier: Notifier | None = None,
    grant: ActiveGrant | None = None,
) -> LoginEnded:
    """The one step every path that ends a login takes, inside the caller's transaction:
    revoke the family's refresh tokens (idempotent), deny its access tokens, and record it in
    the audit log when it changed anything; with an enabled ``notifier``, also a ``revoked``
    notification in the outbox (issue 10 §4). ``actor``: see ``audit_actor``. ``grant``: the
    login as the caller listed it (else read here, only when notifying)."""
    entry = revocation.family_entry(family_id, now, access_token_lifetime)
    notifying = notifier is not None and notifier.enabled
    if notifying and grant is None:
        # Read before the revocation: afterwards the family is no longer a signed-in device.
        found = await uow.grants.active(now, family_id=family_id)
        grant = found[0] if found else None
    count = await uow.refresh_tokens.revoke_family(family_id)
    await uow.denylist.add(entry)
    events: tuple[AuditEvent, ...] = ()
    if count:
        who, client_id = audit_actor(actor)
        events = (await audit.append(
            uow, AuditEventType.REVOKED, client_id=client_id, family_id=family_id, actor=who,
            detail=f"login ended: {count} refresh tokens revoked, its access tokens denied"),)
        log.info("login ended by %s: %d refresh tokens revoked, its access tokens denied",
                 actor, count)
        if notifier is not None and notifying:
            await notifier.add_in(uow, notifier.notification(
                NotificationType.REVOKED,
                client_id=grant.client_id if grant else client_id,
                user_id=grant.user_id if grant else None, family_id=family_id,
                origin=grant.origin if grant else None, actor=who.value,
                detail=f"{count} refresh tokens revoked", occurred_at=now))
    return LoginEnded(count, (entry,), events, grant)


async def end_selected_logins_in(
    uow: UnitOfWork, *, actor: str, now: Timestamp, access_token_lifetime: int,
    audit: AuditService, user_id: str | None = None, client_id: str | None = None,
    family_id: str | None = None, notifier: Notifier | None = None,
) -> list[LoginEnded]:
    """``end_login_in`` for every signed-in family the filters select; return the logins this
    call ended (a family another revoker ended first changes nothing here, and is left out).

    Families are revoked in ``family_id`` order (as storage lists them), so concurrent revokers
    lock rows in the same order."""
    grants = await uow.grants.active(now, user_id=user_id, client_id=client_id,
                                     family_id=family_id)
    ended = [await end_login_in(uow, grant.family_id, actor=actor, now=now,
                                access_token_lifetime=access_token_lifetime, audit=audit,
                                notifier=notifier, grant=grant)
             for grant in grants]
    return [one for one in ended if one.refresh_tokens]


class RevocationService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    # --- ending logins --------------------------------------------------------------------------

    async def revoke_family(self, family_id: str, *, actor: str) -> int:
        """Revoke every refresh token of the family and deny its access tokens; returns how many
        refresh tokens were not yet revoked (0 when the family was ended already)."""
        async with self.ctx.store.unit_of_work() as uow:
            ended = await self.revoke_family_in(uow, family_id, actor=actor)
            await uow.commit()
        self.committed(ended)
        return ended.refresh_tokens

    async def revoke_user(self, user_id: str, *, actor: str) -> int:
        """revoke_family for every signed-in family of the user; returns how many this call
        ended."""
        ctx = self.ctx
        async with ctx.store.unit_of_work() as uow:
            ended = await end_selected_logins_in(
                uow, actor=actor, now=ctx.clock(),
                access_token_lifetime=ctx.policy.token.access_token_lifetime,
                audit=ctx.audit, user_id=user_id, notifier=ctx.notifier)
            await uow.commit()
        for one in ended:
            self.committed(one)
        return len(ended)

    async def revoke_family_in(self, uow: UnitOfWork, family_id: str, *, actor: str
                               ) -> LoginEnded:
        """``end_login_in`` with this server's clock, token lifetime and audit log."""
        ctx = self.ctx
        return await end_login_in(
            uow, family_id, actor=actor, now=ctx.clock(),
            access_token_lifetime=ctx.policy.token.access_token_lifetime, audit=ctx.audit,
            notifier=ctx.notifier)

    def committed(self, ended: LoginEnded) -> None:
        """After the commit: this worker refuses the tokens at once (others within a second),
        and the audit lines are logged."""
        self.ctx.denylist.note(ended.entries)
        for event in ended.events:
            self.ctx.audit.emit(event)
        if ended.refresh_tokens:
            self.ctx.notifier.wake()

    # --- RFC 7009 §2 -----------------------------------------------------------------------------

    async def revoke(self, params: FormParams, authorization: str | None) -> TokenKind | None:
        """RFC 7009 §2.1–2.2: the client authenticates as at the token endpoint; the token is
        looked up as the hinted kind first, then as the other; the answer is 200 whether or not
        anything was revoked, except ``unsupported_token_type`` for an ID token (§2.2.1).
        Returns the kind of token that was revoked (for the metrics), None when nothing was."""
        ctx = self.ctx
        request = revocation.parse_token_request(params)
        credentials = client_auth.parse_client_credentials(authorization, params)
        client = client_auth.authenticate_client(
            credentials, await ctx.client(credentials.client_id))
        for kind in revocation.lookup_order(request.hint):
            decision = await self._decide(kind, request.token, client)
            if decision is not None:
                return kind if await self._apply(decision, client) else None
        claims = self._verified(request.token, tokens.ID_TOKEN_TYP)
        if claims is not None:
            revocation.refuse_id_token(claims, client, ctx.policy.token.issuer)
        return None

    async def _decide(self, kind: TokenKind, token: str, client: Client
                      ) -> revocation.RevocationDecision | None:
        ctx = self.ctx
        if kind is TokenKind.REFRESH_TOKEN:
            stored = await self.refresh_token(token)
            return None if stored is None else revocation.revoke_refresh_token(stored, client)
        access = self.access_token(token)
        return None if access is None else revocation.revoke_access_token(
            access, client, ctx.clock())

    async def _apply(self, decision: revocation.RevocationDecision, client: Client) -> bool:
        """Persist ``decision``; False when it was to change nothing."""
        if isinstance(decision, revocation.NothingToRevoke):
            log.info("revocation request changed nothing: %s", decision.reason)
            return False
        actor = f"client:{client.client_id}"
        ended: list[LoginEnded] = []
        async with self.ctx.store.unit_of_work() as uow:
            family = decision.family_id
            if family is not None:
                ended.append(await self.revoke_family_in(uow, family, actor=actor))
            if isinstance(decision, revocation.DenyAccessToken) and decision.entry is not None:
                await uow.denylist.add(decision.entry)
                event = await self.ctx.audit.append(
                    uow, AuditEventType.REVOKED, client_id=client.client_id,
                    actor=AuditActor.CLIENT, detail="access token revoked")
                ended.append(LoginEnded(0, (decision.entry,), (event,)))
                log.info("access token revoked by %s", actor)
            await uow.commit()
        for one in ended:
            self.committed(one)
        return True

    # --- lookups shared with introspection ------------------------------------------------------

    async def refresh_token(self, token: str) -> RefreshToken | None:
        """The stored refresh token ``token`` is, whatever its status."""
        token_hash = self.ctx.keyring.hasher.refresh_token(token)
        async with self.ctx.store.unit_of_work(read_only=True) as uow:
            return await uow.refresh_tokens.get(token_hash)

    def access_token(self, token: str) -> tokens.AccessToken | None:
        """An access token of ours (signature, ``typ`` at+jwt, ``iss``), expired or not."""
        claims = self._verified(token, tokens.ACCESS_TOKEN_TYP)
        return None if claims is None else tokens.read_access_token(
            claims, self.ctx.policy.token.issuer)

    def _verified(self, token: str, typ: str) -> dict[str, object] | None:
        try:
            return self.ctx.keyring.verify(token, typ)
        except TokenVerificationError:
            return None


__all__ = [
    "LoginEnded",
    "RevocationService",
    "audit_actor",
    "end_login_in",
    "end_selected_logins_in",
]

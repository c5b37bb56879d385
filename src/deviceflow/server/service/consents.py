"""Remembered consent (issue 11, ``protocol/consent.py``): what a person granted each client,
read for the consent pages and "Your devices", and withdrawn from there.

Approving writes the consent in the approval's own transaction (``VerificationService
.record_decision``, ``AuthorizationService.approve``); withdrawing forgets it and signs out that
client's devices of the person through the one login-ending path (``revocation
.end_selected_logins_in``, which writes the audit and notification rows), with an audit row of
its own, all in one transaction: the person never sees the consent gone and a device still in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...protocol.audit import AuditActor, AuditEvent, AuditEventType
from ...protocol.consent import Consent
from ...protocol.models import Timestamp
from ...protocol.scopes import OFFLINE_ACCESS, describe_scope
from .context import ServiceContext
from .revocation import LoginEnded, RevocationService, end_selected_logins_in

_MAX_CLIENT_ID = 256
"""A posted client id longer than this is no client of ours: refused unread."""


@dataclass(frozen=True, slots=True)
class RememberedConsent:
    """One row of the remembered consents on "Your devices"."""

    client_id: str
    client_name: str
    scopes: tuple[str, ...]
    """Plain-language descriptions, as the consent page showed them."""
    stay_signed_in: bool
    """``offline_access`` was granted (said by the "stay signed in" line, not as a scope)."""
    granted_at: Timestamp
    updated_at: Timestamp


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """What a withdrawal did: the consent was forgotten, and this many devices signed out."""

    devices_signed_out: int


class ConsentService:
    def __init__(self, ctx: ServiceContext, revocation: RevocationService) -> None:
        self.ctx = ctx
        self.revocation = revocation

    async def remembered(self, user_id: str, client_id: str) -> Consent | None:
        """What the person granted the client so far, or None."""
        async with self.ctx.store.unit_of_work(read_only=True) as uow:
            return await uow.consents.get(user_id, client_id)

    async def list(self, user_id: str) -> Sequence[RememberedConsent]:
        """The person's remembered consents, most recently extended first."""
        ctx = self.ctx
        async with ctx.store.unit_of_work(read_only=True) as uow:
            consents = await uow.consents.for_user(user_id)
        found = []
        for consent in consents:
            client = await ctx.client(consent.client_id)
            found.append(RememberedConsent(
                client_id=consent.client_id,
                client_name=client.name if client else consent.client_id,
                scopes=tuple(describe_scope(s) for s in sorted(consent.scopes)
                             if s != OFFLINE_ACCESS),
                stay_signed_in=OFFLINE_ACCESS in consent.scopes,
                granted_at=consent.granted_at, updated_at=consent.updated_at))
        found.sort(key=lambda c: c.updated_at, reverse=True)
        return found

    async def withdraw(self, user_id: str, client_id: str) -> Withdrawn | None:
        """Forget the person's consent for the client and sign out the client's devices of
        the person (RFC 7009 §2.1: their refresh tokens and access tokens), in one transaction
        with an audit row; None when no consent was remembered (another tab withdrew it, or the
        posted id is not one of theirs) and nothing changed."""
        if not client_id or len(client_id) > _MAX_CLIENT_ID:
            return None
        ctx = self.ctx
        now = ctx.clock()
        async with ctx.store.unit_of_work() as uow:
            # The DELETE decides: of concurrent withdrawals exactly one goes on.
            if not await uow.consents.withdraw(user_id, client_id):
                return None
            ended: list[LoginEnded] = await end_selected_logins_in(
                uow, actor=AuditActor.PERSON.value, now=now,
                access_token_lifetime=ctx.policy.token.access_token_lifetime, audit=ctx.audit,
                user_id=user_id, client_id=client_id, notifier=ctx.notifier)
            event: AuditEvent = await ctx.audit.append(
                uow, AuditEventType.CONSENT_WITHDRAWN, user_id=user_id, client_id=client_id,
                actor=AuditActor.PERSON,
                detail=f"consent withdrawn: {len(ended)} devices signed out")
            await uow.commit()
        ctx.audit.emit(event)
        for one in ended:
            self.revocation.committed(one)
        return Withdrawn(len(ended))


__all__ = ["ConsentService", "RememberedConsent", "Withdrawn"]

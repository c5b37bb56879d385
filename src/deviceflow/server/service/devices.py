""""Your devices": the devices a person has signed in (refresh-token families with a live
token), and signing them out.

Signing out goes through ``RevocationService`` (the one revocation path). The page posts a
family id, which a person can change: a family is only revoked after storage confirms it is
the person's own. A family's owner never changes, so that check and the revocation need not be
one step; the revocation itself is the atomic one (a conditional ``UPDATE`` in storage).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...protocol.audit import AuditActor
from ...protocol.models import Timestamp
from ...protocol.scopes import OFFLINE_ACCESS, describe_scope
from .context import ServiceContext
from .revocation import RevocationService

_MAX_FAMILY_ID = 64
"""Family ids are 32 hex characters; longer form values are not ours, refused unread."""


@dataclass(frozen=True, slots=True)
class SignedInDevice:
    """One row of "Your devices"."""

    family_id: str
    client_name: str
    scopes: tuple[str, ...]
    """Plain-language descriptions, as the consent page showed them."""
    approved_at: Timestamp | None
    last_used_at: Timestamp
    ip_address: str | None
    user_agent: str | None


class DeviceService:
    def __init__(self, ctx: ServiceContext, revocation: RevocationService) -> None:
        self.ctx = ctx
        self.revocation = revocation

    async def list(self, user_id: str) -> Sequence[SignedInDevice]:
        """The person's signed-in devices, most recently used first."""
        ctx = self.ctx
        async with ctx.store.unit_of_work(read_only=True) as uow:
            grants = await uow.grants.active(ctx.clock(), user_id=user_id)
        devices = []
        for grant in grants:
            client = await ctx.client(grant.client_id)
            devices.append(SignedInDevice(
                family_id=grant.family_id,
                client_name=client.name if client else grant.client_id,
                scopes=tuple(describe_scope(s) for s in grant.scope if s != OFFLINE_ACCESS),
                approved_at=grant.approved_at,
                last_used_at=grant.last_used_at,
                ip_address=grant.origin.ip_address if grant.origin else None,
                user_agent=grant.origin.user_agent if grant.origin else None,
            ))
        devices.sort(key=lambda d: d.last_used_at, reverse=True)
        return devices

    async def sign_out(self, user_id: str, family_id: str) -> bool:
        """Sign out one of the person's devices; False when ``family_id`` names no signed-in
        device of theirs (another person's, unknown, or already signed out)."""
        if not family_id or len(family_id) > _MAX_FAMILY_ID:
            return False
        ctx = self.ctx
        async with ctx.store.unit_of_work(read_only=True) as uow:
            owned = await uow.grants.active(ctx.clock(), user_id=user_id, family_id=family_id)
        if not owned:
            return False
        return await self.revocation.revoke_family(family_id, actor=AuditActor.PERSON.value) > 0

    async def sign_out_all(self, user_id: str) -> int:
        """Sign out every device of the person; return how many this call signed out."""
        return await self.revocation.revoke_user(user_id, actor=AuditActor.PERSON.value)


__all__ = ["DeviceService", "SignedInDevice"]

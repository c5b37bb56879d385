"""Revoking signed-in devices: a refresh-token family, every family of a person, or every
family a selection names (the operator's ``deviceflow sessions revoke``).

RFC 7009 §2.1: revoking a refresh token "SHOULD also invalidate all access tokens based on the
same authorization grant". In this branch only the refresh tokens are revoked (one conditional
``UPDATE`` per family in storage, so concurrent revokers each count only what they changed);
access tokens are self-contained JWTs, denied until they expire by the access-token denylist
(helper R's ``RevocationService``), which hooks in at ``revoke_family_in``: the one function
both the server's pages and the operator's commands revoke through.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from ...protocol.models import Timestamp
from ...storage.interface import UnitOfWork
from .context import ServiceContext

log = logging.getLogger("deviceflow.service")


class Actor(StrEnum):
    """Who revoked: logged, never shown to the device."""

    PERSON = "person"  # "Your devices"
    OPERATOR = "operator"  # deviceflow sessions / user passwd / user remove


async def revoke_family_in(uow: UnitOfWork, family_id: str, *, actor: str) -> int:
    """Revoke every not-yet-revoked refresh token of the family inside the caller's
    transaction; return how many changed (0 when it was already revoked)."""
    count = await uow.refresh_tokens.revoke_family(family_id)
    if count:
        log.info("refresh-token family revoked", extra={"actor": actor, "tokens": count})
    return count


async def revoke_selected_in(
    uow: UnitOfWork, now: Timestamp, *, actor: str, user_id: str | None = None,
    client_id: str | None = None, family_id: str | None = None,
) -> int:
    """Revoke every signed-in family the filters select; return how many this call revoked.

    Families are revoked in ``family_id`` order (as storage lists them), so two concurrent
    revokers lock rows in the same order and a family revoked by one counts 0 for the other."""
    grants = await uow.grants.active(now, user_id=user_id, client_id=client_id,
                                     family_id=family_id)
    revoked = 0
    for grant in grants:
        if await revoke_family_in(uow, grant.family_id, actor=actor):
            revoked += 1
    return revoked


class RevocationService:
    """Revocation for the server's own pages. Access tokens are denied by the denylist (R)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def revoke_family(self, family_id: str, *, actor: str) -> int:
        """Revoke every refresh token of the family and deny its access tokens; returns how
        many refresh tokens were active.

        Here: how many tokens of the family were not yet revoked (the active one, and any rotated
        within the reuse grace window); 0 when the family was revoked already."""
        async with self.ctx.store.unit_of_work() as uow:
            count = await revoke_family_in(uow, family_id, actor=actor)
            await uow.commit()
        return count

    async def revoke_user(self, user_id: str, *, actor: str) -> int:
        """revoke_family for every family of the user; returns families revoked."""
        async with self.ctx.store.unit_of_work() as uow:
            revoked = await revoke_selected_in(uow, self.ctx.clock(), actor=actor,
                                               user_id=user_id)
            await uow.commit()
        return revoked


__all__ = ["Actor", "RevocationService", "revoke_family_in", "revoke_selected_in"]

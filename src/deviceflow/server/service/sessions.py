"""Sign-ins on the verification pages, kept on the server.

The browser's cookie carries only a random session id (256 bits from ``secrets``); storage keeps
its HMAC under the server secret, who signed in and when. Every request that relies on the
sign-in reads it back here, so ending it in storage (sign-out, a password change, the user's
removal, ``deviceflow user signout``) ends it for every copy of the cookie at once.

Approving a device also needs a recent password: ``approval_max_age`` (OIDC Core §3.1.2.1
``max_age`` is the same idea: "the End-User MUST be actively re-authenticated" when the last
authentication is older). A stolen or forgotten signed-in browser then cannot approve a device
for long after the person walked away.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TypeGuard

from ...protocol.audit import AuditEventType
from ...protocol.models import PASSWORD_AMR, BrowserSession, BrowserSessionStatus, Timestamp
from .context import ServiceContext

SESSION_ID_BYTES = 32
"""256 bits: far past guessing, and the HMAC of it is what the database keeps."""

_MAX_SESSION_ID = 128
"""Longer cookie values are not ours: refused before hashing."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live sign-in, as read from storage for this request."""

    user_id: str
    auth_time: Timestamp
    may_approve: bool
    """The password was entered less than ``approval_max_age`` ago."""
    amr: tuple[str, ...] = PASSWORD_AMR
    """How the person signed in (RFC 8176): ``pwd``, or ``pwd otp mfa`` with a second factor."""


class SessionService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def _hash(self, session_id: str) -> str:
        return self.ctx.keyring.hasher.browser_session(session_id)

    async def start(self, user_id: str, replacing: str | None = None,
                    amr: tuple[str, ...] = PASSWORD_AMR) -> str:
        """Store a new sign-in after the password was checked; return its id for the cookie.

        A new id on every sign-in (never the one the browser brought: that would let a planted
        id be signed in by its victim), and the sign-in it replaces ends in the same
        transaction."""
        ctx = self.ctx
        now = ctx.clock()
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        session = BrowserSession(
            session_hash=self._hash(session_id),
            user_id=user_id,
            auth_time=now,
            expires_at=now + ctx.policy.session_lifetime,
            amr=amr,
        )
        async with ctx.store.unit_of_work() as uow:
            if _well_formed(replacing):
                await uow.browser_sessions.revoke(self._hash(replacing))
            await uow.browser_sessions.add(session)
            event = await ctx.audit.append(uow, AuditEventType.SIGN_IN_SUCCEEDED, user_id=user_id)
            await uow.commit()
        ctx.audit.emit(event)
        return session_id

    async def current(self, session_id: object) -> SignedIn | None:
        """The live sign-in a cookie names: known, not revoked, within ``session_lifetime``."""
        if not _well_formed(session_id):
            return None
        ctx = self.ctx
        async with ctx.store.unit_of_work(read_only=True) as uow:
            session = await uow.browser_sessions.get(self._hash(session_id))
        now = ctx.clock()
        if (
            session is None
            or session.status is not BrowserSessionStatus.ACTIVE
            or now >= session.expires_at
            # A lifetime shortened since the sign-in applies at once.
            or now - session.auth_time >= ctx.policy.session_lifetime
        ):
            return None
        return SignedIn(
            user_id=session.user_id,
            auth_time=session.auth_time,
            may_approve=now - session.auth_time < ctx.policy.approval_max_age,
            amr=session.amr,
        )

    async def end(self, session_id: object) -> bool:
        """Sign out: revoke this sign-in in one conditional UPDATE. True when it was live."""
        if not _well_formed(session_id):
            return False
        async with self.ctx.store.unit_of_work() as uow:
            ended = await uow.browser_sessions.revoke(self._hash(session_id))
            await uow.commit()
        return ended

    async def purge_expired(self, batch: int = 500) -> int:
        """Delete expired sign-ins (revoked or not) in one small batch; return how many."""
        ctx = self.ctx
        async with ctx.store.unit_of_work() as uow:
            n = await uow.browser_sessions.purge(ctx.clock(), batch)
            await uow.commit()
        return n


def _well_formed(session_id: object) -> TypeGuard[str]:
    return isinstance(session_id, str) and 0 < len(session_id) <= _MAX_SESSION_ID


__all__ = ["SESSION_ID_BYTES", "SessionService", "SignedIn"]

"""People signing in on the verification pages: password sign-in under its brute-force budgets."""

from __future__ import annotations

from enum import StrEnum

import anyio

from ...protocol.audit import AuditEventType
from ...protocol.models import User
from .. import identity
from ..ratelimit import ip_key
from .context import ServiceContext
from .verification import Throttled


class SignInRefused(StrEnum):
    INVALID = "invalid"


SignIn = User | Throttled | SignInRefused


class AccountService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def sign_in(self, username: str, password: str, ip_address: str) -> SignIn:
        limiter = self.ctx.limiter
        # The guesser's own budget first: a throttled IP takes nothing from the account's.
        checks = [
            limiter.check("login_per_ip", ip_key(ip_address)),
            limiter.check("login_per_account", username.casefold()),
        ]
        # Spent before the password is judged, given back only when it is right: N concurrent
        # guesses at one account get at most the account's budget through.
        verdict = await limiter.spend(checks)
        audit = self.ctx.audit
        if not verdict.allowed:
            # Once per budget and key per window, as the warning. No user named: the typed
            # name may be a mistyped password.
            if verdict.first_trip:
                await audit.record(AuditEventType.SIGN_IN_THROTTLED,
                                   detail=" ".join(verdict.tripped))
            return Throttled(verdict.retry_after)
        async with self.ctx.store.unit_of_work(read_only=True) as uow:
            user = await uow.users.get_by_username(username)
        # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
        ok = await anyio.to_thread.run_sync(
            identity.verify_password, password, user.password_hash if user else None
        )
        if not ok or user is None:
            # An unknown name is not recorded: it may be a password typed in the wrong field.
            await audit.record(AuditEventType.SIGN_IN_FAILED,
                               user_id=None if user is None else user.user_id,
                               detail="unknown account" if user is None else "wrong password")
            return SignInRefused.INVALID
        await limiter.refund(verdict)
        return user

    async def get_user(self, user_id: str) -> User | None:
        async with self.ctx.store.unit_of_work(read_only=True) as uow:
            return await uow.users.get(user_id)

"""Second factors: an authenticator app (TOTP, RFC 6238) and one-time recovery codes.

Enrolment: ``begin_totp`` stores a fresh secret, sealed under the KEK (``KeyRing.factor_box``),
as pending; ``confirm_totp`` activates it only with a current code and hands back new recovery
codes, shown once and stored only as HMAC-SHA-256 under the server secret.

Verification after the password (``verify``): one unit of the account's ``mfa_per_account``
budget is spent before the code is judged (hit-then-test, as passwords: N concurrent guesses get
at most the budget through) and given back when the code is right. A TOTP code is accepted by a
compare-and-set on the stored time step and a recovery code by a conditional UPDATE of its row,
so of two concurrent submissions of one valid code exactly one is accepted (RFC 6238 §5.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ...protocol import totp
from ...protocol.audit import AuditActor, AuditEventType
from ...storage.interface import TotpFactor
from .context import ServiceContext
from .verification import Throttled

MFA_BUDGET = "mfa_per_account"


class FactorRefused(StrEnum):
    INVALID = "invalid"
    """Wrong, expired, already used, or no factor: one answer for all."""


class FactorMethod(StrEnum):
    """How the second step was passed (both are RFC 8176 ``otp``: one-time codes)."""

    TOTP = "totp"
    RECOVERY = "recovery"


@dataclass(frozen=True, slots=True)
class FactorStatus:
    enrolled: bool
    recovery_codes_left: int


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    """What the enrolment page shows: the secret (to type) and the ``otpauth://`` URI (the QR)."""

    secret: str
    uri: str


@dataclass(frozen=True, slots=True)
class Enrolled:
    recovery_codes: tuple[str, ...]
    """In display form, shown once; storage keeps only their HMACs."""


def _secret_name(user_id: str) -> str:
    # The AES-GCM associated data: a sealed secret copied to another person's row does not open.
    return f"totp:{user_id}"


class FactorService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def status(self, user_id: str) -> FactorStatus:
        async with self.ctx.store.unit_of_work(read_only=True) as uow:
            factor = await uow.factors.get_totp(user_id)
            left = await uow.factors.recovery_codes_left(user_id)
        return FactorStatus(factor is not None and factor.active, left)

    async def has_factor(self, user_id: str) -> bool:
        return (await self.status(user_id)).enrolled

    def _open(self, factor: TotpFactor) -> str:
        box = self.ctx.keyring.factor_box
        return box.open(_secret_name(factor.user_id), factor.sealed_secret).decode("ascii")

    async def begin_totp(self, user_id: str, account: str,
                         issuer: str) -> TotpEnrolment | None:
        """A new pending secret (replacing an unconfirmed one); None when one is active."""
        secret = totp.new_secret()
        sealed = self.ctx.keyring.factor_box.seal(_secret_name(user_id), secret.encode("ascii"))
        factor = TotpFactor(user_id=user_id, sealed_secret=sealed, active=False,
                            created_at=self.ctx.clock())
        async with self.ctx.store.unit_of_work() as uow:
            if not await uow.factors.set_pending_totp(factor):
                return None
            await uow.commit()
        return TotpEnrolment(secret, totp.provisioning_uri(secret, account, issuer))

    async def pending_totp(self, user_id: str, account: str,
                           issuer: str) -> TotpEnrolment | None:
        """The enrolment in progress, to show again (a wrong confirmation code)."""
        async with self.ctx.store.unit_of_work(read_only=True) as uow:
            factor = await uow.factors.get_totp(user_id)
        if factor is None or factor.active:
            return None
        secret = self._open(factor)
        return TotpEnrolment(secret, totp.provisioning_uri(secret, account, issuer))

    async def confirm_totp(self, user_id: str, code: str) -> Enrolled | Throttled | FactorRefused:
        """Activate the pending factor with a current code, under the account's budget."""
        ctx = self.ctx
        verdict = await ctx.limiter.spend([ctx.limiter.check(MFA_BUDGET, user_id)])
        if not verdict.allowed:
            return Throttled(verdict.retry_after)
        async with ctx.store.unit_of_work(read_only=True) as uow:
            factor = await uow.factors.get_totp(user_id)
        if factor is None or factor.active:
            return FactorRefused.INVALID
        step = totp.matching_step(self._open(factor), totp.normalize_code(code), ctx.clock())
        if step is None:
            return FactorRefused.INVALID
        codes = totp.new_recovery_codes()
        hashes = [ctx.keyring.hasher.recovery_code(totp.normalize_code(c)) for c in codes]
        async with ctx.store.unit_of_work() as uow:
            if not await uow.factors.activate_totp(user_id, step, hashes):
                return FactorRefused.INVALID
            event = await ctx.audit.append(uow, AuditEventType.FACTOR_ENROLLED, user_id=user_id,
                                           actor=AuditActor.PERSON, detail="totp")
            await uow.commit()
        ctx.audit.emit(event)
        await ctx.limiter.refund(verdict)
        return Enrolled(tuple(codes))

    async def verify(self, user_id: str, code: str) -> FactorMethod | Throttled | FactorRefused:
        """The second step after the password: a current TOTP code or an unused recovery
        code, each accepted once."""
        ctx = self.ctx
        verdict = await ctx.limiter.spend([ctx.limiter.check(MFA_BUDGET, user_id)])
        if not verdict.allowed:
            if verdict.first_trip:
                await ctx.audit.record(AuditEventType.SIGN_IN_THROTTLED, user_id=user_id,
                                       detail=MFA_BUDGET)
            return Throttled(verdict.retry_after)
        typed = totp.normalize_code(code)
        method = await self._accept(user_id, typed)
        if method is None:
            await ctx.audit.record(AuditEventType.FACTOR_FAILED, user_id=user_id)
            return FactorRefused.INVALID
        await ctx.limiter.refund(verdict)
        return method

    async def _accept(self, user_id: str, typed: str) -> FactorMethod | None:
        ctx = self.ctx
        if totp.looks_like_totp(typed):
            async with ctx.store.unit_of_work(read_only=True) as uow:
                factor = await uow.factors.get_totp(user_id)
            if factor is None or not factor.active:
                return None
            step = totp.matching_step(self._open(factor), typed, ctx.clock())
            if step is None:
                return None
            async with ctx.store.unit_of_work() as uow:
                accepted = await uow.factors.use_totp_step(user_id, step)
                await uow.commit()
            return FactorMethod.TOTP if accepted else None
        if totp.looks_like_recovery(typed):
            code_hash = ctx.keyring.hasher.recovery_code(typed)
            async with ctx.store.unit_of_work() as uow:
                used = await uow.factors.use_recovery_code(user_id, code_hash, ctx.clock())
                event = None
                if used:
                    event = await ctx.audit.append(uow, AuditEventType.RECOVERY_CODE_USED,
                                                   user_id=user_id, actor=AuditActor.PERSON)
                await uow.commit()
            if event is not None:
                ctx.audit.emit(event)
            return FactorMethod.RECOVERY if used else None
        return None


__all__ = [
    "Enrolled",
    "FactorMethod",
    "FactorRefused",
    "FactorService",
    "FactorStatus",
    "TotpEnrolment",
]

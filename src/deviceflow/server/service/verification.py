"""The verification side of the service (RFC 8628 §3.3): a typed user code looked up under the
brute-force budgets of §5.1, what the consent page shows (§5.4), and the decision stored with a
compare-and-set."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ...protocol.audit import AuditEventType
from ...protocol.codes import format_user_code, normalize_user_code
from ...protocol.grants.device_code import family_id
from ...protocol.grants.refresh_token import issues_refresh_token
from ...protocol.models import (
    PASSWORD_AMR,
    BrowserSessionStatus,
    DeviceStatus,
    RequestOrigin,
    Timestamp,
)
from ...protocol.notifications import NotificationType
from ...protocol.proximity import Judgement
from ...protocol.scopes import OFFLINE_ACCESS, describe_scope
from ...protocol.verification import Decision, decide, is_actionable
from ..ratelimit import Check, ip_key
from .context import ServiceContext
from .proximity import ProximityService


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
    requested: tuple[str, ...] = ()
    """Every scope the request asks for, ``offline_access`` included (what a remembered
    consent must cover for the short confirmation, ``protocol.consent.covers``)."""
    stay_signed_in: bool = False
    """Approving gives the device a refresh token (``refresh_token.issues_refresh_token``, the
    rule the token endpoint follows too), so the page says it stays signed in."""


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


class DecisionOutcome(StrEnum):
    RECORDED = "recorded"
    GONE = "gone"
    """The code was decided elsewhere, expired, or never existed: nothing changed."""
    SIGN_IN_AGAIN = "sign_in_again"
    """An approval whose password entry is older than ``approval_max_age``, or a decision whose
    browser sign-in ended meanwhile: nothing changed."""
    REFUSED_BY_POLICY = "refused_by_policy"
    """An approval of a high-risk request under ``enforce``: the request was denied instead,
    so the device gets ``access_denied`` (RFC 8628 §3.5)."""


def _decision_detail(judgement: Judgement | None, *, refused: bool) -> str | None:
    """The audit detail of a decision: the risk it was taken under (RFC 10027 §6.1.1)."""
    if judgement is None:
        return None
    risk = judgement.assessment.detail()
    return f"refused by proximity policy: {risk}" if refused else risk


class VerificationService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.proximity = ProximityService(ctx)

    def _code_checks(self, attempt: CodeAttempt, *, signed_in: bool) -> list[Check]:
        limiter = self.ctx.limiter
        checks = [
            limiter.check("code_per_session", attempt.session_id),
            limiter.check("code_per_ip", ip_key(attempt.ip_address)),
        ]
        if signed_in and attempt.user_id is not None:
            checks.append(limiter.check("code_per_account", attempt.user_id))
        else:
            checks.append(limiter.check("code_global", "all"))
        return checks

    async def enter_user_code(self, raw: str, attempt: CodeAttempt) -> CodeEntry:
        """Look up a typed user code under the brute-force budgets (RFC 8628 §5.1: the server
        "SHOULD implement rate limiting" of user code guesses).

        Every entry spends one unit of each budget *before* it is looked up, so concurrent
        guesses can never all pass a check together; a right code gives its own units back.
        Anonymous entries spend the session, IP and global budgets. When only the global budget is
        spent, a signed-in person may still enter codes against a per-account budget: the attack
        is stopped without locking every real user out."""
        limiter = self.ctx.limiter
        signed_in = attempt.user_id is not None
        verdict = await limiter.spend(self._code_checks(attempt, signed_in=signed_in))
        if not verdict.allowed:
            if verdict.first_trip:  # once per budget and key per window, as the warning
                await self.ctx.audit.record(AuditEventType.CODE_ENTRY_THROTTLED,
                                            user_id=attempt.user_id,
                                            detail=" ".join(verdict.tripped))
            return Throttled(
                verdict.retry_after,
                sign_in_helps=not signed_in and set(verdict.tripped) == {"code_global"},
            )
        normalized = normalize_user_code(raw)
        found = await self._lookup(normalized) if normalized is not None else None
        if found is None:
            if signed_in:
                # Not a gate for a signed-in person, but their guesses still use up the
                # server-wide allowance that anonymous guessers share.
                await limiter.count([limiter.check("code_global", "all")])
            await self.ctx.audit.record(AuditEventType.CODE_ENTRY_REFUSED,
                                        user_id=attempt.user_id)
            return CodeRefused.INVALID
        await limiter.refund(verdict)
        return found

    async def _lookup(self, normalized: str) -> PendingRequest | None:
        ctx = self.ctx
        code_hash = ctx.keyring.hasher.user_code(normalized)
        async with ctx.store.unit_of_work(read_only=True) as uow:
            record = await uow.device_authorizations.get_by_user_code(code_hash)
        if record is None or not is_actionable(record, ctx.clock()):
            return None
        client = await ctx.client(record.client_id)
        if client is None:
            return None
        return PendingRequest(
            user_code=format_user_code(normalized),
            client_name=client.name,
            client_id=client.client_id,
            # offline_access is said by the "stay signed in" line, and only when it holds.
            scopes=tuple((s, describe_scope(s)) for s in record.scope if s != OFFLINE_ACCESS),
            origin=record.origin,
            created_at=record.created_at,
            expires_at=record.expires_at,
            requested=tuple(record.scope),
            stay_signed_in=issues_refresh_token(client, record.scope, ctx.policy.grant_types),
        )

    async def pending_request(self, user_code: str) -> PendingRequest | None:
        """Re-read a code this browser session already entered (no budget spent): it may have been
        decided or expired since."""
        normalized = normalize_user_code(user_code)
        return await self._lookup(normalized) if normalized is not None else None

    async def judge(self, user_code: str, user_id: str, approver_ip: str) -> Judgement | None:
        """The proximity judgement of an entered code for this account from ``approver_ip``
        (RFC 10027 §6.1.1), audited; None when the policy is off or the code is gone."""
        normalized = normalize_user_code(user_code)
        if normalized is None:
            return None
        ctx = self.ctx
        async with ctx.store.unit_of_work(read_only=True) as uow:
            record = await uow.device_authorizations.get_by_user_code(
                ctx.keyring.hasher.user_code(normalized))
        if record is None or not is_actionable(record, ctx.clock()):
            return None
        client = await ctx.client(record.client_id)
        return await self.proximity.judge(record, client, user_id, approver_ip)

    async def record_decision(
        self, user_code: str, decision: Decision, user_id: str, auth_time: Timestamp,
        *, session_id: str | None = None, judgement: Judgement | None = None,
    ) -> DecisionOutcome:
        """Store approve/deny with a compare-and-set on ``pending``: a decided code can never be
        revived, and of concurrent decisions exactly one is recorded.

        Approving needs a password entered less than ``approval_max_age`` ago (``auth_time``,
        which the approval records); denying gives nothing away and needs only a sign-in.
        With ``session_id`` (the pages' browser sign-in) the sign-in is read again inside the
        decision's own transaction: a sign-out committed before it is seen, so a copied cookie
        whose sign-in just ended cannot slip an approval in between the page's read and this
        write.

        An approval also remembers the person's consent to the client's scopes (merged in
        storage, ``ConsentRepository.grant``) in the same transaction.

        With a ``judgement`` that blocks approval (``enforce`` at high risk), Approve records
        a denial instead (RFC 10027 §6.1.1: the request cannot be approved; the device gets
        ``access_denied``) and answers ``REFUSED_BY_POLICY``."""
        ctx = self.ctx
        now = ctx.clock()
        if decision is Decision.APPROVE and now - auth_time >= ctx.policy.approval_max_age:
            return DecisionOutcome.SIGN_IN_AGAIN
        refused = decision is Decision.APPROVE and judgement is not None \
            and judgement.blocks_approval
        if refused:
            decision = Decision.DENY
        normalized = normalize_user_code(user_code)
        if normalized is None:
            return DecisionOutcome.GONE
        async with ctx.store.unit_of_work() as uow:
            record = await uow.device_authorizations.get_by_user_code(
                ctx.keyring.hasher.user_code(normalized)
            )
            if record is None or not is_actionable(record, now):
                return DecisionOutcome.GONE
            amr = PASSWORD_AMR
            if session_id is not None:
                session = await uow.browser_sessions.get(
                    ctx.keyring.hasher.browser_session(session_id)
                )
                if (
                    session is None
                    or session.status is not BrowserSessionStatus.ACTIVE
                    or session.user_id != user_id
                    or now >= session.expires_at
                ):
                    return DecisionOutcome.SIGN_IN_AGAIN
                amr = session.amr  # how this sign-in was made, as stored
            new = decide(record, decision, user_id, auth_time, now, amr)
            if not await uow.device_authorizations.transition(new, DeviceStatus.PENDING):
                return DecisionOutcome.GONE
            approved = decision is Decision.APPROVE
            if approved:
                # Remembered with the approval, in its transaction: the next request of this
                # client within these scopes gets the short confirmation (issue 11).
                await uow.consents.grant(user_id, record.client_id, record.scope, now)
            event = await ctx.audit.append(
                uow, AuditEventType.APPROVED if approved else AuditEventType.DENIED,
                user_id=user_id, client_id=record.client_id, family_id=family_id(record),
                detail=_decision_detail(judgement, refused=refused))
            # The warning "A device signed in to your account" (issue 10 §4) and the operator's
            # webhook: one outbox row in this transaction, sent later by the delivery task.
            network = record.network
            await ctx.notifier.add_in(uow, ctx.notifier.notification(
                NotificationType.APPROVED if approved else NotificationType.DENIED,
                client_id=record.client_id, user_id=user_id, family_id=family_id(record),
                origin=record.origin, occurred_at=now,
                network=None if network is None else network.described(),
                place=None if network is None else network.place,
                risk=None if judgement is None else judgement.level.label,
                reasons=() if judgement is None else judgement.assessment.sentences()))
            await uow.commit()
        ctx.audit.emit(event)
        ctx.notifier.wake()
        await ctx.poll_state.decided(new.device_code_hash, new.expires_at, now)
        return DecisionOutcome.REFUSED_BY_POLICY if refused else DecisionOutcome.RECORDED

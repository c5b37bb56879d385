"""The storage contract for second factors, on memory, SQLite and PostgreSQL: an authenticator
app's pending/active states, the time-step compare-and-set that accepts a code once (RFC 6238
§5.2), and recovery codes used once, also under real concurrency."""

from __future__ import annotations

import dataclasses

import pytest
from tests.integration.storage.test_contract import (
    a_device,
    a_session,
    a_token,
    approved,
    committed,
    concurrently,
)
from tests.support.stores import Backend

from deviceflow.protocol.models import DeviceStatus
from deviceflow.storage.interface import TotpFactor, UnitOfWork

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
STEP = int(NOW) // 30


def pending(user_id: str = "u1", secret: bytes = b"sealed-1") -> TotpFactor:
    return TotpFactor(user_id=user_id, sealed_secret=secret, active=False, created_at=NOW)


async def enrolled(backend: Backend, user_id: str = "u1") -> None:
    async with backend.store.unit_of_work() as uow:
        assert await uow.factors.set_pending_totp(pending(user_id))
        assert await uow.factors.activate_totp(user_id, STEP, [f"{user_id}-r1", f"{user_id}-r2"])
        await uow.commit()


async def test_pending_factor_is_replaced_until_activated(backend: Backend) -> None:
    async with backend.store.unit_of_work() as uow:
        assert await uow.factors.get_totp("u1") is None
        assert await uow.factors.set_pending_totp(pending(secret=b"first"))
        assert await uow.factors.set_pending_totp(pending(secret=b"second"))
        stored = await uow.factors.get_totp("u1")
        assert stored == pending(secret=b"second")
        assert await uow.factors.activate_totp("u1", STEP, ["h1", "h2", "h3"])
        assert not await uow.factors.activate_totp("u1", STEP + 1, ["h4"])  # already active
        assert not await uow.factors.set_pending_totp(pending(secret=b"third"))
        active = await uow.factors.get_totp("u1")
        assert active is not None
        assert active.active
        assert active.last_step == STEP
        assert active.sealed_secret == b"second"
        assert await uow.factors.recovery_codes_left("u1") == 3
        await uow.commit()


async def test_a_time_step_is_accepted_once_and_never_an_older_one(backend: Backend) -> None:
    await enrolled(backend)
    async with backend.store.unit_of_work() as uow:
        assert not await uow.factors.use_totp_step("u1", STEP)  # used by the confirmation
        assert await uow.factors.use_totp_step("u1", STEP + 1)
        assert not await uow.factors.use_totp_step("u1", STEP + 1)
        assert not await uow.factors.use_totp_step("u1", STEP)
        assert not await uow.factors.use_totp_step("nobody", STEP + 5)
        await uow.commit()


async def test_recovery_codes_are_used_once_and_only_by_their_owner(backend: Backend) -> None:
    await enrolled(backend, "u1")
    await enrolled(backend, "u2")
    async with backend.store.unit_of_work() as uow:
        assert not await uow.factors.use_recovery_code("u2", "u1-r1", NOW)
        assert await uow.factors.use_recovery_code("u1", "u1-r1", NOW)
        assert not await uow.factors.use_recovery_code("u1", "u1-r1", NOW)
        assert await uow.factors.recovery_codes_left("u1") == 1
        assert await uow.factors.recovery_codes_left("u2") == 2
        assert await uow.factors.remove("u1")
        assert await uow.factors.get_totp("u1") is None
        assert await uow.factors.recovery_codes_left("u1") == 0
        assert not await uow.factors.remove("u1")
        assert await uow.factors.recovery_codes_left("u2") == 2
        await uow.commit()


async def test_concurrent_uses_of_one_step_have_exactly_one_winner(backend: Backend) -> None:
    await enrolled(backend)

    async def use(uow: UnitOfWork) -> bool:
        return await uow.factors.use_totp_step("u1", STEP + 1)

    assert sorted(await concurrently(backend, use, n=8)) == [False] * 7 + [True]


async def test_concurrent_uses_of_one_recovery_code_have_exactly_one_winner(
    backend: Backend,
) -> None:
    await enrolled(backend)

    async def use(uow: UnitOfWork) -> bool:
        return await uow.factors.use_recovery_code("u1", "u1-r2", NOW)

    assert sorted(await concurrently(backend, use, n=8)) == [False] * 7 + [True]
    assert await committed(backend.store, lambda uow: uow.factors.recovery_codes_left("u1")) == 1


MFA = ("pwd", "otp", "mfa")


async def test_amr_is_kept_on_sign_ins_decisions_and_refresh_tokens(backend: Backend) -> None:
    """RFC 8176 ``amr`` travels from the sign-in to the decision and the login's tokens."""
    record = a_device()
    async with backend.store.unit_of_work() as uow:
        await uow.browser_sessions.add(a_session(amr=MFA))
        await uow.browser_sessions.add(a_session(2))
        await uow.device_authorizations.add(record)
        await uow.refresh_tokens.add(a_token(amr=MFA))
        await uow.refresh_tokens.add(a_token(2, "family-2"))
        assert await uow.device_authorizations.transition(
            dataclasses.replace(approved(record), amr=MFA), DeviceStatus.PENDING)
        await uow.commit()
    async with backend.store.unit_of_work(read_only=True) as uow:
        assert (await uow.browser_sessions.get(a_session().session_hash)).amr == MFA  # type: ignore[union-attr]
        assert (await uow.browser_sessions.get(a_session(2).session_hash)).amr == ("pwd",)  # type: ignore[union-attr]
        stored = await uow.device_authorizations.get_by_device_code(record.device_code_hash)
        assert stored is not None
        assert stored.amr == MFA
        assert (await uow.refresh_tokens.get(a_token().token_hash)).amr == MFA  # type: ignore[union-attr]
        assert (await uow.refresh_tokens.get(a_token(2).token_hash)).amr == ("pwd",)  # type: ignore[union-attr]

"""The Redis polling state on the machine's Redis: the poll-time compare-and-set, the copy of a
pending record that answers most pending polls without the database, and the decision mark
that retires that copy, also against a poll that read "pending" just before the decision."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from deviceflow.protocol.errors import AuthorizationPendingError, OAuthError
from deviceflow.protocol.models import (
    DEVICE_CODE_GRANT,
    Client,
    ClientType,
    DeviceAuthorization,
    DevicePolicy,
    DeviceStatus,
    RequestOrigin,
    TokenPolicy,
    User,
)
from deviceflow.protocol.params import FormParams
from deviceflow.protocol.verification import Decision
from deviceflow.server.keys import load_keyring
from deviceflow.server.polling import PENDING_COPY_SECONDS, PollSnapshot, RedisPollState
from deviceflow.server.ratelimit import BruteForcePolicy, Limiter
from deviceflow.server.secretbox import SecretBox
from deviceflow.server.service import DecisionOutcome, DeviceFlowService, ServicePolicy
from deviceflow.storage.memory import MemoryStore, MemoryUnitOfWork

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

NOW = 1_800_000_000.25


def a_record(**changes: Any) -> DeviceAuthorization:
    record = DeviceAuthorization(
        device_code_hash=f"dc-{uuid.uuid4().hex}", user_code_hash="uc", client_id="tv",
        scope=("openid", "profile"), status=DeviceStatus.PENDING, created_at=NOW - 10,
        expires_at=NOW + 600, interval=5, origin=RequestOrigin("2001:db8::1", "tv/1.0 (ünï)"),
    )
    return dataclasses.replace(record, **changes)


@pytest.fixture
async def state(redis_db_url: str) -> AsyncIterator[RedisPollState]:
    poll_state = RedisPollState(redis_db_url, prefix=f"test:{uuid.uuid4().hex}:")
    try:
        yield poll_state
    finally:
        await poll_state.close()


async def test_a_pending_copy_round_trips_every_field(state: RedisPollState) -> None:
    record = a_record()
    assert await state.load(record.device_code_hash, NOW) == PollSnapshot()
    polled = dataclasses.replace(record, last_polled_at=NOW)
    assert await state.save(polled, PollSnapshot(), NOW, pending=record)
    snapshot = await state.load(record.device_code_hash, NOW + 5)
    assert snapshot == PollSnapshot(last_polled_at=NOW, interval=5, pending=record)
    assert snapshot.apply(record) == polled


async def test_the_copy_is_trusted_only_while_fresh(state: RedisPollState) -> None:
    record = a_record()
    await state.save(dataclasses.replace(record, last_polled_at=NOW), PollSnapshot(), NOW,
                     pending=record)
    fresh = NOW + PENDING_COPY_SECONDS - 1
    assert (await state.load(record.device_code_hash, fresh)).pending == record
    stale = await state.load(record.device_code_hash, NOW + PENDING_COPY_SECONDS)
    assert stale.pending is None  # the database again
    assert stale.last_polled_at == NOW  # the poll state itself stays


async def test_a_decision_retires_the_copy_for_good(state: RedisPollState) -> None:
    record = a_record()
    loaded = await state.load(record.device_code_hash, NOW)  # a poll reads "pending" ...
    await state.decided(record.device_code_hash, record.expires_at, NOW)  # ... a decision ...
    # ... and the poll, finishing, must not put back a copy that says "pending".
    assert await state.save(dataclasses.replace(record, last_polled_at=NOW), loaded, NOW,
                            pending=record)
    snapshot = await state.load(record.device_code_hash, NOW + 5)
    assert snapshot.pending is None
    assert snapshot.last_polled_at == NOW


async def test_save_is_a_compare_and_set_on_the_last_poll(state: RedisPollState) -> None:
    record = a_record()
    loaded = await state.load(record.device_code_hash, NOW)
    assert await state.save(dataclasses.replace(record, last_polled_at=NOW), loaded, NOW)
    assert not await state.save(dataclasses.replace(record, last_polled_at=NOW + 0.1), loaded,
                                NOW)


class CountingStore(MemoryStore):
    """The memory store, counting the reads of device authorizations by device code."""

    reads = 0

    def unit_of_work(self, *, read_only: bool = False) -> MemoryUnitOfWork:
        uow = super().unit_of_work(read_only=read_only)
        read = uow.device_authorizations.get_by_device_code

        async def counted(device_code_hash: str) -> DeviceAuthorization | None:
            self.reads += 1
            return await read(device_code_hash)

        uow.device_authorizations.get_by_device_code = counted  # type: ignore[method-assign]
        return uow


async def test_pending_polls_mostly_skip_the_database_and_approval_is_seen_at_once(
    redis_db_url: str,
) -> None:
    store, now = CountingStore(), [NOW]
    poll_state = RedisPollState(redis_db_url, prefix=f"test:{uuid.uuid4().hex}:")
    service = DeviceFlowService(
        store, await load_keyring(store, SecretBox.generate()),
        ServicePolicy(device=DevicePolicy(verification_uri="https://as.example/device"),
                      token=TokenPolicy(issuer="https://as.example"),
                      grant_types=(DEVICE_CODE_GRANT,)),
        Limiter(BruteForcePolicy()), clock=lambda: now[0], poll_state=poll_state)
    try:
        async with store.unit_of_work() as uow:
            await uow.clients.add(Client("tv", "TV", ClientType.PUBLIC,
                                         frozenset({DEVICE_CODE_GRANT}), frozenset({"openid"})))
            await uow.users.add(User("sub-ada", "ada", "Ada", "$argon2id$unused"))
            await uow.commit()
        codes = (await service.tokens.device_authorization(
            FormParams({"client_id": "tv", "scope": "openid"}), None,
            RequestOrigin("127.0.0.1", "t"))).body()
        form = FormParams({"client_id": "tv", "grant_type": DEVICE_CODE_GRANT,
                           "device_code": str(codes["device_code"])})

        async def poll() -> object:
            before = store.reads
            answer = await service.tokens.token(form, None)
            read = store.reads - before
            return (type(answer) if isinstance(answer, OAuthError) else "tokens", read)

        store.reads = 0
        answers = []
        for _ in range(7):  # every 5 s for 35 s: the copy is refreshed once it is 30 s old
            answers.append(await poll())
            now[0] += 5
            await anyio.sleep(0)
        pending = AuthorizationPendingError
        assert answers == [(pending, 1), *[(pending, 0)] * 5, (pending, 1)]

        outcome = await service.verification.record_decision(
            str(codes["user_code"]), Decision.APPROVE,
                                                "sub-ada", now[0])
        assert outcome is DecisionOutcome.RECORDED
        assert await poll() == ("tokens", 1)  # the next poll, not 30 s later
    finally:
        await poll_state.close()

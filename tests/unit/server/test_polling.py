"""The in-process polling state (used without Redis): a compare-and-set on the last poll time,
bounded by the live codes."""

from __future__ import annotations

import dataclasses

import pytest

from deviceflow.protocol.models import DeviceAuthorization, DeviceStatus, RequestOrigin
from deviceflow.server.polling import MemoryPollState, PollSnapshot

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


def record(n: int = 1, expires_at: float = NOW + 600) -> DeviceAuthorization:
    return DeviceAuthorization(
        device_code_hash=f"dc-{n}", user_code_hash=f"uc-{n}", client_id="tv", scope=("openid",),
        status=DeviceStatus.PENDING, created_at=NOW, expires_at=expires_at, interval=5,
        origin=RequestOrigin("127.0.0.1", "test"),
    )


async def test_unknown_codes_load_as_never_polled() -> None:
    state = MemoryPollState()
    snapshot = await state.load("dc-1", NOW)
    assert snapshot == PollSnapshot()
    assert snapshot.apply(record()) == record()


async def test_save_is_a_compare_and_set_on_the_last_poll() -> None:
    state = MemoryPollState()
    loaded = await state.load("dc-1", NOW)
    first = dataclasses.replace(record(), last_polled_at=NOW)
    assert await state.save(first, loaded, NOW) is True
    # A second poll that read the same (empty) state lost the race: it came too fast.
    late = dataclasses.replace(record(), last_polled_at=NOW + 0.1)
    assert await state.save(late, loaded, NOW) is False
    again = await state.load("dc-1", NOW)
    assert again.apply(record()).last_polled_at == NOW
    grown = dataclasses.replace(record(), last_polled_at=NOW + 1, interval=10)
    assert await state.save(grown, again, NOW) is True
    assert (await state.load("dc-1", NOW)).apply(record()).interval == 10


async def test_memory_keeps_no_copy_of_pending_records() -> None:
    """Without Redis, another worker process may record the decision: a copy here would not
    hear of it, so every poll reads the database."""
    state = MemoryPollState()
    first = dataclasses.replace(record(), last_polled_at=NOW)
    assert await state.save(first, PollSnapshot(), NOW, pending=record()) is True
    assert (await state.load("dc-1", NOW)).pending is None


async def test_expired_entries_are_swept() -> None:
    state = MemoryPollState()
    for n in range(1024):
        short = record(n, expires_at=NOW + 1)
        await state.save(dataclasses.replace(short, last_polled_at=NOW), PollSnapshot(), NOW)
    assert len(state) == 1024  # not yet expired at the first sweep
    for n in range(1024, 2048):  # two seconds later
        live = record(n)
        await state.save(dataclasses.replace(live, last_polled_at=NOW + 2), PollSnapshot(),
                         NOW + 2)
    assert len(state) == 1024  # only the live codes remain

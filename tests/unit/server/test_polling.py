"""The in-process polling state (used without Redis): a compare-and-set on the last poll time,
bounded by the live codes."""

from __future__ import annotations

import dataclasses

import pytest

from deviceflow.protocol.models import DeviceAuthorization, DeviceStatus, RequestOrigin
from deviceflow.server.polling import MemoryPollState

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


def record(n: int = 1, expires_at: float = NOW + 600) -> DeviceAuthorization:
    return DeviceAuthorization(
        device_code_hash=f"dc-{n}", user_code_hash=f"uc-{n}", client_id="tv", scope=("openid",),
        status=DeviceStatus.PENDING, created_at=NOW, expires_at=expires_at, interval=5,
        origin=RequestOrigin("127.0.0.1", "test"),
    )


async def test_unknown_codes_load_as_stored() -> None:
    state = MemoryPollState(lambda: NOW)
    assert await state.load(record()) == record()


async def test_save_is_a_compare_and_set_on_the_last_poll() -> None:
    state = MemoryPollState(lambda: NOW)
    loaded = await state.load(record())
    first = dataclasses.replace(loaded, last_polled_at=NOW)
    assert await state.save(first, loaded) is True
    # A second poll that read the same (empty) state lost the race: it came too fast.
    assert await state.save(dataclasses.replace(loaded, last_polled_at=NOW + 0.1), loaded) is False
    again = await state.load(record())
    assert again.last_polled_at == NOW
    grown = dataclasses.replace(again, last_polled_at=NOW + 1, interval=10)
    assert await state.save(grown, again) is True
    assert (await state.load(record())).interval == 10


async def test_expired_entries_are_swept() -> None:
    clock = [NOW]
    state = MemoryPollState(lambda: clock[0])
    for n in range(1024):
        short = record(n, expires_at=NOW + 1)
        await state.save(dataclasses.replace(short, last_polled_at=NOW), short)
    assert len(state) == 1024  # not yet expired at the first sweep
    clock[0] = NOW + 2
    for n in range(1024, 2048):
        live = record(n)
        await state.save(dataclasses.replace(live, last_polled_at=NOW + 2), live)
    assert len(state) == 1024  # only the live codes remain

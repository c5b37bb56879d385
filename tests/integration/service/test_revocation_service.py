"""``RevocationService`` and the device list through the service on every store: a redemption
records where the device asked from, ``revoke_family`` / ``revoke_user`` sign devices out (the
next refresh is ``invalid_grant``), counting only what they changed, and the purge drops the
records of families past their absolute end."""

from __future__ import annotations

import asyncio

import pytest
from tests.integration.service.test_refresh_rotation import (
    ORIGIN,
    World,
    backend,  # noqa: F401 - fixture
    refused,
    world,  # noqa: F401 - fixture
)

from deviceflow.protocol.models import IssuedTokens

pytestmark = pytest.mark.anyio


async def test_a_redemption_records_the_device_and_revoke_family_signs_it_out(
    world: World,  # noqa: F811
) -> None:
    approved_at = world.clock()
    issued = await world.login()
    world.clock.now += 30
    refreshed = await world.works(issued.refresh_token)
    [device] = await world.service.devices.list("sub-alice")
    assert (device.client_name, device.ip_address, device.user_agent) == (
        "TV", ORIGIN.ip_address, ORIGIN.user_agent)
    assert device.approved_at == approved_at
    assert device.last_used_at == approved_at + 30
    assert device.scopes == ("Confirm who you are (your account identifier)",)

    revocation = world.service.revocation
    assert await revocation.revoke_family(device.family_id, actor="person") >= 1
    assert await revocation.revoke_family(device.family_id, actor="person") == 0
    assert refused(await world.refresh(refreshed))
    assert await world.service.devices.list("sub-alice") == []


async def test_revoke_user_signs_out_every_device_once_under_concurrency(
    world: World,  # noqa: F811
) -> None:
    logins = [await world.login() for _ in range(3)]
    counts = await asyncio.gather(*(world.service.revocation.revoke_user(
        "sub-alice", actor="person") for _ in range(5)))
    assert sum(counts) == 3
    for issued in logins:
        assert refused(await world.refresh(issued.refresh_token))
    assert await world.service.revocation.revoke_user("nobody", actor="person") == 0


async def test_the_purge_drops_records_past_the_family_end(world: World) -> None:  # noqa: F811
    issued = await world.login()
    assert isinstance(issued, IssuedTokens)
    world.clock.now += 91 * 86400  # past the 90-day absolute lifetime
    assert await world.service.tokens.purge_expired() >= 2  # the token and its record
    async with world.backend.store.unit_of_work() as uow:
        assert await uow.grants.purge(world.clock(), 10) == 0  # the record went with it
        await uow.commit()

"""The tally of codes per device network (RFC 10027 §6.1.11, read by the proximity judgement)
is counted by atomic hits in the limiter's storage: racing device authorizations from one
network are all counted, in process and on Redis (where every worker shares it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from tests.support.servers import claimed_redis_db, require_redis

from deviceflow.server.ratelimit import BruteForcePolicy, Limiter

pytestmark = pytest.mark.anyio
RACERS = 60


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limiters(request: pytest.FixtureRequest) -> AsyncIterator[list[Limiter]]:
    """Three limiters sharing one storage (three workers), or one in process."""
    if request.param == "memory":
        limiter = Limiter(BruteForcePolicy())
        yield [limiter]
        await limiter.close()
        return
    require_redis()
    with claimed_redis_db() as url:
        made = [Limiter(BruteForcePolicy(), "async+" + url) for _ in range(3)]
        yield made
        for limiter in made:
            await limiter.close()


async def test_racing_codes_from_one_network_are_all_counted(limiters: list[Limiter]) -> None:
    barrier = asyncio.Barrier(RACERS)

    async def one(n: int) -> None:
        limiter = limiters[n % len(limiters)]
        await barrier.wait()
        await limiter.count([limiter.network_codes_check("AS16509", 600)])

    await asyncio.gather(*(one(n) for n in range(RACERS)))
    first = limiters[0]
    assert await first.tally(first.network_codes_check("AS16509", 600)) == RACERS
    assert await first.tally(first.network_codes_check("AS3209", 600)) == 0  # its own key

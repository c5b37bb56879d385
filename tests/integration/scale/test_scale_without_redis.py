"""Without ``--redis`` the brute-force counters live in each process: two processes on one
database count wrong codes separately, so a "3/hour" global budget lets 3 through *per process*.
This is why the docs say in-process limits are for a single process only.

The polling state (``slow_down``) is in process too without Redis, so a pending poll never
writes to the database; what the database carries still holds across processes: single use, by
the storage compare-and-set on redemption.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.support.servers import (
    PASSWORD,
    ServerProcess,
    add_client,
    add_users,
    approve_via_http,
    authorize_device,
    browser,
    csrf_of,
    poll_form,
    serve_subprocesses,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BUDGET = 3
WRONG = ("BCDF-GHJK", "LMNP-QRST", "VWXZ-BCDF", "GHJK-LMNP", "QRST-VWXZ", "ZXWV-TSRQ",
         "PNML-KJHG", "FDCB-ZXWV")


@pytest.fixture(scope="module")
def pair(pg_url: str, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    add_users(pg_url, ["alice"])
    add_client(pg_url, "tv")
    with serve_subprocesses(
        ["A", "B"], pg_url, tmp_path_factory.mktemp("no-redis-logs"), redis_url=None,
        interval=1, limits={"limit_code_global": f"{BUDGET}/hour"},
    ) as (a, b):
        yield a, b


def enter_wrong_code(base: str, code: str) -> httpx.Response:
    with browser(base) as page:  # a fresh session each time: the global budget is what counts
        form = page.get("/device")
        return page.post("/device", data={"csrf_token": csrf_of(form.text), "user_code": code})


def test_limits_are_per_process_without_redis(
    pair: tuple[ServerProcess, ServerProcess]
) -> None:
    a, b = pair
    codes = iter(WRONG)
    for _ in range(BUDGET):
        assert enter_wrong_code(a.base_url, next(codes)).status_code == 400
    assert enter_wrong_code(a.base_url, next(codes)).status_code == 429  # A's budget is spent
    # B never heard of A's wrong codes: it has a whole budget of its own.
    for _ in range(BUDGET):
        assert enter_wrong_code(b.base_url, next(codes)).status_code == 400
    throttled = enter_wrong_code(b.base_url, next(codes))
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"]
    # So 2 × 3 wrong codes got through a "3/hour" global budget.


def test_polling_state_is_per_process_but_single_use_is_shared(
    pair: tuple[ServerProcess, ServerProcess]
) -> None:
    """Without Redis, slow_down state lives in each process (docs: one process only), while
    single use still holds across processes through the database's compare-and-set."""
    a, b = pair
    started = authorize_device(a.base_url, "tv")
    with httpx.Client(timeout=30) as device:
        def poll(server: ServerProcess) -> httpx.Response:
            return device.post(server.base_url + "/token",
                               data=poll_form("tv", started["device_code"]))

        assert poll(a).json()["error"] == "authorization_pending"
        assert poll(b).json()["error"] == "authorization_pending"  # B has not seen A's poll
        assert poll(a).json()["error"] == "slow_down"  # A has
        # Signed in first: anonymous code entry may be throttled by the test above.
        assert approve_via_http(b.base_url, started["user_code"], "alice", PASSWORD,
                                sign_in_first=True)
        assert poll(b).status_code == 200
        assert poll(a).json()["error"] == "invalid_grant"

"""Two ``deviceflow serve`` processes, A and B, on different ports sharing one PostgreSQL database
and one Redis database, as two hosts behind a load balancer would.

- Single use holds across processes: of 50 concurrent polls of one approved code spread over both,
  exactly one gets tokens; of 20 browser sessions pressing Approve on one code at once, on both,
  exactly one decision is recorded.
- A flow's steps may land on either process: device authorization on A, the pages alternating
  between A and B in one browser, polls alternating, refresh on the other.
- Limits and polling state are shared through Redis: ``slow_down`` holds across both, and the
  global wrong-code budget (6/hour here) is spent by wrong codes on either.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
import redis
from tests.support.servers import (
    PASSWORD,
    SCOPE,
    DecisionResult,
    ServerProcess,
    add_client,
    add_users,
    approve_via_http,
    authorize_device,
    browser,
    csrf_of,
    open_consent,
    poll_form,
    scalar,
    serve_subprocesses,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

GLOBAL_BUDGET = 6
RACERS = 20
POLLERS = 50
WRONG_CODES = ("BCDF-GHJK", "LMNP-QRST", "VWXZ-BCDF", "GHJK-LMNP", "QRST-VWXZ", "ZXWV-TSRQ",
               "PNML-KJHG", "FDCB-ZXWV")


@dataclass
class Pair:
    a: ServerProcess
    b: ServerProcess
    db_url: str
    redis_url: str
    users: dict[str, str]

    def logs(self) -> str:
        return f"--- A ---\n{self.a.logs()[-3000:]}\n--- B ---\n{self.b.logs()[-3000:]}"


@pytest.fixture(scope="module")
def pair(redis_db_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Pair]:
    users = add_users(pg_url, ["alice", "bob", "carol", *(f"racer{i}" for i in range(RACERS))])
    add_client(pg_url, "tv")
    logs: Path = tmp_path_factory.mktemp("pair-logs")
    with serve_subprocesses(
        ["A", "B"], pg_url, logs, redis_url=redis_db_url, interval=1,
        limits={"limit_code_global": f"{GLOBAL_BUDGET}/hour"},
    ) as (a, b):
        yield Pair(a, b, pg_url, redis_db_url, users)
        # No 5xx anywhere in the module, on either process.
        for server in (a, b):
            assert not re.search(r"deviceflow\.access: \S+ \S+ 5\d\d", server.logs()), \
                server.logs()[-5000:]


def error_of(response: httpx.Response) -> str:
    assert response.status_code == 400, (response.status_code, response.text)
    error: str = response.json()["error"]
    return error


# --- single use ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_fifty_concurrent_polls_across_processes_redeem_once(pair: Pair) -> None:
    started = authorize_device(pair.a.base_url, "tv", SCOPE)
    assert approve_via_http(pair.b.base_url, started["user_code"], "alice", PASSWORD)
    form = poll_form("tv", started["device_code"])
    go = anyio.Event()
    answers: list[httpx.Response] = []
    limits = httpx.Limits(max_connections=POLLERS, max_keepalive_connections=POLLERS)
    async with (
        httpx.AsyncClient(base_url=pair.a.base_url, limits=limits, timeout=60) as on_a,
        httpx.AsyncClient(base_url=pair.b.base_url, limits=limits, timeout=60) as on_b,
    ):
        async def one(client: httpx.AsyncClient) -> None:
            await go.wait()
            answers.append(await client.post("/token", data=form))

        async with anyio.create_task_group() as group:
            for i in range(POLLERS):
                group.start_soon(one, on_a if i % 2 == 0 else on_b)
            await anyio.sleep(0.2)  # every task waiting at the start line
            go.set()

    statuses = sorted(r.status_code for r in answers)
    assert len(answers) == POLLERS
    assert statuses.count(200) == 1, (statuses, pair.logs())
    assert statuses.count(400) == POLLERS - 1, statuses
    assert {r.json()["error"] for r in answers if r.status_code == 400} == {"invalid_grant"}
    # Both processes took part.
    assert {str(r.url.port) for r in answers} == {str(pair.a.port), str(pair.b.port)}

    user = pair.users["alice"]
    assert scalar(pair.db_url, "SELECT status FROM device_authorizations WHERE user_id = :u",
                  {"u": user}) == "redeemed"
    assert scalar(pair.db_url, "SELECT count(*) FROM refresh_tokens WHERE user_id = :u",
                  {"u": user}) == 1


def test_twenty_concurrent_approvals_across_processes_record_once(pair: Pair) -> None:
    """20 browser sessions (10 on each process) enter the same code, sign in as 20 different
    people and reach the consent page; then all press Approve at once."""
    started = authorize_device(pair.a.base_url, "tv", SCOPE)
    user_code = started["user_code"]
    at_the_line = threading.Barrier(RACERS, timeout=60)

    def race(i: int) -> tuple[str, DecisionResult]:
        base = pair.a.base_url if i % 2 == 0 else pair.b.base_url
        with browser(base) as client:
            # Signed in first, so each enters the code on a budget of their own: 20 anonymous
            # entries at once would each hold a unit of the 6/hour global budget while looked up
            # (a right code gives it back only after), and most would be throttled.
            consent = open_consent(client, user_code, f"racer{i}", PASSWORD, sign_in_first=True)
            at_the_line.wait()
            return f"racer{i}", consent.decide("approve")

    with ThreadPoolExecutor(RACERS) as pool:
        results = list(pool.map(race, range(RACERS)))

    winners = [name for name, result in results if result.recorded]
    assert len(winners) == 1, [(n, r.status) for n, r in results]
    losers = [result for _, result in results if not result.recorded]
    # The others are told the code no longer works, on the code page (never a 5xx).
    assert all(r.status == 400 and 'role="alert"' in r.text for r in losers), \
        sorted({r.status for r in losers})

    winner_id = pair.users[winners[0]]
    row = scalar(pair.db_url, "SELECT status || ' ' || user_id FROM device_authorizations "
                 "WHERE device_code_hash IN (SELECT device_code_hash FROM device_authorizations "
                 "WHERE user_id IS NOT NULL AND status = 'approved')")
    assert row == f"approved {winner_id}"
    with httpx.Client(base_url=pair.b.base_url, timeout=30) as http:
        tokens = http.post("/token", data=poll_form("tv", started["device_code"]))
        assert tokens.status_code == 200, tokens.text
        info = http.get("/userinfo",
                        headers={"Authorization": f"Bearer {tokens.json()['access_token']}"})
    assert info.json()["sub"] == winner_id


# --- one flow, two processes ---------------------------------------------------------------------


def test_flow_alternating_between_processes(pair: Pair) -> None:
    a, b = pair.a.base_url, pair.b.base_url
    with httpx.Client(timeout=30) as device:
        started = authorize_device(a, "tv", SCOPE)
        device_code = started["device_code"]

        def poll(base: str) -> httpx.Response:
            return device.post(base + "/token", data=poll_form("tv", device_code))

        assert error_of(poll(b)) == "authorization_pending"
        time.sleep(1.1)
        assert error_of(poll(a)) == "authorization_pending"

        # One browser whose requests a load balancer spreads over both processes: the session
        # cookie (signed with the secret both share through the database) works on either.
        with httpx.Client(follow_redirects=True, timeout=30) as person:
            form = person.get(a + "/device", params={"user_code": started["user_code"]})
            signin = person.post(b + "/device", data={
                "csrf_token": csrf_of(form.text), "user_code": started["user_code"],
            })
            assert signin.status_code == 200, signin.text
            assert signin.url.path == "/device/signin"
            consent = person.post(a + "/device/signin", data={
                "csrf_token": csrf_of(signin.text), "username": "bob", "password": PASSWORD,
            })
            assert consent.status_code == 200
            assert consent.url.path == "/device/consent"
            assert started["user_code"] in consent.text
            done = person.post(b + "/device/consent", data={
                "csrf_token": csrf_of(consent.text), "user_code": started["user_code"],
                "decision": "approve",
            })
            assert done.status_code == 200, done.text
            assert "Device connected" in done.text

        time.sleep(1.1)
        issued = poll(b)
        assert issued.status_code == 200, issued.text

        def refresh(base: str, token: str) -> httpx.Response:
            return device.post(base + "/token", data={
                "grant_type": "refresh_token", "client_id": "tv", "refresh_token": token})

        refreshed = refresh(a, issued.json()["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        bearer = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
        info = device.get(a + "/userinfo", headers=bearer)
        assert info.status_code == 200, (info.status_code, info.text)
        assert info.json()["sub"] == pair.users["bob"]
        # Each process here is its own issuer (its own port), and an access token names the one
        # that minted it (`iss`): the other refuses it. A real fleet gives every worker the one
        # public issuer URL, and then any worker accepts it.
        assert device.get(b + "/userinfo", headers=bearer).status_code == 401
        # The redeemed code polled again on process B: refused, and the tokens issued from it
        # are revoked (RFC 6749 §4.1.2): the rotated refresh token (seen by A at once, through
        # the database) and the access token A minted (through the denylist, which A reads
        # within a second).
        assert error_of(poll(b)) == "invalid_grant"
        assert error_of(refresh(a, refreshed.json()["refresh_token"])) == "invalid_grant"
        time.sleep(1.3)
        assert device.get(a + "/userinfo", headers=bearer).status_code == 401


def test_slow_down_holds_across_processes(pair: Pair) -> None:
    a, b = pair.a.base_url, pair.b.base_url
    device_code = authorize_device(a, "tv")["device_code"]
    with httpx.Client(timeout=30) as device:
        def poll(base: str) -> httpx.Response:
            return device.post(base + "/token", data=poll_form("tv", device_code))

        assert error_of(poll(a)) == "authorization_pending"
        assert error_of(poll(b)) == "slow_down"  # B knows A was just polled
        # The interval grew from 1 to 6 s for later polls on either process.
        time.sleep(1.2)
        assert error_of(poll(a)) == "slow_down"
        time.sleep(1.2)
        assert error_of(poll(b)) == "slow_down"

    # The shared state is in Redis (the database row is not written per poll), and it expires
    # by itself: Redis needs no purge.
    client = redis.Redis.from_url(pair.redis_url)
    try:
        keys = client.keys("deviceflow:poll:*")
        intervals = [int(client.hget(k, "interval") or 0) for k in keys]
        ttls = [client.pttl(k) for k in keys]
    finally:
        client.close()
    assert intervals
    assert max(intervals) >= 11
    assert all(ttl > 0 for ttl in ttls), ttls


# --- the global wrong-code budget ----------------------------------------------------------------


@pytest.fixture
def fresh_limits(pair: Pair) -> Iterator[None]:
    """Empty the shared counters before and after: the spent global budget would otherwise
    throttle anonymous code entry for every later test of the module."""

    def clear() -> None:
        client = redis.Redis.from_url(pair.redis_url)
        try:
            for key in client.scan_iter("LIMITS*"):
                client.delete(key)
        finally:
            client.close()

    clear()
    yield
    clear()


def enter_wrong_code(base: str, code: str) -> httpx.Response:
    """A fresh browser session (so the per-session budget is not what trips) enters ``code``."""
    with browser(base) as page:
        form = page.get("/device")
        return page.post("/device", data={"csrf_token": csrf_of(form.text), "user_code": code})


@pytest.mark.usefixtures("fresh_limits")
def test_global_wrong_code_budget_is_shared(pair: Pair) -> None:
    codes = iter(WRONG_CODES)
    for base in (pair.a.base_url,) * 3 + (pair.b.base_url,) * 3:
        refused = enter_wrong_code(base, next(codes))
        assert refused.status_code == 400, refused.text
        assert 'role="alert"' in refused.text
    for base in (pair.a.base_url, pair.b.base_url):
        throttled = enter_wrong_code(base, next(codes))
        assert throttled.status_code == 429, throttled.text
        retry_after = int(throttled.headers["retry-after"])
        assert 0 < retry_after <= 3600
        # Only the anonymous global budget is spent: the page says signing in helps.
        assert "/device/signin" in throttled.text

    # The counters expire by themselves (old rate-limit keys need no purge).
    client = redis.Redis.from_url(pair.redis_url)
    try:
        ttls = {key: client.ttl(key) for key in client.scan_iter("LIMITS*")}
    finally:
        client.close()
    assert ttls
    assert all(ttl > 0 for ttl in ttls.values()), ttls

    # A real code is throttled too while the budget is spent (the limit is on entering codes),
    # but a signed-in person goes on with a budget of their own.
    started = authorize_device(pair.a.base_url, "tv")
    with browser(pair.b.base_url) as page:
        form = page.get("/device")
        anonymous = page.post("/device", data={"csrf_token": csrf_of(form.text),
                                               "user_code": started["user_code"]})
        assert anonymous.status_code == 429
        consent = open_consent(page, started["user_code"], "carol", PASSWORD,
                               sign_in_first=True)
        assert consent.decide("approve").recorded

"""Limits that hold when requests race across hosts: two ``deviceflow serve`` processes share one
PostgreSQL database and one Redis, and N = 3 × the limit concurrent attempts spread over both
let exactly the limit through, for every budget (RFC 8628 §5.1, §3.1).

The servers trust 127.0.0.1 as a proxy, so each request names its client IP in
``X-Forwarded-For``: one test can be one IP or a botnet. The counters are emptied between tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
import redis
from tests.support.servers import (
    PASSWORD,
    ServerProcess,
    add_client,
    add_users,
    csrf_of,
    serve_subprocesses,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.anyio]

LIMIT = 4
N = 3 * LIMIT
GLOBAL = 2 * LIMIT
"""The global code budget and the live-code cap are larger than the per-key ones, so a test of
one budget meets that budget alone."""
LIMITS = {
    "limit_code_per_session": f"{LIMIT}/hour",
    "limit_code_per_ip": f"{LIMIT}/hour",
    "limit_code_global": f"{GLOBAL}/hour",
    "limit_login_per_account": f"{LIMIT}/hour",
    "limit_login_per_ip": f"{LIMIT}/hour",
    "limit_device_authorization_per_ip": f"{LIMIT}/minute",
    "limit_device_codes_per_client": str(GLOBAL),
}


@dataclass
class Pair:
    a: ServerProcess
    b: ServerProcess
    redis_url: str

    def base(self, n: int) -> str:
        """Alternate the processes, as a load balancer would."""
        return (self.a if n % 2 == 0 else self.b).base_url

    def logs(self) -> str:
        return f"--- A ---\n{self.a.logs()[-3000:]}\n--- B ---\n{self.b.logs()[-3000:]}"


@pytest.fixture(scope="module")
def pair(redis_db_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Pair]:
    add_users(pg_url, ["alice"])
    add_client(pg_url, "tv")
    logs: Path = tmp_path_factory.mktemp("race-logs")
    with serve_subprocesses(
        ["A", "B"], pg_url, logs, redis_url=redis_db_url, limits=LIMITS,
        extra=["--forwarded-allow-ips", "127.0.0.1"],
    ) as (a, b):
        yield Pair(a, b, redis_db_url)


@pytest.fixture(autouse=True)
def fresh_limits(pair: Pair) -> Iterator[None]:
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


def wrong_code(n: int) -> str:
    letters = "BCDFGHJKLMNPQRSTVWXZ"
    return "".join(letters[(n * 7 + i * 3) % 20] for i in range(8))


def botnet(n: int) -> str:
    return f"198.51.{n // 200}.{n % 200 + 1}"


@dataclass(frozen=True)
class Attempt:
    """One request to race: where, what, from which IP, with which session cookie."""

    base: str
    path: str
    form: dict[str, str]
    ip: str
    cookie: str | None = None


async def race(attempts: list[Attempt]) -> list[int]:
    """Send every attempt at once (each on its own connection) and return the statuses."""
    statuses: list[int] = []
    go = anyio.Event()
    limits = httpx.Limits(max_connections=len(attempts))
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def one(attempt: Attempt) -> None:
            headers = {"X-Forwarded-For": attempt.ip}
            if attempt.cookie is not None:
                headers["Cookie"] = attempt.cookie
            await go.wait()
            response = await http.post(attempt.base + attempt.path, data=attempt.form,
                                       headers=headers)
            statuses.append(response.status_code)

        async with anyio.create_task_group() as group:
            for attempt in attempts:
                group.start_soon(one, attempt)
            await anyio.sleep(0.2)  # every task at the start line
            go.set()
    return statuses


def counted(statuses: list[int]) -> dict[int, int]:
    return {s: statuses.count(s) for s in sorted(set(statuses))}


async def code_forms(pair: Pair, ips: list[str]) -> list[Attempt]:
    """A fresh browser session per IP opens the code form; its wrong code is ready to post."""
    attempts = []
    async with httpx.AsyncClient(timeout=30) as http:
        for n, ip in enumerate(ips):
            page = await http.get(pair.base(n) + "/device", headers={"X-Forwarded-For": ip})
            cookie = f"deviceflow_session={page.cookies['deviceflow_session']}"
            http.cookies.clear()
            attempts.append(Attempt(pair.base(n), "/device", {
                "csrf_token": csrf_of(page.text), "user_code": wrong_code(n)}, ip, cookie))
    return attempts


# --- code entry --------------------------------------------------------------------------------


async def test_wrong_codes_in_one_session_across_processes(pair: Pair) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        page = await http.get(pair.a.base_url + "/device", headers={"X-Forwarded-For": botnet(0)})
        # One entry first: the session's budget key is made on first use.
        first = await http.post(pair.a.base_url + "/device", headers={"X-Forwarded-For": botnet(0)},
                                data={"csrf_token": csrf_of(page.text), "user_code": wrong_code(N)})
        assert first.status_code == 400, first.text
        cookie = f"deviceflow_session={http.cookies['deviceflow_session']}"
    statuses = await race([
        Attempt(pair.base(n), "/device", {"csrf_token": csrf_of(page.text),
                                          "user_code": wrong_code(n)}, botnet(n + 1), cookie)
        for n in range(N)
    ])
    assert counted(statuses) == {400: LIMIT - 1, 429: N - LIMIT + 1}, pair.logs()


async def test_wrong_codes_from_one_ip_across_processes(pair: Pair) -> None:
    statuses = await race(await code_forms(pair, ["203.0.113.7"] * N))
    assert counted(statuses) == {400: LIMIT, 429: N - LIMIT}, pair.logs()


async def test_wrong_codes_from_a_botnet_meet_the_global_budget(pair: Pair) -> None:
    statuses = await race(await code_forms(pair, [botnet(n) for n in range(3 * GLOBAL)]))
    assert counted(statuses) == {400: GLOBAL, 429: 2 * GLOBAL}, pair.logs()


# --- sign-in -----------------------------------------------------------------------------------


async def signin_forms(pair: Pair, who: list[tuple[str, str, str]]) -> list[Attempt]:
    """(ip, username, password) → a fresh session's sign-in form, ready to post."""
    attempts = []
    async with httpx.AsyncClient(timeout=30) as http:
        for n, (ip, username, password) in enumerate(who):
            page = await http.get(pair.base(n) + "/device/signin",
                                  headers={"X-Forwarded-For": ip})
            cookie = f"deviceflow_session={page.cookies['deviceflow_session']}"
            http.cookies.clear()
            attempts.append(Attempt(pair.base(n), "/device/signin", {
                "csrf_token": csrf_of(page.text), "username": username, "password": password,
            }, ip, cookie))
    return attempts


async def test_wrong_passwords_at_one_account_across_processes(pair: Pair) -> None:
    attempts = await signin_forms(pair, [(botnet(n), "alice", f"guess {n}") for n in range(N)])
    statuses = await race(attempts)
    assert counted(statuses) == {400: LIMIT, 429: N - LIMIT}, pair.logs()
    # Then the right password: not judged while the account's budget is spent.
    right = await signin_forms(pair, [(botnet(N + 1), "alice", PASSWORD)])
    assert await race(right) == [429]


async def test_wrong_passwords_from_one_ip_across_processes(pair: Pair) -> None:
    attempts = await signin_forms(pair, [("203.0.113.9", f"user{n}", "password1")
                                         for n in range(N)])
    statuses = await race(attempts)
    assert counted(statuses) == {400: LIMIT, 429: N - LIMIT}, pair.logs()


# --- device authorization ----------------------------------------------------------------------


async def test_device_authorizations_from_one_ip_across_processes(pair: Pair) -> None:
    statuses = await race([Attempt(pair.base(n), "/device_authorization", {"client_id": "tv"},
                                   "192.0.2.10") for n in range(N)])
    assert counted(statuses) == {200: LIMIT, 429: N - LIMIT}, pair.logs()


async def test_device_authorizations_meet_the_live_code_cap_across_processes(pair: Pair) -> None:
    statuses = await race([Attempt(pair.base(n), "/device_authorization", {"client_id": "tv"},
                                   botnet(n)) for n in range(3 * GLOBAL)])
    assert counted(statuses) == {200: GLOBAL, 429: 2 * GLOBAL}, pair.logs()

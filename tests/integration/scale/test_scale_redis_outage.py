"""Redis goes away mid-run and comes back (a Redis of this test's own, on its own port): stopped
and started again, or frozen (SIGSTOP, as a network partition looks: connections hang instead of
being refused) and thawed.

While it is down the server keeps serving and says so in its logs: polling fails *open* (answered
from the database alone: ``authorization_pending``, never a wrongful ``slow_down``, never a 5xx)
and code entry and sign-in fail *closed* (429 with Retry-After: an unlimited guesser is worse
than a short outage). When Redis is back on the same port, polling state and limits work again
without a restart: a fast second poll gets ``slow_down`` and wrong codes count.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from tests.support.limits import generous_limits
from tests.support.servers import (
    PASSWORD,
    OwnRedis,
    add_client,
    add_users,
    approve_via_http,
    authorize_device,
    browser,
    csrf_of,
    migrated_database,
    own_redis,
    poll_form,
    skip_redis,
)

from deviceflow.config.server import ServerSettings
from deviceflow.server.embedded import free_port, serve_in_thread

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SESSION_BUDGET = 3
WRONG = ("BCDF-GHJK", "LMNP-QRST", "VWXZ-BCDF", "GHJK-LMNP")
SLOW_ANSWER = 3.0
"""Seconds: an answer slower than this during the outage means the server waits on a dead Redis
(retries, reconnects) instead of failing fast. The clients' own timeouts are 0.5 s."""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[OwnRedis]:
    if skip_redis():
        pytest.skip("DEVICEFLOW_SKIP_REDIS=1")
    if not OwnRedis.binary_available():
        pytest.fail("redis-server is not on PATH", pytrace=False)
    with own_redis(tmp_path) as server:
        yield server


class Timed:
    """An httpx client that remembers the slowest answer and every 5xx."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.slowest = 0.0
        self.server_errors: list[str] = []

    def post(self, url: str, **kwargs: object) -> httpx.Response:
        return self._timed(self.client.post, url, **kwargs)

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        return self._timed(self.client.get, url, **kwargs)

    def _timed(self, method: object, url: str, **kwargs: object) -> httpx.Response:
        start = time.perf_counter()
        response: httpx.Response = method(url, **kwargs)  # type: ignore[operator]
        self.slowest = max(self.slowest, time.perf_counter() - start)
        if response.status_code >= 500:
            self.server_errors.append(f"{response.status_code} {url}: {response.text[:300]}")
        return response


def enter_code(base: str, code: str) -> httpx.Response:
    with browser(base) as page:
        form = page.get("/device")
        return page.post("/device", data={"csrf_token": csrf_of(form.text), "user_code": code})


def error_of(response: httpx.Response) -> str:
    assert response.status_code == 400, (response.status_code, response.text)
    error: str = response.json()["error"]
    return error


def spend_session_budget(base: str) -> httpx.Response:
    """Wrong codes in one browser session until it is throttled; returns the throttled answer."""
    with browser(base) as page:
        form = page.get("/device")
        token = csrf_of(form.text)
        for code in WRONG[:SESSION_BUDGET]:
            refused = page.post("/device", data={"csrf_token": token, "user_code": code})
            assert refused.status_code == 400, refused.text
            token = csrf_of(refused.text)
        return page.post("/device", data={"csrf_token": token, "user_code": WRONG[-1]})


def test_redis_outage_fails_safe_and_recovers(
    redis_server: OwnRedis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="deviceflow")
    with migrated_database("sqlite", tmp_path) as db:
        add_users(db, ["alice"])
        add_client(db, "tv")
        port = free_port()
        settings = ServerSettings(
            host="127.0.0.1", port=port, issuer=f"http://127.0.0.1:{port}", db=db,
            redis=redis_server.url, interval=1, log_format="text",
            **generous_limits(limit_code_per_session=f"{SESSION_BUDGET}/hour"),
        )
        with serve_in_thread(settings) as base, httpx.Client(base_url=base, timeout=30) as raw:
            http = Timed(raw)
            device_code = authorize_device(raw, "tv")["device_code"]

            def poll() -> httpx.Response:
                return http.post("/token", data=poll_form("tv", device_code))

            # --- Redis up: polling state and limits live there.
            assert error_of(poll()) == "authorization_pending"
            assert error_of(poll()) == "slow_down"
            throttled = spend_session_budget(base)
            assert throttled.status_code == 429
            assert int(throttled.headers["retry-after"]) > 0

            # --- Redis down.
            redis_server.stop()
            http.slowest = 0.0
            time.sleep(1.2)
            assert error_of(poll()) == "authorization_pending"
            # Polling fails open: no state to compare with, so no slow_down.
            assert error_of(poll()) == "authorization_pending"
            assert error_of(poll()) == "authorization_pending"

            started = authorize_device(raw, "tv")  # the database alone: still served
            entry = enter_code(base, started["user_code"])  # even a right code: fail closed
            assert entry.status_code == 429, entry.text
            assert int(entry.headers["retry-after"]) > 0
            assert 'role="alert"' in entry.text
            wrong = enter_code(base, WRONG[0])
            assert wrong.status_code == 429
            assert wrong.headers["retry-after"]
            with browser(base) as page:
                form = page.get("/device/signin")
                signin = page.post("/device/signin", data={
                    "csrf_token": csrf_of(form.text), "username": "alice", "password": PASSWORD,
                })
            assert signin.status_code == 429
            assert signin.headers["retry-after"]
            assert http.get("/.well-known/openid-configuration").status_code == 200
            assert http.get("/healthz").status_code == 200
            assert http.slowest < SLOW_ANSWER, f"answers took up to {http.slowest:.1f} s"

            warned = {r.name for r in caplog.records if r.levelno >= logging.WARNING}
            assert "deviceflow.polling" in warned, caplog.text
            assert "deviceflow.ratelimit" in warned, caplog.text

            # --- Redis back, on the same port (empty: it keeps nothing on disk).
            redis_server.start()
            time.sleep(1.2)
            assert error_of(poll()) == "authorization_pending"
            assert error_of(poll()) == "slow_down"  # polling state is shared again
            throttled = spend_session_budget(base)  # wrong codes count again
            assert throttled.status_code == 429
            assert approve_via_http(base, started["user_code"], "alice", PASSWORD)
            issued = http.post("/token", data=poll_form("tv", started["device_code"]))
            assert issued.status_code == 200, issued.text

            assert http.server_errors == []


def test_redis_partition_does_not_stall_polling(
    redis_server: OwnRedis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A frozen Redis makes every call wait for its timeout. Polls hold a database transaction
    meanwhile (on SQLite, the write lock), so unless the server stops asking a Redis it knows is
    down, concurrent polls queue behind each other's timeouts: here 20 polls took 20 s."""
    caplog.set_level(logging.WARNING, logger="deviceflow")
    pollers = 20
    with migrated_database("sqlite", tmp_path) as db:
        add_users(db, ["alice"])
        add_client(db, "tv")
        port = free_port()
        settings = ServerSettings(
            host="127.0.0.1", port=port, issuer=f"http://127.0.0.1:{port}", db=db,
            redis=redis_server.url, interval=1, log_format="text", **generous_limits(),
        )
        with serve_in_thread(settings) as base, httpx.Client(base_url=base, timeout=60) as http:
            codes = [authorize_device(http, "tv")["device_code"] for _ in range(pollers)]

            def poll(device_code: str) -> tuple[int, str, float]:
                with httpx.Client(base_url=base, timeout=60) as device:
                    start = time.perf_counter()
                    answer = device.post("/token", data=poll_form("tv", device_code))
                    took = time.perf_counter() - start
                return answer.status_code, answer.json().get("error", ""), took

            assert redis_server.process is not None
            redis_server.process.send_signal(signal.SIGSTOP)
            try:
                with ThreadPoolExecutor(pollers) as pool:
                    answers = list(pool.map(poll, codes))
                entry = enter_code(base, WRONG[0])
            finally:
                redis_server.process.send_signal(signal.SIGCONT)

            assert {(status, error) for status, error, _ in answers} == {
                (400, "authorization_pending")}
            slowest = max(took for _, _, took in answers)
            assert slowest < SLOW_ANSWER, f"polls took up to {slowest:.1f} s"
            assert entry.status_code == 429
            assert "deviceflow.polling" in {r.name for r in caplog.records}, caplog.text

            # Thawed: after a short pause the shared state is used again.
            time.sleep(1.5)
            assert error_of(http.post("/token", data=poll_form("tv", codes[0]))) \
                == "authorization_pending"
            assert error_of(http.post("/token", data=poll_form("tv", codes[0]))) == "slow_down"

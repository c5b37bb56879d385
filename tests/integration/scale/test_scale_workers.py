"""``deviceflow serve --workers 2`` on PostgreSQL with Redis: one port, two worker processes.

Which worker answers a request is the kernel's choice, so what is asserted is what must hold
whichever worker it is: the global wrong-code budget and ``slow_down`` (both through Redis), and
a clean shutdown that leaves no worker behind.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from tests.support.servers import (
    PASSWORD,
    add_client,
    add_users,
    approve_via_http,
    authorize_device,
    browser,
    csrf_of,
    poll_form,
    serve_subprocesses,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

BUDGET = 3
WRONG = ("BCDF-GHJK", "LMNP-QRST", "VWXZ-BCDF", "GHJK-LMNP", "QRST-VWXZ")


def worker_pids(pid: int) -> list[int]:
    """The worker processes (multiprocessing spawn children) of uvicorn's supervisor."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    workers = []
    for child in map(int, children):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            workers.append(child)
    return workers


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_two_workers_share_limits_and_polling_state(
    redis_db_url: str, pg_url: str, tmp_path: Path
) -> None:
    add_users(pg_url, ["alice"])
    add_client(pg_url, "tv")
    with serve_subprocesses(
        ["W"], pg_url, tmp_path, redis_url=redis_db_url, interval=1,
        limits={"limit_code_global": f"{BUDGET}/hour"}, extra=["--workers", "2"],
    ) as (server,):
        deadline = time.monotonic() + 30
        while len(workers := worker_pids(server.process.pid)) < 2:
            assert time.monotonic() < deadline, server.logs()[-3000:]
            time.sleep(0.1)
        assert len(workers) == 2

        def wrong(code: str) -> httpx.Response:
            with browser(server.base_url) as page:  # new connection, new session
                form = page.get("/device")
                return page.post("/device", data={"csrf_token": csrf_of(form.text),
                                                  "user_code": code})

        for code in WRONG[:BUDGET]:
            assert wrong(code).status_code == 400
        for code in WRONG[BUDGET:]:
            throttled = wrong(code)
            assert throttled.status_code == 429
            assert throttled.headers["retry-after"]

        started = authorize_device(server.base_url, "tv")

        def poll() -> httpx.Response:
            with httpx.Client(base_url=server.base_url, timeout=30) as device:  # new connection
                return device.post("/token", data=poll_form("tv", started["device_code"]))

        assert poll().json()["error"] == "authorization_pending"
        assert poll().json()["error"] == "slow_down"
        assert approve_via_http(server.base_url, started["user_code"], "alice", PASSWORD,
                                sign_in_first=True)
        assert poll().status_code == 200
        assert poll().json()["error"] == "invalid_grant"

        assert server.stop() == 0, server.logs()[-3000:]
        assert not any(alive(pid) for pid in workers)

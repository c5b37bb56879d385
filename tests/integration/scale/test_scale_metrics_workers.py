"""``deviceflow serve --workers 2 --enable-metrics``: whichever worker answers a scrape sums the
counters of both (prometheus_client's multi-process mode, in a private directory that
``serve`` makes and removes), and a killed worker leaves the live-worker gauge but not the sums.

Which worker answers is the kernel's choice; the ``X-Request-ID`` prefix (random per process)
tells them apart, so the test sends requests until both have answered.
"""

from __future__ import annotations

import os
import secrets
import signal
import stat
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.integration.scale.test_scale_workers import alive, worker_pids
from tests.support.servers import serve_subprocesses

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TOKEN = secrets.token_urlsafe(32)
DISCOVERY = "/.well-known/openid-configuration"


def scrape(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(base_url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}",
                                                         "Connection": "close"})
    assert response.status_code == 200, response.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def discovery_count(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    key = ("deviceflow_http_requests_total",
           (("endpoint", DISCOVERY), ("method", "GET"), ("status", "200")))
    return samples.get(key, 0.0)


def workers_gauge(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    return samples[("deviceflow_workers", ())]


def multiproc_dir(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    assert found, "the worker has no PROMETHEUS_MULTIPROC_DIR"
    return Path(found[0].decode())


def test_two_workers_scrape_sums_both(pg_url: str, tmp_path: Path) -> None:
    with serve_subprocesses(
        ["M"], pg_url, tmp_path, extra=["--workers", "2", "--enable-metrics"],
        env={"DEVICEFLOW_METRICS_TOKEN": TOKEN},
    ) as (server,):
        deadline = time.monotonic() + 30
        while len(workers := worker_pids(server.process.pid)) < 2:
            assert time.monotonic() < deadline, server.logs()[-3000:]
            time.sleep(0.1)
        directory = multiproc_dir(workers[0])
        assert multiproc_dir(workers[1]) == directory
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700

        # New connections until both workers have answered (each has its own id prefix).
        prefixes: set[str] = set()
        sent = 0
        while len(prefixes) < 2 or sent < 20:
            assert sent < 500, "one worker answered every request"
            response = httpx.get(server.base_url + DISCOVERY, headers={"Connection": "close"})
            assert response.status_code == 200
            prefixes.add(response.headers["x-request-id"][:8])
            sent += 1

        # Every scrape, whichever worker answers it, sees all of them.
        for _ in range(6):
            samples = scrape(server.base_url)
            assert discovery_count(samples) == sent
            assert workers_gauge(samples) == 2

        # A worker killed outright (no shutdown runs): uvicorn starts another; the dead one's
        # counts stay in the sums, and it leaves the live-worker gauge.
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:  # until the new worker answers (so it has started: its gauge is set)
            response = httpx.get(server.base_url + DISCOVERY, headers={"Connection": "close"})
            assert response.status_code == 200
            sent += 1
            if response.headers["x-request-id"][:8] not in prefixes:
                break
            assert time.monotonic() < deadline, server.logs()[-3000:]
        assert not alive(workers[0])
        samples = scrape(server.base_url)
        assert workers_gauge(samples) == 2
        assert discovery_count(samples) == sent

        assert server.stop() == 0, server.logs()[-3000:]
    assert not directory.exists()  # removed when serve exits

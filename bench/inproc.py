"""The application's own cost of a pending poll, without a network or an ASGI server: the ASGI
app is called directly in a loop, for deviceflow (SQLite) and for the bare floor app.

    .venv/bin/python bench/inproc.py [--requests 20000] [--profile] [--logs] [--metrics]

``--metrics`` turns Prometheus metrics on (one process; with ``PROMETHEUS_MULTIPROC_DIR`` set
to an empty directory, the multi-process mode of ``serve --workers N``).

It measures the layers above uvicorn (routing, middleware, service, storage), so changes to
them can be compared in seconds; ``bench/run.py`` remains the measure of record.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.floor_app import app as floor_app

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.models import DEVICE_CODE_GRANT, ClientType
from deviceflow.server.web.app import create_app


def _scope(path: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1:8000"),
                    (b"content-type", b"application/x-www-form-urlencoded"),
                    (b"content-length", str(len(body)).encode())],
    }


async def _call(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope(path, body), receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def _deviceflow(tmp: str, metrics: bool) -> tuple[Any, list[bytes], Any]:
    # 2,000 codes from one address in a second: far over the device authorization limits.
    settings = ServerSettings(db=f"sqlite:///{tmp}/bench.sqlite3", interval=1,
                              limit_device_authorization_per_ip="100000000/minute",
                              limit_device_codes_per_client=100_000_000,
                              enable_metrics=metrics,
                              metrics_token="bench-token-" + "0" * 32 if metrics else None)
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    from deviceflow.server.service import AdminService

    service = app.state.service
    await AdminService(service.store).add_client(
        "bench", "Bench", ClientType.PUBLIC, [DEVICE_CODE_GRANT], ["openid"])
    bodies = []
    for _ in range(2000):
        status, body = await _call(app, "/device_authorization", b"client_id=bench&scope=openid")
        assert status == 200, body
        import json

        code = json.loads(body)["device_code"]
        bodies.append(f"grant_type={DEVICE_CODE_GRANT}&device_code={code}&client_id=bench"
                      .replace(":", "%3A").encode())
    return app, bodies, lifespan


async def _loop(app: Any, bodies: list[bytes], count: int) -> float:
    """Mean µs per poll over ``count`` polls, in passes over the pool with a pause between
    passes so that no code is polled faster than its 1 s interval."""
    elapsed, done = 0.0, 0
    while done < count:
        batch = min(count - done, len(bodies))
        start = time.perf_counter()
        for body in bodies[:batch]:
            status, answer = await _call(app, "/token", body)
            assert status == 400, answer
            assert b"authorization_pending" in answer, answer
        elapsed += time.perf_counter() - start
        done += batch
        if done < count:
            await asyncio.sleep(max(0.0, 1.1 - (time.perf_counter() - start)))
    return elapsed / count * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--metrics", action="store_true", help="Prometheus metrics on")
    parser.add_argument("--logs", action="store_true",
                        help="JSON logs at info level, as `deviceflow serve` (to /dev/null)")
    args = parser.parse_args()
    if args.logs:
        from deviceflow.server.logs import configure

        sys.stderr = open(os.devnull, "w")  # noqa: SIM115, ASYNC230 - for the whole run
        configure("json", "info")
    with tempfile.TemporaryDirectory() as tmp:
        app, bodies, lifespan = await _deviceflow(tmp, args.metrics)
        await _loop(app, bodies, len(bodies))  # warm up
        await asyncio.sleep(1.1)
        print(f"floor      {await _loop(floor_app, bodies, args.requests):7.1f} µs/poll")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
        result = await _loop(app, bodies, args.requests)
        print(f"deviceflow {result:7.1f} µs/poll")
        if args.profile:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        await lifespan.__aexit__(None, None, None)


if __name__ == "__main__":
    asyncio.run(main())

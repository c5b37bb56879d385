"""Benchmark: wall time of a cached ``deviceflow get-token`` (file cache, headless) vs bare Python.

Run by hand, not a timed test:

    .venv/bin/python bench/bench_get_token.py [--runs 30] [--markdown]

It makes a throw-away config and data dir, a profile, and a cached token valid for an hour
(no server needed: the cached path never touches the network), then alternates 30 runs of

    deviceflow get-token --profile bench       (the installed console script)
    python3 -c pass                            (the same interpreter as the venv)

and reports medians and the ratio. Targets (issue 3): median < 50 ms and ≤ 4× bare Python. It
also checks that the cached path imported none of httpx, keyring, rich, segno or click.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def seed(home: Path) -> dict[str, str]:
    from deviceflow.client.cache import CacheRecord, TokenCache
    from deviceflow.client.profiles import Profile, ProfileStore
    from deviceflow.client.tokens import TokenSet

    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVICEFLOW_")}
    env.update(
        DEVICEFLOW_CONFIG_DIR=str(home / "config"),
        DEVICEFLOW_DATA_DIR=str(home / "data"),
        DEVICEFLOW_TOKEN_STORE="file",
    )
    store = ProfileStore(home / "config")
    store.add(Profile(name="bench", client_id="bench-client"))
    profile = store.load().get("bench")
    now = time.time()
    token = TokenSet(
        access_token="header.payload.signature",
        expires_at=now + 3600,
        refresh_token="rt",
        issued_at=now,
    )
    record = CacheRecord(profile.cache_key).with_token(
        profile.effective_scopes, None, token, now=now
    )
    TokenCache(home / "data").save(record)
    return env


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed: {done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--markdown", action="store_true", help="print a docs table row")
    args = parser.parse_args()

    script = Path(sys.executable).parent / "deviceflow"
    deviceflow = [str(script)] if script.exists() else [shutil.which("deviceflow") or "deviceflow"]
    bare = [sys.executable, "-c", "pass"]
    home = Path(tempfile.mkdtemp(prefix="deviceflow-bench-"))
    try:
        env = seed(home)
        out = subprocess.run(
            [*deviceflow, "get-token", "--profile", "bench"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == "header.payload.signature", out
        probe = subprocess.run(
            [sys.executable, "-X", "importtime", *deviceflow, "get-token", "--profile", "bench"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        heavy = sorted(
            {
                m
                for m in ("httpx", "keyring", "rich", "segno", "click", "tomllib")
                if f"| {m}\n" in probe.stderr
            }
        )
        for _ in range(3):  # warm the page cache
            timed([*deviceflow, "get-token", "--profile", "bench"], env)
            timed(bare, env)
        cli_times, bare_times = [], []
        for _ in range(args.runs):
            cli_times.append(timed([*deviceflow, "get-token", "--profile", "bench"], env))
            bare_times.append(timed(bare, env))
    finally:
        shutil.rmtree(home, ignore_errors=True)

    cli_ms = statistics.median(cli_times) * 1000
    bare_ms = statistics.median(bare_times) * 1000
    ratio = cli_ms / bare_ms
    verdict = "PASS" if cli_ms < 50 and ratio <= 4 else "FAIL"
    if args.markdown:
        print(
            f"| {time.strftime('%Y-%m-%d')} | {platform.python_version()} | {args.runs} | "
            f"{cli_ms:.1f} ms | {bare_ms:.1f} ms | {ratio:.2f}× | {verdict} |"
        )
    else:
        print(
            f"cached get-token: median {cli_ms:.1f} ms (min {min(cli_times) * 1000:.1f}, "
            f"max {max(cli_times) * 1000:.1f}) over {args.runs} runs"
        )
        print(f"python -c pass:   median {bare_ms:.1f} ms")
        print(f"ratio {ratio:.2f}x; target < 50 ms and <= 4x: {verdict}")
        print(f"heavy modules imported on the cached path: {heavy or 'none'}")


if __name__ == "__main__":
    main()

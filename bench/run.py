"""Server load benchmark: deviceflow against node oidc-provider and a bare Starlette floor.

    .venv/bin/python bench/run.py            # the full run (about 40 minutes): docs/benchmarks.md
    .venv/bin/python bench/run.py --quick    # a smoke run: 5 s per run, one run, smaller pools
    .venv/bin/python bench/run.py --profile  # plus one polling run per target under py-spy
    .venv/bin/python bench/run.py --targets deviceflow-pg-1w-redis --scenarios poll \
        --experiments "no_pre_ping;no_pre_ping,client_cache"   # candidate fixes (experiments.py)

Needs wrk (``apt-get install wrk``), node + ``npm ci --prefix bench/peers`` (run.py does the
latter when node_modules is missing), granian and py-spy in the venv for the granian targets and
``--profile`` (``pip install granian py-spy``; the granian targets are skipped without it),
PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres)
and Redis on 127.0.0.1:6379. Everything listens and is loaded on 127.0.0.1 only.

Every server runs pinned to CPU 0 (``taskset -c 0``), wrk pinned to CPU 1: one worker against
oidc-provider's one process. For each target it measures, with wrk at 64 connections, 20 s per
run, 3 runs, and takes medians of requests/s, p50 and p99:

  (c) discovery  GET the OpenID Provider metadata
  (a) device     POST the device authorization endpoint (the device codes it hands out are kept)
  (b) poll       POST the token endpoint with pending device codes, round-robin over a pool large
                 enough that each code comes round later than its 5 s interval; the answer mix
                 (``authorization_pending`` vs ``slow_down``) is counted and reported.

For deviceflow on SQLite and on PostgreSQL (one worker) it then inserts 100,000 further pending
device codes through the storage layer, polls again, and reads each worker's VmRSS.

Results (every run, the medians, the machine, CPU used per request by the server, PostgreSQL and
Redis, context switches, PostgreSQL sessions opened, and the targets met or missed) go to
``bench/results/server-load-<timestamp>.json``; a table goes to stdout, and ``bench/report.py``
renders result files as Markdown. deviceflow is imported from a snapshot of ``src/`` at HEAD
(``--src worktree`` for the working tree as it is). The scratch database
``deviceflow_bench`` is created and dropped; Redis db 11 is flushed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PEERS = BENCH / "peers"
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(BENCH))
prep: Any = None  # bench/prep.py, imported in main() once the deviceflow source is chosen
SRC_PATH = ""  # the deviceflow source the servers import (a snapshot of HEAD by default)

SERVER_CPU = "0"
LOAD_CPU = "1"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "deviceflow_bench"
PG_URL = f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"
REDIS_DB = 11
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
_POOL_MARGIN = 3.0
"""A resized pool comes round in 3 intervals at the rate measured: room for the rate to rise
(a pool of pending copies in Redis answers faster than one read from the database) without any
code being polled within its interval."""
INTERVAL = 5.0
GRANT = "urn:ietf:params:oauth:grant-type:device_code"

GENEROUS_LIMITS = {
    # Brute-force budgets of the verification pages: not on the measured paths, but generous so
    # nothing a benchmark does can trip them.
    "DEVICEFLOW_LIMIT_CODE_PER_SESSION": "1000000/hour",
    "DEVICEFLOW_LIMIT_CODE_PER_IP": "1000000/hour",
    "DEVICEFLOW_LIMIT_CODE_GLOBAL": "1000000/hour",
    "DEVICEFLOW_LIMIT_CODE_PER_ACCOUNT": "1000000/hour",
    "DEVICEFLOW_LIMIT_LOGIN_PER_ACCOUNT": "1000000/hour",
    "DEVICEFLOW_LIMIT_LOGIN_PER_IP": "1000000/hour",
    # The device authorization flood limits are on a measured path: one spend per budget stays
    # in the cost, but wrk from one IP must not meet them.
    "DEVICEFLOW_LIMIT_DEVICE_AUTHORIZATION_PER_IP": "100000000/minute",
    "DEVICEFLOW_LIMIT_DEVICE_CODES_PER_CLIENT": "100000000",
}


# ------------------------------------------------------------------------------------ targets


@dataclasses.dataclass
class Target:
    name: str
    kind: str  # deviceflow | oidc | floor
    asgi: str = "uvicorn"  # uvicorn | granian (Python targets)
    db: str = ""  # sqlite | postgresql
    workers: int = 1
    redis: bool = False
    scale: bool = False  # run the 100k pending check
    scenarios: tuple[str, ...] = ("discovery", "device", "poll")
    experiments: str = ""  # bench/experiments.py patches, comma-separated
    default: bool = True  # run without --targets

    @property
    def paths(self) -> dict[str, str]:
        if self.kind == "oidc":
            return {"discovery": "/.well-known/openid-configuration", "device": "/device/auth",
                    "token": "/token"}
        return {"discovery": "/.well-known/openid-configuration", "device": "/device_authorization",
                "token": "/token"}


ALL_TARGETS = [
    Target("deviceflow-sqlite-1w", "deviceflow", db="sqlite", scale=True),
    Target("deviceflow-pg-1w-redis", "deviceflow", db="postgresql", redis=True, scale=True),
    Target("deviceflow-pg-2w-redis", "deviceflow", db="postgresql", workers=2, redis=True),
    # Polling state in the database (one UPDATE per poll) instead of Redis: for docs/scaling.md.
    Target("deviceflow-pg-1w", "deviceflow", db="postgresql", default=False),
    Target("oidc-provider", "oidc"),
    Target("floor-uvicorn", "floor", scenarios=("poll",)),
    Target("deviceflow-sqlite-1w-granian", "deviceflow", asgi="granian", db="sqlite"),
    Target("floor-granian", "floor", asgi="granian", scenarios=("poll",)),
]


# ------------------------------------------------------------------------------ small helpers


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_times() -> dict[str, tuple[int, int]]:
    """Per-CPU (busy, total) jiffies from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if re.match(r"cpu\d+ ", line):
            name, *vals = line.split()
            nums = [int(v) for v in vals]
            idle = nums[3] + nums[4]
            out[name] = (sum(nums) - idle, sum(nums))
    return out


def proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime


def descendants(pid: int) -> list[int]:
    """pid and every descendant (via /proc/*/task/*/children)."""
    found = [pid]
    i = 0
    while i < len(found):
        p = found[i]
        i += 1
        for task in Path(f"/proc/{p}/task").glob("*") if Path(f"/proc/{p}/task").exists() else []:
            with contextlib.suppress(OSError):
                found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def pids_named(comm: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if (d / "comm").read_text().strip() == comm:
                    pids.append(int(d.name))
    return pids


def context_switches(pids: list[int]) -> int:
    """Voluntary + involuntary context switches of every thread of ``pids``."""
    total = 0
    for pid in pids:
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            with contextlib.suppress(OSError):
                for line in status.read_text().splitlines():
                    if "ctxt_switches:" in line:
                        total += int(line.split()[1])
    return total


def cpu_of(pids: list[int]) -> float:
    return sum(proc_cpu_seconds(p) for p in pids)


def vm_rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def http(method: str, url: str, body: bytes | None = None, timeout: float = 5) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def sh(*cmd: str, check: bool = True, timeout: float = 60) -> str:
    return subprocess.run(cmd, check=check, capture_output=True, text=True,
                          timeout=timeout).stdout.strip()


def version_of(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    mem = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    oidc_version = "not installed"
    with contextlib.suppress(OSError, ValueError):
        oidc_version = json.loads(
            (PEERS / "node_modules/oidc-provider/package.json").read_text())["version"]
    git = sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD", check=False)
    dirty = sh("git", "-C", str(ROOT), "status", "--porcelain", "--", "src", check=False)
    return {
        "nproc": os.cpu_count(),
        "cpu": model.group(1) if model else "?",
        "ram_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": sh("node", "--version", check=False),
        "wrk": sh("wrk", "-v", check=False).splitlines()[0] if shutil.which("wrk") else "missing",
        "postgresql": sh("psql", PG_ADMIN, "-Atc", "show server_version", check=False),
        "redis": sh("redis-cli", "-h", "127.0.0.1", "info", "server", check=False)
        .partition("redis_version:")[2].split()[0:1],
        "versions": {m: version_of(m) for m in (
            "uvicorn", "uvloop", "httptools", "granian", "starlette", "sqlalchemy", "aiosqlite",
            "asyncpg", "limits", "redis")} | {"oidc-provider": oidc_version},
        "git": git + (" + uncommitted changes in src/" if dirty else ""),
    }


# --------------------------------------------------------------------------- server processes


class Server:
    """A server process group pinned to SERVER_CPU; killed (the whole group) on stop()."""

    def __init__(self, target: Target, port: int, env: dict[str, str], workdir: Path) -> None:
        self.target = target
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = workdir / f"{target.name}.log"
        cmd = ["taskset", "-c", SERVER_CPU, *self.command()]
        self.log_file = open(self.log_path, "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self.log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def command(self) -> list[str]:
        t = self.target
        port = str(self.port)
        if t.kind == "oidc":
            return ["node", str(PEERS / "oidc_provider_peer.js"), port]
        app = ("deviceflow.server.web.app:app_from_env" if t.kind == "deviceflow"
               else "floor_app:app")
        if t.experiments:
            app = "experiments:app_from_env"
        factory = t.kind == "deviceflow"
        in_bench = t.kind == "floor" or bool(t.experiments)
        if t.asgi == "granian":
            cmd = [str(VENV_BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1",
                   "--port", port, "--workers", str(t.workers), "--loop", "uvloop",
                   "--log-level", "warning", "--no-access-log"]
            if factory:
                cmd.append("--factory")
            if in_bench:
                cmd += ["--working-dir", str(BENCH)]
            return [*cmd, app]
        cmd = [str(VENV_BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", port,
               "--loop", "uvloop", "--http", "httptools", "--no-access-log",
               "--log-level", "warning"]
        if t.workers > 1:
            cmd += ["--workers", str(t.workers)]
        if factory:
            cmd.append("--factory")
        if in_bench:
            cmd += ["--app-dir", str(BENCH)]
        return cmd

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        probe = ("POST", "/token", b"device_code=x&client_id=x") if self.target.kind == "floor" \
            else ("GET", "/.well-known/openid-configuration", None)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text()[-2000:]
                raise RuntimeError(f"{self.target.name} exited: {tail}")
            with contextlib.suppress(OSError):
                status, _ = http(probe[0], self.base + probe[1], probe[2], timeout=2)
                if status in (200, 400):
                    if self.target.workers > 1:
                        time.sleep(3)  # let every worker finish its start-up
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{self.target.name} not ready: {self.log_path.read_text()[-2000:]}")

    def pids(self) -> list[int]:
        return descendants(self.proc.pid)

    def worker_pids(self) -> list[int]:
        """The processes that serve requests (not taskset's exec'd supervisor, if any)."""
        pids = self.pids()
        if len(pids) > 1:  # a supervisor with worker children: the leaves serve
            leaves = [p for p in pids if len(descendants(p)) == 1]
            return leaves or pids
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        # Workers that outlived their supervisor: kill the group again.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log_file.close()


# ------------------------------------------------------------------------------------- wrk


@dataclasses.dataclass
class WrkResult:
    data: dict[str, Any]
    wrk_cpu_s: float
    server_cpu_s: float
    db_cpu_s: float
    redis_cpu_s: float
    core_busy: dict[str, float]
    all_busy_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        n = max(self.data["requests"], 1)
        dur = self.data["duration_s"]
        ours = self.wrk_cpu_s + self.server_cpu_s + self.db_cpu_s + self.redis_cpu_s
        return {
            # CPU (% of one core) used during the run by processes other than the server, wrk
            # and the benchmark's PostgreSQL backends and Redis: others' work on this machine.
            "other_cpu_pct": round(self.all_busy_s * 100 / dur - 100 * ours / dur, 1),
            **self.data,
            "wrk_cpu_pct": round(100 * self.wrk_cpu_s / dur, 1),
            "server_cpu_pct": round(100 * self.server_cpu_s / dur, 1),
            "server_cpu_us_per_req": round(1e6 * self.server_cpu_s / n, 1),
            "postgres_cpu_us_per_req": round(1e6 * self.db_cpu_s / n, 1),
            "redis_cpu_us_per_req": round(1e6 * self.redis_cpu_s / n, 1),
            "core_busy_pct": self.core_busy,
        }


def wrk_json(out: str, err: str) -> dict[str, Any]:
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}\n{err}")
    return dict(json.loads(line.removeprefix("BENCH_JSON ")))


def run_wrk(server: Server, script: str, duration: float, connections: int,
            args: list[str], latency: bool = True, stop_when: Any = None) -> WrkResult:
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s",
           "--timeout", "10s"]
    if latency:
        cmd.append("--latency")
    cmd += ["-s", str(BENCH / "wrk" / script), server.base, "--", *args]
    pids = server.pids()
    # Only the backends serving the benchmark database: other test runs share this PostgreSQL.
    pg_pids = pg_backend_pids()
    pg0 = pg_stats() if pg_pids else {}
    redis_pids = pids_named("redis-server")
    s0, d0, r0, c0 = cpu_of(pids), cpu_of(pg_pids), cpu_of(redis_pids), cpu_times()
    x0 = context_switches(pids)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + duration + 60
    usage = None
    try:
        while True:
            # wait4 rather than poll(): it also returns the CPU wrk used (is it the bottleneck?)
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                usage = ru
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"wrk overran: {cmd}")
            if stop_when is not None and stop_when():
                proc.send_signal(signal.SIGINT)  # wrk stops and still prints its report
                stop_when = None
            time.sleep(0.1)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    out, err = proc.communicate(timeout=10)
    s1, d1, r1, c1 = cpu_of(pids), cpu_of(pg_pids), cpu_of(redis_pids), cpu_times()
    x1 = context_switches(pids)
    data = wrk_json(out, err)
    data["server_context_switches_per_req"] = round((x1 - x0) / max(1, data["requests"]), 2)
    if pg0:
        # New PostgreSQL connections opened during the run (pool churn), and transactions.
        pg1 = pg_stats()
        data["pg"] = {k: pg1.get(k, 0) - v for k, v in pg0.items()}
    wrk_cpu = 0.0
    if usage is not None:
        wrk_cpu = usage.ru_utime + usage.ru_stime
    busy = {
        name: round(100 * (c1[name][0] - c0[name][0]) / max(c1[name][1] - c0[name][1], 1), 1)
        for name in c1
    }
    tick = os.sysconf("SC_CLK_TCK")
    all_busy = sum(c1[name][0] - c0[name][0] for name in c1) / tick
    return WrkResult(data, wrk_cpu, s1 - s0, d1 - d0, r1 - r0, busy, all_busy)


# --------------------------------------------------------------------------------- scenarios


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("rps", "p50_ms", "p99_ms", "server_cpu_us_per_req", "postgres_cpu_us_per_req",
            "redis_cpu_us_per_req", "wrk_cpu_pct", "server_cpu_pct", "other_cpu_pct")
    med = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    answers: dict[str, int] = {}
    for r in runs:
        for k, v in r["answers"].items():
            answers[k] = answers.get(k, 0) + v
    med["answers"] = answers
    med["socket_errors"] = sum(sum(r["errors"].values()) - r["errors"]["status"] for r in runs)
    return med


class Bench:
    def __init__(self, opts: argparse.Namespace, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.results: dict[str, Any] = {}
        self.poll_offsets: dict[str, int] = {}
        self.pool_files: dict[str, Path] = {}  # a slice of the minted codes, when polled
        self.stamp = "profile"

    # -- environment of the deviceflow targets
    def deviceflow_env(self, target: Target, db_url: str, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEVICEFLOW_")}
        if SRC_PATH:
            env["PYTHONPATH"] = SRC_PATH
        env.update(GENEROUS_LIMITS)
        env.update({
            "DEVICEFLOW_DB": db_url,
            "DEVICEFLOW_ISSUER": f"http://127.0.0.1:{port}",
            "DEVICEFLOW_LOG_LEVEL": "warning",
            "DEVICEFLOW_LOG_FORMAT": "text",
            "DEVICEFLOW_MIGRATE_ON_START": "false",
            "DEVICEFLOW_DEVICE_CODE_EXPIRES_IN": "3600",
            "DEVICEFLOW_INTERVAL": str(int(INTERVAL)),
            "DEVICEFLOW_WORKERS": str(target.workers),
        })
        if target.redis:
            env["DEVICEFLOW_REDIS"] = REDIS_URL
        env["BENCH_EXPERIMENTS"] = target.experiments
        if "hiredis" in target.experiments.split(","):
            pylib = self.workdir / "pylib"
            if not pylib.exists():
                subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target",
                                str(pylib), "hiredis"], check=True, timeout=300)
            env["BENCH_PYLIB"] = str(pylib)
        return env

    def run_target(self, target: Target) -> dict[str, Any]:
        o = self.opts
        port = free_port()
        db_url = ""
        env = dict(os.environ)
        if SRC_PATH:
            env["PYTHONPATH"] = SRC_PATH
        if target.kind == "deviceflow":
            if target.db == "sqlite":
                db_url = f"sqlite:///{self.workdir / (target.name + '.sqlite3')}"
            else:
                reset_postgres()
                db_url = PG_URL
            if target.redis:
                flush_redis()
            prep.prepare(db_url)
            env = self.deviceflow_env(target, db_url, port)
        self.wait_quiet()
        result: dict[str, Any] = {"target": dataclasses.asdict(target), "load_before": loadavg()}
        server = Server(target, port, env, self.workdir)
        try:
            server.wait_ready()
            result["redis"] = bool(target.redis)
            result["rss_mb_idle"] = [vm_rss_mb(p) for p in server.worker_pids()]
            codes_file = self.workdir / f"{target.name}.codes"
            codes_file.write_text("")
            if "discovery" in target.scenarios:
                result["discovery"] = self.scenario(server, "discovery.lua",
                                                    [target.paths["discovery"]])
            if "device" in target.scenarios:
                # Keep the device codes this hands out: they become the polling pool.
                keep = [] if target.kind == "oidc" else [str(codes_file)]
                result["device"] = self.scenario(
                    server, "device_auth.lua", [target.paths["device"], prep.CLIENT_ID, *keep])
            if "poll" in target.scenarios:
                result["poll"] = self.poll(server, target, codes_file)
                if o.profile and target.kind == "deviceflow":
                    result["profile"] = self.profile(server, target, codes_file)
            if target.scale and o.scale > 0:
                result["scale"] = self.scale(server, target, codes_file, db_url)
            result["rss_mb_end"] = [vm_rss_mb(p) for p in server.worker_pids()]
            result["pg_stats"] = pg_stats() if target.db == "postgresql" else None
        finally:
            server.stop()
            if target.db == "postgresql":
                drop_postgres()
            if target.redis:
                flush_redis()
        result["load_after"] = loadavg()
        return result

    def scenario(self, server: Server, script: str, args: list[str],
                 runs: int | None = None) -> dict[str, Any]:
        o = self.opts
        runs_out = []
        self.wait_quiet()
        for i in range(runs or o.runs):
            r = run_wrk(server, script, o.duration, o.connections, args).summary()
            runs_out.append(r)
            log(f"  {server.target.name} {script} run {i + 1}: {r['rps']:.0f} req/s "
                f"p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms  answers {r['answers']}  "
                f"(others used {r['other_cpu_pct']:.0f}% CPU)")
        return {"runs": runs_out, "median": median_of(runs_out)}

    # -- polling
    def mint(self, server: Server, target: Target, codes_file: Path, want: int) -> None:
        """Top the pool up to ``want`` device codes through the server's device endpoint."""
        have = count_lines(codes_file)
        if have >= want:
            return
        log(f"  minting {want - have} device codes on {target.name}")
        run_wrk(server, "mint.lua", 600, 32,
                [target.paths["device"], prep.CLIENT_ID, str(want - have), str(codes_file)],
                latency=False, stop_when=lambda: count_lines(codes_file) >= want)

    def poll(self, server: Server, target: Target, codes_file: Path,
             label: str = "poll") -> dict[str, Any]:
        o = self.opts
        if target.kind == "oidc":
            # oidc-provider's default in-memory adapter is an LRU of 1000 entries (a device code
            # and its user code take two), so only a few hundred codes can be pending at once.
            # It does not enforce the polling interval (no slow_down), so a small pool polled
            # quickly is answered exactly as a large one polled slowly.
            codes_file.write_text("")
            self.mint(server, target, codes_file, 400)
        elif target.kind == "floor":
            # The floor stores nothing: any code-shaped string does.
            codes_file.write_text("".join(f"floor-code-{i:08d}-{'x' * 24}\n" for i in range(1000)))
        else:
            self.mint(server, target, codes_file, o.pool)
            codes_file = self.pool_files.get(target.name, codes_file)
        pool = count_lines(codes_file)
        self.wait_quiet()
        runs_out: list[dict[str, Any]] = []
        offset = self.poll_offsets.get(target.name, 0)
        attempts = 0
        while len(runs_out) < o.runs:
            attempts += 1
            r = run_wrk(server, "poll.lua", o.duration, o.connections,
                        [target.paths["token"], prep.CLIENT_ID, str(codes_file), str(offset)])
            # Past every code this run sent, including those in flight when wrk stopped.
            offset = r.data.get("next_offset", offset + r.data["requests"] + o.connections)
            s = r.summary()
            s["pool"] = pool
            s["cycle_s"] = round(pool / max(s["rps"], 1), 2)
            log(f"  {target.name} {label} run {len(runs_out) + 1} (pool {pool}, each code every "
                f"{s['cycle_s']} s): {s['rps']:.0f} req/s p50 {s['p50_ms']:.1f} ms "
                f"p99 {s['p99_ms']:.1f} ms answers {s['answers']} "
                f"(others used {s['other_cpu_pct']:.0f}% CPU)")
            too_fast = target.kind == "deviceflow" and s["cycle_s"] < INTERVAL * 1.2
            if too_fast and attempts <= o.runs + 2:
                # The pool came round faster than the interval: grow it and measure again.
                # Fresh codes only: the codes this run polled too early have grown intervals
                # (slow_down), and would answer slow_down again in the next run.
                want = int(s["rps"] * INTERVAL * _POOL_MARGIN) + 1000
                log(f"  pool too small for {s['rps']:.0f} req/s: {want} fresh codes, re-running")
                fresh = self.workdir / f"{target.name}.pool{attempts}"
                fresh.write_text("")
                self.mint(server, target, fresh, want)
                self.pool_files[target.name] = codes_file = fresh
                pool, offset = count_lines(fresh), 0
                continue
            too_slow = target.kind == "deviceflow" and s["cycle_s"] > INTERVAL * (_POOL_MARGIN + 1)
            if too_slow and attempts <= o.runs + 2:
                # Codes minted by the device scenario make a pool that comes round far slower
                # than the interval (with Redis, a code's pending copy then always needs a
                # database read). Poll a slice the size the rate needs, starting past every
                # code this run sent, so none is polled again within its interval.
                want = int(s["rps"] * INTERVAL * _POOL_MARGIN) + 1000
                lines = codes_file.read_text().splitlines(keepends=True)
                start = offset % len(lines)
                sliced = self.workdir / f"{target.name}.pool"
                sliced.write_text("".join((lines[start:] + lines[:start])[:want]))
                self.pool_files[target.name] = codes_file = sliced
                pool, offset = count_lines(sliced), 0
                log(f"  pool too large for {s['rps']:.0f} req/s at the {INTERVAL} s interval: "
                    f"polling {pool} of its codes, re-running")
                time.sleep(INTERVAL)
                continue
            runs_out.append(s)
        self.poll_offsets[target.name] = offset
        return {"runs": runs_out, "median": median_of(runs_out), "pool": pool}

    def scale(self, server: Server, target: Target, codes_file: Path,
              db_url: str) -> dict[str, Any]:
        n = self.opts.scale
        before = prep.count_pending(db_url)
        log(f"  inserting {n} pending device codes into {target.name} ({before} pending now)")
        seconds = prep.fill_pending(db_url, n)
        after = prep.count_pending(db_url)
        if target.db == "postgresql":
            sh("psql", PG_URL, "-qc", "ANALYZE device_authorizations")
        time.sleep(INTERVAL)
        out = self.poll(server, target, codes_file, label=f"poll@{after}")
        out.update({"pending_before": before, "pending_after": after,
                    "insert_seconds": round(seconds, 1),
                    "rss_mb": [vm_rss_mb(p) for p in server.worker_pids()]})
        return out

    def profile(self, server: Server, target: Target, codes_file: Path) -> dict[str, Any]:
        """One more polling run with py-spy sampling every worker; not counted in the medians."""
        folded = RESULTS / f"{self.stamp}-{target.name}.folded"
        spies = [
            subprocess.Popen(
                [str(VENV_BIN / "py-spy"), "record", "-p", str(pid), "-d",
                 str(int(self.opts.duration)), "-r", "250", "--threads", "--nonblocking",
                 "-f", "raw", "-o", f"{folded}.{pid}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            for pid in server.worker_pids()
        ]
        offset = self.poll_offsets.get(target.name, 0)
        try:
            r = run_wrk(server, "poll.lua", self.opts.duration, self.opts.connections,
                        [target.paths["token"], prep.CLIENT_ID, str(codes_file), str(offset)])
        finally:
            for spy in spies:
                try:
                    spy.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(spy.pid, signal.SIGKILL)
        self.poll_offsets[target.name] = r.data.get(
            "next_offset", offset + r.data["requests"] + self.opts.connections)
        with open(folded, "w") as out:
            for part in sorted(RESULTS.glob(f"{folded.name}.*")):
                out.write(part.read_text())
                part.unlink()
        summary = subprocess.run(
            [sys.executable, str(BENCH / "profile_summary.py"), str(folded), "--top", "30"],
            capture_output=True, text=True, check=False).stdout
        folded.with_suffix(".txt").write_text(summary)
        log(f"  profile of {target.name}: {folded.with_suffix('.txt').relative_to(ROOT)}")
        return {"run": r.summary(), "folded": str(folded.relative_to(ROOT)),
                "summary": summary}

    def wait_quiet(self) -> None:
        """Wait (bounded) until the machine is idle (both CPUs under ``--quiet-cpu`` percent busy
        over 3 s), so others' test runs on this 2-core machine disturb the numbers less. Each
        run records the CPU others used during it either way (``other_cpu_pct``)."""
        deadline = time.monotonic() + self.opts.wait_quiet
        while time.monotonic() < deadline:
            c0 = cpu_times()
            time.sleep(3)
            c1 = cpu_times()
            busy = max(100 * (c1[n][0] - c0[n][0]) / max(c1[n][1] - c0[n][1], 1) for n in c1)
            if busy <= self.opts.quiet_cpu:
                return
            log(f"  machine busy ({busy:.0f}% of a CPU used by others): waiting")
            time.sleep(7)


def count_lines(path: Path) -> int:
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
        return sum(1 for _ in f)
    return 0


# ------------------------------------------------------------------------ PostgreSQL and Redis


def reset_postgres() -> None:
    drop_postgres()
    sh("psql", PG_ADMIN, "-qc", f"CREATE DATABASE {PG_DB}")


def drop_postgres() -> None:
    sh("psql", PG_ADMIN, "-qc", f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")


def pg_backend_pids() -> list[int]:
    out = sh("psql", PG_ADMIN, "-Atc",
             f"select pid from pg_stat_activity where datname = '{PG_DB}'", check=False)
    return [int(p) for p in out.split()]


def pg_stats() -> dict[str, Any]:
    row = sh("psql", PG_ADMIN, "-AtF,", "-c",
             "select xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, "
             f"tup_updated, sessions from pg_stat_database where datname = '{PG_DB}'",
             check=False)
    keys = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted",
            "tup_updated", "sessions")
    with contextlib.suppress(ValueError):
        return dict(zip(keys, (int(v) for v in row.split(",")), strict=True))
    return {}


def flush_redis() -> None:
    sh("redis-cli", "-h", "127.0.0.1", "-n", str(REDIS_DB), "FLUSHDB", check=False)


# ----------------------------------------------------------------------------------- report


FIGURES = (("rps", "req/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"))


def table(results: dict[str, Any]) -> str:
    rows = ["| target | scenario | req/s | p50 ms | p99 ms | server CPU µs/req | answers |",
            "|---|---|---:|---:|---:|---:|---|"]
    for name, r in results["targets"].items():
        if "error" in r:
            rows.append(f"| {name} | — | failed: {r['error'][:80]} | | | | |")
            continue
        for scen in ("discovery", "device", "poll", "scale"):
            if scen not in r:
                continue
            m = r[scen]["median"]
            label = scen if scen != "scale" else f"poll @ {r['scale']['pending_after']:,} pending"
            answers = ", ".join(f"{k} {v}" for k, v in sorted(m["answers"].items()))
            rows.append(f"| {name} | {label} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | "
                        f"{m['p99_ms']:.2f} | {m['server_cpu_us_per_req']:.0f} | {answers} |")
    return "\n".join(rows)


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    peer = results["targets"].get("oidc-provider", {})
    out: dict[str, Any] = {}
    for name, r in results["targets"].items():
        if not name.startswith("deviceflow") or "error" in r:
            continue
        for scen in ("discovery", "device", "poll"):
            if scen in r and scen in peer:
                out.setdefault(name, {})[scen] = {
                    k: round(r[scen]["median"][k] / peer[scen]["median"][k], 2)
                    for k, _ in FIGURES if peer[scen]["median"][k]
                }
    return out


def targets_met(results: dict[str, Any]) -> list[dict[str, Any]]:
    t = results["targets"]
    peer = t.get("oidc-provider")
    checks: list[dict[str, Any]] = []

    def add(what: str, value: float | None, goal: str, ok: bool | None) -> None:
        checks.append({"target": what, "value": value, "goal": goal,
                       "met": ok if value is not None else None})

    for name, r in t.items():
        if not name.startswith("deviceflow") or "error" in r or "poll" not in r:
            continue
        poll = r["poll"]["median"]
        floor = t.get("floor-granian" if "granian" in name else "floor-uvicorn")
        if peer and "poll" in peer:
            ratio = poll["rps"] / peer["poll"]["median"]["rps"]
            add(f"{name}: polling req/s vs oidc-provider", round(ratio, 2), "≥ 1.5×", ratio >= 1.5)
        if floor and "poll" in floor:
            ratio = poll["rps"] / floor["poll"]["median"]["rps"]
            add(f"{name}: polling req/s vs bare floor", round(ratio, 2), "≥ 0.70", ratio >= 0.7)
        add(f"{name}: polling p99 ms", poll["p99_ms"], "< 50 ms", poll["p99_ms"] < 50)
        if peer and "device" in peer and "device" in r:
            ratio = r["device"]["median"]["rps"] / peer["device"]["median"]["rps"]
            add(f"{name}: device authorization req/s vs oidc-provider", round(ratio, 2), "≥ 1×",
                ratio >= 1)
        if "scale" in r:
            s = r["scale"]["median"]
            drop = 1 - s["rps"] / poll["rps"]
            grow = s["p99_ms"] / poll["p99_ms"] - 1
            add(f"{name}: polling req/s at 100k pending vs empty, change",
                round(-drop, 3), "within ±20%", drop <= 0.2)
            add(f"{name}: polling p99 at 100k pending vs empty, change",
                round(grow, 3), "within +20%", grow <= 0.2)
            rss = [x for x in r["scale"]["rss_mb"] if x is not None]
            if rss:
                add(f"{name}: RSS per worker at 100k pending, MB", round(max(rss), 1),
                    "≤ 150 MB", max(rss) <= 150)
    return checks


# -------------------------------------------------------------------------------------- main


def use_source(which: str, tmp: Path) -> None:
    """Import deviceflow (here and in every server) from a snapshot of src/ at HEAD, so that
    half-finished edits in a shared working tree cannot change the code under test mid-run."""
    global prep, SRC_PATH
    if which != "worktree":
        commit = "HEAD" if which == "head" else which
        snap = tmp / "src-head"
        snap.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"],
                                 check=True, capture_output=True, timeout=60).stdout
        subprocess.run(["tar", "-x", "-C", str(snap)], input=archive, check=True, timeout=60)
        SRC_PATH = str(snap / "src")
        sys.path.insert(0, SRC_PATH)
    import prep as prep_module

    prep = prep_module
    import deviceflow

    log(f"deviceflow imported from {Path(deviceflow.__file__).parent}")


def preflight() -> None:
    for tool in ("wrk", "taskset", "node", "psql", "redis-cli"):
        if shutil.which(tool) is None:
            sys.exit(f"bench/run.py needs {tool!r} on PATH (wrk: apt-get install -y wrk)")
    if os.cpu_count() is None or os.cpu_count() < 2:  # type: ignore[operator]
        sys.exit("bench/run.py pins the server and wrk to CPUs 0 and 1: it needs 2 CPUs")
    if not (PEERS / "node_modules" / "oidc-provider").exists():
        log("installing the node peer: npm ci --prefix bench/peers")
        subprocess.run(["npm", "ci", "--prefix", str(PEERS)], check=True, timeout=300)


def main() -> None:
    # Stop cleanly on SIGTERM and on SIGINT even when started in the background (where a shell
    # ignores SIGINT): every server is killed in a finally block.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="5 s runs, 1 run each, 20k scale check: a smoke test, not a result")
    parser.add_argument("--targets", default="",
                        help="comma-separated target names (default: all): "
                        + ", ".join(t.name for t in ALL_TARGETS))
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--pool", type=int, default=20000,
                        help="at least this many device codes in the polling pool")
    parser.add_argument("--scale", type=int, default=None,
                        help="pending device codes to add for the scale check (default 100,000; "
                        "0: skip)")
    parser.add_argument("--profile", action="store_true",
                        help="after the polling runs of each deviceflow target, one more run "
                        "under py-spy; the folded stacks and a summary go to bench/results/")
    parser.add_argument("--quiet-cpu", type=float, default=10,
                        help="a CPU busier than this (percent) counts as a busy machine")
    parser.add_argument("--wait-quiet", type=float, default=120,
                        help="seconds to wait, before each target, for the load to drop")
    parser.add_argument("--experiments", default="",
                        help="also run each selected deviceflow target with these bench/"
                        "experiments.py patches: variants separated by ';', patches within a "
                        "variant by ','")
    parser.add_argument("--scenarios", default="",
                        help="comma-separated subset of discovery,device,poll (default: all)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="with --experiments: run only the variants")
    parser.add_argument("--src", default="head",
                        help="benchmark a snapshot of the committed src/ at HEAD (default) or at "
                        "a given commit, or 'worktree': the working tree as it is (others' edits "
                        "in progress included)")
    parser.add_argument("--out", default="", help="result file (default bench/results/<time>)")
    opts = parser.parse_args()
    if opts.quick:
        opts.duration, opts.runs, opts.pool = 5, 1, 3000
        opts.scale = 20_000 if opts.scale is None else opts.scale
        opts.wait_quiet = min(opts.wait_quiet, 10)
    elif opts.scale is None:
        opts.scale = 100_000
    wanted = [t for t in ALL_TARGETS
              if (t.name in opts.targets.split(",") if opts.targets else t.default)]
    if opts.scenarios:
        keep = tuple(opts.scenarios.split(","))
        wanted = [dataclasses.replace(t, scenarios=tuple(x for x in t.scenarios if x in keep))
                  for t in wanted]
    if not wanted:
        sys.exit(f"no such target: {opts.targets}")
    if not (VENV_BIN / "granian").exists():
        log("granian is not installed (pip install granian): skipping the granian targets")
        wanted = [t for t in wanted if t.asgi != "granian"]
    if opts.profile and not (VENV_BIN / "py-spy").exists():
        sys.exit("--profile needs py-spy: .venv/bin/pip install py-spy")
    if opts.experiments:
        variants = [
            dataclasses.replace(t, name=f"{t.name}+{v.replace(',', '+')}", experiments=v,
                                scale=False)
            for v in filter(None, opts.experiments.split(";"))
            for t in wanted if t.kind == "deviceflow"
        ]
        wanted = [t for t in wanted if not (opts.no_baseline and t.kind == "deviceflow")]
        wanted += variants
    preflight()

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(opts.out) if opts.out else RESULTS / f"server-load-{stamp}.json"
    results: dict[str, Any] = {
        "started": stamp, "options": vars(opts), "machine": machine(), "targets": {},
    }
    with tempfile.TemporaryDirectory(prefix="deviceflow-bench-") as tmp:
        use_source(opts.src, Path(tmp))
        results["machine"]["src"] = opts.src
        if opts.src != "worktree":  # a snapshot has no uncommitted changes
            results["machine"]["git"] = sh("git", "-C", str(ROOT), "rev-parse", "--short",
                                           "HEAD" if opts.src == "head" else opts.src)
        bench = Bench(opts, Path(tmp))
        bench.stamp = stamp
        for target in wanted:
            log(f"target {target.name}")
            try:
                results["targets"][target.name] = bench.run_target(target)
            except Exception as exc:  # one failing target must not lose the others
                log(f"  {target.name} failed: {type(exc).__name__}: {exc}")
                results["targets"][target.name] = {"error": f"{type(exc).__name__}: {exc}"}
            out.write_text(json.dumps(results, indent=2))
    results["ratios_vs_oidc_provider"] = ratios(results)
    results["targets_met"] = targets_met(results)
    out.write_text(json.dumps(results, indent=2))

    print(table(results))
    print("\nratio deviceflow / oidc-provider (req/s, p50, p99):")
    for name, per in results["ratios_vs_oidc_provider"].items():
        for scen, figs in per.items():
            print(f"  {name:32} {scen:10} " + "  ".join(f"{k} {v}" for k, v in figs.items()))
    print("\ntargets:")
    for c in results["targets_met"]:
        mark = {True: "met", False: "MISSED", None: "n/a"}[c["met"]]
        print(f"  {mark:6}  {c['target']}: {c['value']} (goal {c['goal']})")
    print(f"\nresults: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()

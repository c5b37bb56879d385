"""Real servers for tests: ``deviceflow serve`` subprocesses, a Redis of the test's own, a claimed
database number on the shared Redis, and a driver of the verification pages over HTTP.

- ``serve_subprocesses(names, db, log_dir, ...)`` starts one ``python -m deviceflow serve`` per
  name on free ports, all at once, and waits until each answers ``/healthz``; stopping sends
  SIGTERM (then SIGKILL) and closes the log file. Servers write their logs to a file, never to a
  pipe that could fill up and stall them (``ServerProcess.logs()`` reads it). With
  ``tls=make_test_tls(dir)`` (``tests/support/tls.py``) a server serves HTTPS with a certificate
  from the test's own CA; ``issuer_path="/tenant"`` makes its issuer a path issuer.
- ``own_redis(...)`` runs a ``redis-server`` on a free port that the test may stop and start
  again (``stop()`` / ``start()`` keep the port), with no persistence.
- ``claimed_redis_db()`` picks a database number on the machine's Redis that no other test run
  is using (a ``SET NX`` claim with an expiry), empties it, and empties it again afterwards.
- ``approve_via_http`` / ``deny_via_http`` drive GET/POST ``/device``, sign-in and consent the
  way a browser without JavaScript does; ``open_consent`` + ``ConsentPage.decide`` split the last
  step so several browser sessions can race on one code.
- ``migrated_database``, ``add_users``, ``add_client``, ``sql`` and ``scalar`` make a fresh
  SQLite or PostgreSQL database, seed it, and look into it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import anyio
import httpx
import pytest
import redis
from sqlalchemy import text

from deviceflow.protocol.models import ClientType, User
from deviceflow.server import identity
from deviceflow.server.embedded import free_port
from deviceflow.server.service import AdminService
from deviceflow.storage.sql.engine import create_store, upgrade

from .databases import fresh_postgres_database, require_postgres, sqlite_url
from .limits import GENEROUS_LIMITS
from .tls import TestTls

T = TypeVar("T")

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PASSWORD = "correct horse battery staple"
SCOPE = "openid profile offline_access"

REDIS_URL_ENV = "DEVICEFLOW_TEST_REDIS_URL"
"""The machine's Redis for tests (a base URL without a database number)."""
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
_CLAIM_KEY = "deviceflow-test:claim"
_CLAIMABLE_DBS = range(15, 7, -1)



# --- deviceflow serve as a subprocess ------------------------------------------------------------


@dataclass
class ServerProcess:
    """One ``deviceflow serve`` process on loopback."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)
    tls: TestTls | None = None
    """Served over HTTPS with this test CA's certificate (``--certfile``/``--keyfile``)."""
    issuer_path: str = ""
    """The issuer's path (``/tenant``), empty for a root issuer."""

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        """The ``--issuer`` it was started with."""
        return self.base_url + self.issuer_path

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What an httpx client passes as ``verify=`` to trust this server."""
        return self.tls.ssl_context() if self.tls is not None else True

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (uvicorn shuts down gracefully), SIGKILL after ``timeout``; returns the code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return int(self.process.returncode)


def serve_command(
    port: int, db: str, *, redis_url: str | None = None, interval: int = 1,
    limits: Mapping[str, str] = GENEROUS_LIMITS, extra: Sequence[str] = (),
    tls: TestTls | None = None, issuer_path: str = "",
) -> list[str]:
    """The ``deviceflow serve`` command line; ``limits`` by setting name (``limit_code_global``)
    override the generous defaults. With ``tls`` it serves HTTPS with that certificate and the
    issuer is ``https://``; ``issuer_path`` (``/tenant``) is appended to the issuer."""
    scheme = "https" if tls is not None else "http"
    command = [
        sys.executable, "-m", "deviceflow", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--db", db,
        "--issuer", f"{scheme}://127.0.0.1:{port}{issuer_path}", "--interval", str(interval),
        "--log-format", "text",
    ]
    if tls is not None:
        command += ["--certfile", str(tls.cert_file), "--keyfile", str(tls.key_file)]
    if redis_url is not None:
        command += ["--redis", redis_url]
    for name, value in {**GENEROUS_LIMITS, **limits}.items():
        command += ["--" + name.replace("_", "-"), value]
    return [*command, *extra]


def start_server(
    name: str, db: str, log_dir: Path, *, redis_url: str | None = None, interval: int = 1,
    limits: Mapping[str, str] = GENEROUS_LIMITS, extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None, tls: TestTls | None = None, issuer_path: str = "",
) -> ServerProcess:
    """Start a server without waiting for it (start several, then ``wait_ready`` each)."""
    port = free_port()
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")
    # Only what the command line says: no DEVICEFLOW_* from the test runner's environment.
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("DEVICEFLOW_")}
    child_env.update(env or {})
    try:
        process = subprocess.Popen(
            serve_command(port, db, redis_url=redis_url, interval=interval, limits=limits,
                          extra=extra, tls=tls, issuer_path=issuer_path),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=child_env,
        )
    except BaseException:
        log.close()
        raise
    return ServerProcess(name, port, process, log_path, log, tls, issuer_path)


def wait_ready(server: ServerProcess, timeout: float = 60.0) -> None:
    """Wait until ``/healthz`` answers 200; fail with the server's log if it exits or hangs."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2, verify=server.verify) as client:
        while True:
            if not server.alive():
                raise RuntimeError(
                    f"server {server.name} exited with {server.process.returncode}:\n"
                    + server.logs()[-4000:]
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(server.issuer + "/healthz").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"server {server.name} not ready after {timeout} s:\n"
                                   + server.logs()[-4000:])
            time.sleep(0.05)


@contextlib.contextmanager
def serve_subprocesses(
    names: Sequence[str], db: str, log_dir: Path, **options: Any
) -> Iterator[list[ServerProcess]]:
    """Start one server per name on one database, all at once (as hosts of a fleet start), wait
    for every one, and stop them all when the block ends."""
    servers: list[ServerProcess] = []
    try:
        for name in names:
            servers.append(start_server(name, db, log_dir, **options))
        for server in servers:
            wait_ready(server)
        yield servers
    finally:
        for server in servers:
            server.stop()


# --- Redis ---------------------------------------------------------------------------------------


def shared_redis_url() -> str:
    return (os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL).rstrip("/")


SKIP_REDIS_ENV = "DEVICEFLOW_SKIP_REDIS"


def skip_redis() -> bool:
    """Whether ``DEVICEFLOW_SKIP_REDIS=1`` asks to skip the tests that need Redis."""
    return os.environ.get(SKIP_REDIS_ENV, "").strip() == "1"


def require_redis() -> None:
    """Skip when ``DEVICEFLOW_SKIP_REDIS=1``; fail when the machine's Redis is unreachable (CI
    runs it, as it runs PostgreSQL: a missing server is a broken environment)."""
    if skip_redis():
        pytest.skip(f"{SKIP_REDIS_ENV}=1")
    if not redis_available():
        pytest.fail(
            f"Redis is not reachable at {shared_redis_url()} "
            f"(set {REDIS_URL_ENV}, or {SKIP_REDIS_ENV}=1 to skip these tests)",
            pytrace=False,
        )


def redis_available(url: str | None = None) -> bool:
    try:
        client = redis.Redis.from_url(url or shared_redis_url(), socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


@contextlib.contextmanager
def claimed_redis_db() -> Iterator[str]:
    """A database number of the machine's Redis that this run alone uses: claimed with
    ``SET NX`` (expiring, in case a run is killed), emptied before and after. Yields its URL."""
    base = shared_redis_url()
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    for db in _CLAIMABLE_DBS:
        client = redis.Redis.from_url(f"{base}/{db}", socket_connect_timeout=2)
        try:
            if not client.set(_CLAIM_KEY, token, nx=True, ex=1800):
                continue
            client.flushdb()
            client.set(_CLAIM_KEY, token, ex=1800)
            try:
                yield f"{base}/{db}"
            finally:
                client.flushdb()
            return
        finally:
            client.close()
    raise RuntimeError(f"every test database of {base} ({list(_CLAIMABLE_DBS)}) is claimed")


@dataclass
class OwnRedis:
    """A ``redis-server`` this test owns: stop it mid-run, start it again on the same port."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def binary_available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        self._log = (self.workdir / f"redis-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not redis_available(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        # Until the port refuses connections, clients might still reach the old server.
        deadline = time.monotonic() + 5
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def own_redis(workdir: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(free_port(), workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- the verification pages, as a browser without JavaScript drives them -------------------------

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_USER_CODE_FIELD = re.compile(r'name="user_code" value="([^"]*)"')
DEVICE_CONNECTED = "Device connected"
REQUEST_DENIED = "Request denied"


class PageError(AssertionError):
    """A page did not look the way the flow expects; carries the response for the message."""

    def __init__(self, step: str, response: httpx.Response) -> None:
        super().__init__(f"{step}: HTTP {response.status_code} at {response.url}\n"
                         f"{response.text[:2000]}")
        self.response = response


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    if match is None:
        raise AssertionError("no csrf_token field on the page")
    return match.group(1)


def browser(base_url: str, *, timeout: float = 30.0) -> httpx.Client:
    """A fresh browser: its own cookie jar (so its own session), following redirects."""
    return httpx.Client(base_url=base_url, follow_redirects=True, timeout=timeout)


@dataclass
class ConsentPage:
    """A browser session that entered a code, signed in and now shows the consent page."""

    client: httpx.Client
    user_code: str
    csrf_token: str
    response: httpx.Response

    def decide(self, decision: str) -> DecisionResult:
        """Press Approve (``approve``) or Deny (``deny``) and follow to the result page."""
        response = self.client.post("/device/consent", data={
            "csrf_token": self.csrf_token, "user_code": self.user_code, "decision": decision,
        })
        text = response.text
        recorded = response.status_code == 200 and (
            (DEVICE_CONNECTED if decision == "approve" else REQUEST_DENIED) in text
        ) and 'role="status"' in text
        return DecisionResult(recorded, response.status_code, text)


@dataclass(frozen=True)
class DecisionResult:
    recorded: bool
    """The result page ("Device connected" / "Request denied", in ``role="status"``) was shown:
    the decision was stored."""
    status: int
    text: str


def sign_in(client: httpx.Client, username: str, password: str) -> httpx.Response:
    """Sign in from the sign-in page before entering any code (what the code page suggests once
    the anonymous budget is spent); returns the page it leads to (the code form)."""
    form = client.get("/device/signin")
    if form.status_code != 200:
        raise PageError("sign-in form", form)
    page = client.post("/device/signin", data={
        "csrf_token": csrf_of(form.text), "username": username, "password": password,
    })
    if page.status_code != 200 or page.url.path != "/device":
        raise PageError("sign-in", page)
    return page


def open_consent(
    client: httpx.Client, user_code: str, username: str, password: str, *,
    sign_in_first: bool = False,
) -> ConsentPage:
    """GET the code form (pre-filled as by ``verification_uri_complete``), read its CSRF token,
    POST the code, sign in (unless this session is signed in already, or ``sign_in_first``
    signs in before the code is entered, spending the account's budget instead of the anonymous
    ones), and stop on the consent page."""
    if sign_in_first:
        sign_in(client, username, password)
    form = client.get("/device", params={"user_code": user_code})
    if form.status_code != 200:
        raise PageError("code form", form)
    entered = client.post("/device", data={"csrf_token": csrf_of(form.text),
                                           "user_code": user_code})
    if entered.status_code != 200:
        raise PageError("code entry", entered)
    page = entered
    if entered.url.path == "/device/signin":
        page = client.post("/device/signin", data={
            "csrf_token": csrf_of(entered.text), "username": username, "password": password,
        })
    if page.status_code != 200 or page.url.path != "/device/consent":
        raise PageError("sign-in", page)
    shown = _USER_CODE_FIELD.search(page.text)
    if shown is None:
        raise PageError("consent page without a user code", page)
    return ConsentPage(client, shown.group(1), csrf_of(page.text), page)


def _decide_via_http(
    decision: str, base_url: str, user_code: str, username: str, password: str,
    sign_in_first: bool,
) -> DecisionResult:
    with browser(base_url) as client:
        try:
            consent = open_consent(client, user_code, username, password,
                                   sign_in_first=sign_in_first)
        except PageError as exc:
            # A refused code (unknown, expired, used, decided) is an answer, not a broken page.
            if exc.response.status_code == 400 and 'role="alert"' in exc.response.text:
                return DecisionResult(False, 400, exc.response.text)
            raise
        return consent.decide(decision)


def approve_via_http(
    base_url: str, user_code: str, username: str, password: str, *, sign_in_first: bool = False
) -> bool:
    """Approve ``user_code`` through the pages in a fresh browser session; True when the page
    said "Device connected" (the approval is stored), False when the code was refused. Anything
    else (a 5xx, a 429, a page without its form) raises ``PageError``."""
    return _decide_via_http("approve", base_url, user_code, username, password,
                            sign_in_first).recorded


def deny_via_http(
    base_url: str, user_code: str, username: str, password: str, *, sign_in_first: bool = False
) -> bool:
    """Deny ``user_code`` through the pages; True when the page said "Request denied"."""
    return _decide_via_http("deny", base_url, user_code, username, password,
                            sign_in_first).recorded


# --- the device side -----------------------------------------------------------------------------


def authorize_device(
    client: httpx.Client | str, client_id: str, scope: str = "openid profile offline_access"
) -> dict[str, Any]:
    """POST /device_authorization; the JSON body (device_code, user_code, interval, …)."""
    if isinstance(client, str):
        with httpx.Client(base_url=client, timeout=30) as http:
            return authorize_device(http, client_id, scope)
    response = client.post("/device_authorization", data={"client_id": client_id, "scope": scope})
    if response.status_code != 200:
        raise PageError("device authorization", response)
    body: dict[str, Any] = response.json()
    return body


def poll_form(client_id: str, device_code: str) -> dict[str, str]:
    return {"grant_type": DEVICE_GRANT, "client_id": client_id, "device_code": device_code}


# --- seeding a database and looking into it ------------------------------------------------------


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code or from inside an event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, factory).result()


async def _with_admin(url: str, action: Callable[[AdminService], Awaitable[T]]) -> T:
    store = create_store(url, pool_size=2)
    try:
        return await action(AdminService(store))
    finally:
        await store.close()


def add_users(url: str, usernames: Iterable[str], password: str = PASSWORD) -> dict[str, str]:
    """Create users in the (migrated) database at ``url``; returns username → user id."""
    names = list(usernames)
    # argon2 takes about half a second per hash here: hash the one password once and store that
    # hash for everyone (what AdminService.add_user stores, minus a salt per user).
    password_hash = identity.hash_password(password)

    async def main() -> dict[str, str]:
        store = create_store(url, pool_size=2)
        made: dict[str, str] = {}
        try:
            async with store.unit_of_work() as uow:
                for name in names:
                    user = User(identity.new_user_id(), name, name, password_hash, time.time())
                    await uow.users.add(user)
                    made[name] = user.user_id
                await uow.commit()
        finally:
            await store.close()
        return made

    return run_sync(main)


def add_client(
    url: str, client_id: str, *, lifetime: int | None = None,
    grants: Sequence[str] = (DEVICE_GRANT, "refresh_token"), redirect_uris: Sequence[str] = (),
) -> None:
    """A public client, by default with the device and refresh grants; ``lifetime`` overrides
    the codes'; ``redirect_uris`` for the authorization code grant."""

    async def action(admin: AdminService) -> None:
        await admin.add_client(
            client_id, f"Client {client_id}", ClientType.PUBLIC, list(grants),
            SCOPE.split(), lifetime, redirect_uris=list(redirect_uris),
        )

    run_sync(lambda: _with_admin(url, action))


def sql(url: str, statement: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Run one statement on ``url`` in its own committed transaction; its rows, if any."""

    async def main() -> list[tuple[Any, ...]]:
        store = create_store(url, pool_size=1)
        try:
            async with store.engine.begin() as conn:
                result = await conn.execute(text(statement), dict(params or {}))
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            await store.close()

    return run_sync(main)


def scalar(url: str, statement: str, params: Mapping[str, Any] | None = None) -> Any:
    return sql(url, statement, params)[0][0]


@contextlib.contextmanager
def migrated_database(kind: str, tmp: Path) -> Iterator[str]:
    """A fresh database of ``kind`` (``sqlite`` | ``postgres``) at the newest schema; a
    PostgreSQL one goes through ``require_postgres`` (unreachable fails) and is dropped after."""
    if kind == "sqlite":
        url = sqlite_url(tmp / "deviceflow.sqlite3")
        run_sync(lambda: upgrade(url))
        yield url
        return
    if kind != "postgres":
        raise ValueError(f"not a SQL backend: {kind!r}")
    require_postgres()
    with fresh_postgres_database() as url:
        run_sync(lambda: upgrade(url))
        yield url


__all__ = [
    "DEFAULT_REDIS_URL",
    "DEVICE_CONNECTED",
    "DEVICE_GRANT",
    "GENEROUS_LIMITS",
    "PASSWORD",
    "REDIS_URL_ENV",
    "REQUEST_DENIED",
    "SCOPE",
    "SKIP_REDIS_ENV",
    "ConsentPage",
    "DecisionResult",
    "OwnRedis",
    "PageError",
    "ServerProcess",
    "add_client",
    "add_users",
    "approve_via_http",
    "authorize_device",
    "browser",
    "claimed_redis_db",
    "csrf_of",
    "deny_via_http",
    "migrated_database",
    "open_consent",
    "own_redis",
    "poll_form",
    "redis_available",
    "require_redis",
    "run_sync",
    "scalar",
    "serve_command",
    "serve_subprocesses",
    "shared_redis_url",
    "sign_in",
    "skip_redis",
    "sql",
    "start_server",
    "wait_ready",
]

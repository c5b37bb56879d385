"""Limits that hold when requests race (RFC 8628 §5.1, §3.1): N = 3 × the limit concurrent
attempts over HTTP let exactly the limit through, with the counters in process memory and in
Redis. Every budget: code entry per session, per IP and global; sign-in per account and per IP;
device authorization per client and IP, and the live-code cap per client.

The app runs in process on a PostgreSQL store: each lookup really waits on the database, so
racing requests interleave between the limit and the judgement as they do in production (the
SQLite store reads on the event loop's thread, which would serialize them).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from tests.support.limits import generous_limits
from tests.support.servers import claimed_redis_db, require_redis
from tests.support.stores import open_backend

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.models import ClientType
from deviceflow.server.ratelimit import BruteForcePolicy, Limiter
from deviceflow.server.service import AdminService
from deviceflow.server.web.app import create_app

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

ISSUER = "http://127.0.0.1:8000"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PASSWORD = "correct horse battery staple"
LIMIT = 4
N = 3 * LIMIT
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def key_digest(key: str) -> str:
    """What the log may show of a key: a 12-hex SHA-256 prefix (docs/security.md)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def wrong_code(n: int) -> str:
    letters = "BCDFGHJKLMNPQRSTVWXZ"
    return "".join(letters[(n * 7 + i * 3) % 20] for i in range(8))


class Server:
    def __init__(self, app: Any, admin: AdminService) -> None:
        self.app = app
        self.admin = admin

    def browser(self, ip: str) -> httpx.AsyncClient:
        """A fresh browser (its own cookie jar, so its own session) on ``ip``."""
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        return httpx.AsyncClient(transport=transport, base_url=ISSUER)


ServerFactory = Callable[..., Awaitable[Server]]


@pytest.fixture(params=["memory", "redis"])
def limits_storage(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Where the counters live: this process (None), or a claimed database of the Redis."""
    if request.param == "memory":
        yield None
        return
    require_redis()
    with claimed_redis_db() as url:
        yield url


@pytest.fixture
async def server(limits_storage: str | None, tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """``await server(limit_code_per_ip="4/hour")``: an app with one small budget."""
    stack: list[Any] = []
    async with open_backend("postgres", tmp_path) as backend:

        async def start(**limits: object) -> Server:
            settings = ServerSettings(
                issuer=ISSUER, db="sqlite:///unused.sqlite3", log_format="text",
                redis=limits_storage, **generous_limits(**limits),  # type: ignore[arg-type]
            )
            app = create_app(settings, store=backend.store)
            lifespan = app.router.lifespan_context(app)
            await lifespan.__aenter__()
            stack.append(lifespan)
            admin = AdminService(backend.store)
            await admin.add_client("tv", "TV", ClientType.PUBLIC, [DEVICE_GRANT], ["openid"])
            return Server(app, admin)

        try:
            yield start
        finally:
            for lifespan in reversed(stack):
                await lifespan.__aexit__(None, None, None)


async def enter_code(browser: httpx.AsyncClient, code: str, csrf: str | None = None
                     ) -> httpx.Response:
    if csrf is None:
        csrf = csrf_of((await browser.get("/device")).text)
    return await browser.post("/device", data={"csrf_token": csrf, "user_code": code})


async def sign_in(browser: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    page = await browser.get("/device/signin")
    return await browser.post("/device/signin", data={
        "csrf_token": csrf_of(page.text), "username": username, "password": password,
    })


def statuses(responses: list[httpx.Response]) -> dict[int, int]:
    counted: dict[int, int] = {}
    for r in responses:
        counted[r.status_code] = counted.get(r.status_code, 0) + 1
    return counted


async def race_fresh_sessions(srv: Server, ips: list[str]) -> list[httpx.Response]:
    """One fresh browser session per IP opens the code form; then all post a wrong code at
    once."""
    browsers = [srv.browser(ip) for ip in ips]
    try:
        forms = await asyncio.gather(*(b.get("/device") for b in browsers))
        return list(await asyncio.gather(*(
            enter_code(b, wrong_code(n), csrf_of(f.text))
            for n, (b, f) in enumerate(zip(browsers, forms, strict=True))
        )))
    finally:
        for b in browsers:
            await b.aclose()


# --- code entry --------------------------------------------------------------------------------


async def test_racing_wrong_codes_in_one_session(server: ServerFactory) -> None:
    srv = await server(limit_code_per_session=f"{LIMIT}/hour")
    async with srv.browser("198.51.100.7") as attacker:
        # One entry first: the session's budget key is made with the session, on first use.
        assert (await enter_code(attacker, wrong_code(N))).status_code == 400
        csrf = csrf_of((await attacker.get("/device")).text)
        answers = await asyncio.gather(*(enter_code(attacker, wrong_code(n), csrf)
                                         for n in range(N)))
    assert statuses(answers) == {400: LIMIT - 1, 429: N - LIMIT + 1}


async def test_racing_wrong_codes_from_one_ip(server: ServerFactory) -> None:
    srv = await server(limit_code_per_ip=f"{LIMIT}/hour")
    answers = await race_fresh_sessions(srv, ["198.51.100.7"] * N)  # a fresh session each
    assert statuses(answers) == {400: LIMIT, 429: N - LIMIT}


async def test_racing_wrong_codes_from_a_botnet_meet_the_global_budget(
    server: ServerFactory,
) -> None:
    srv = await server(limit_code_global=f"{LIMIT}/hour")
    answers = await race_fresh_sessions(srv, [f"198.51.100.{n + 1}" for n in range(N)])
    assert statuses(answers) == {400: LIMIT, 429: N - LIMIT}
    # Only the global budget is spent: every refused page offers sign-in.
    assert all("/device/signin" in r.text for r in answers if r.status_code == 429)


async def test_right_codes_give_their_unit_back(server: ServerFactory) -> None:
    """A busy server's real entries do not use up the global budget: each gives back its own
    unit, so after many right codes the wrong-code budget is whole."""
    srv = await server(limit_code_global=f"{LIMIT}/hour")
    codes = []
    async with srv.browser("192.0.2.1") as device:
        for _ in range(2 * LIMIT):
            response = await device.post("/device_authorization", data={"client_id": "tv"})
            codes.append(response.json()["user_code"])
    for n, code in enumerate(codes):
        async with srv.browser(f"203.0.113.{n + 1}") as person:
            entered = await enter_code(person, code)
            assert entered.status_code == 303, entered.text
    for n in range(LIMIT):
        async with srv.browser(f"198.51.100.{n + 1}") as bot:
            assert (await enter_code(bot, wrong_code(n))).status_code == 400
    async with srv.browser("198.51.100.200") as bot:
        assert (await enter_code(bot, wrong_code(99))).status_code == 429


# --- sign-in -----------------------------------------------------------------------------------


async def test_racing_wrong_passwords_at_one_account(server: ServerFactory) -> None:
    """The reported race: wrong passwords in parallel, then the right one, against 4/15 min."""
    srv = await server(limit_login_per_account=f"{LIMIT}/15 minutes")
    await srv.admin.add_user("alice", PASSWORD)
    browsers = [srv.browser(f"198.51.100.{n + 1}") for n in range(N)]
    try:
        answers = await asyncio.gather(*(sign_in(b, "alice", f"guess {n}")
                                         for n, b in enumerate(browsers)))
        assert statuses(answers) == {400: LIMIT, 429: N - LIMIT}
        # The right password is not judged either while the account's budget is spent.
        assert (await sign_in(browsers[0], "alice", PASSWORD)).status_code == 429
    finally:
        for b in browsers:
            await b.aclose()


async def test_racing_wrong_passwords_from_one_ip(server: ServerFactory) -> None:
    srv = await server(limit_login_per_ip=f"{LIMIT}/hour")
    browsers = [srv.browser("198.51.100.7") for _ in range(N)]
    try:
        answers = await asyncio.gather(*(sign_in(b, f"user{n}", "password1")
                                         for n, b in enumerate(browsers)))
    finally:
        for b in browsers:
            await b.aclose()
    assert statuses(answers) == {400: LIMIT, 429: N - LIMIT}


async def test_a_right_password_gives_its_unit_back(server: ServerFactory) -> None:
    srv = await server(limit_login_per_account=f"{LIMIT}/15 minutes")
    await srv.admin.add_user("alice", PASSWORD)
    for n in range(2 * LIMIT):
        async with srv.browser(f"203.0.113.{n + 1}") as person:
            assert (await sign_in(person, "alice", PASSWORD)).status_code == 303
    answers = []
    for n in range(LIMIT + 1):
        async with srv.browser(f"198.51.100.{n + 1}") as attacker:
            answers.append(await sign_in(attacker, "alice", f"guess {n}"))
    assert [r.status_code for r in answers] == [400] * LIMIT + [429]


# --- device authorization ----------------------------------------------------------------------


def assert_rate_limited(response: httpx.Response) -> None:
    """429, Retry-After, and the RFC 6749 §5.2 JSON body of a registered code."""
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "The server is temporarily unable to handle the request.",
    }


async def test_racing_device_authorizations_from_one_ip(server: ServerFactory) -> None:
    srv = await server(limit_device_authorization_per_ip=f"{LIMIT}/minute")
    async with srv.browser("192.0.2.1") as device:
        answers = await asyncio.gather(*(device.post("/device_authorization",
                                                     data={"client_id": "tv"})
                                         for _ in range(N)))
    assert statuses(answers) == {200: LIMIT, 429: N - LIMIT}
    for refused in (r for r in answers if r.status_code == 429):
        assert_rate_limited(refused)
    async with srv.browser("192.0.2.2") as elsewhere:  # another IP: its own budget
        ok = await elsewhere.post("/device_authorization", data={"client_id": "tv"})
        assert ok.status_code == 200


async def test_racing_device_authorizations_meet_the_live_code_cap(
    server: ServerFactory, limits_storage: str | None,
) -> None:
    srv = await server(limit_device_codes_per_client=LIMIT)
    await srv.admin.add_client("radio", "Radio", ClientType.PUBLIC, [DEVICE_GRANT], ["openid"])

    async def authorize(n: int, client_id: str = "tv") -> httpx.Response:
        async with srv.browser(f"198.51.100.{n + 1}") as device:
            return await device.post("/device_authorization", data={"client_id": client_id})

    answers = await asyncio.gather(*(authorize(n) for n in range(N)))
    assert statuses(answers) == {200: LIMIT, 429: N - LIMIT}
    refused = next(r for r in answers if r.status_code == 429)
    assert_rate_limited(refused)
    # The window is the code lifetime (600 s by default): Retry-After says when one frees up.
    assert 590 <= int(refused.headers["retry-after"]) <= 600
    assert (await authorize(0, "radio")).status_code == 200  # another client: its own cap
    if limits_storage is not None:
        # On Redis the counters expire by themselves, with the window: no purge needed.
        client = redis.Redis.from_url(limits_storage)
        try:
            ttls = {k: client.ttl(k) for k in client.scan_iter("LIMITS*live_codes*")}
            ttls |= {k: client.ttl(k) for k in client.scan_iter("LIMITS*device_codes*")}
        finally:
            client.close()
        assert len(ttls) == 2, ttls  # tv's and radio's
        assert all(0 < t <= 600 for t in ttls.values()), ttls


# --- the operator's warning --------------------------------------------------------------------


async def test_a_tripped_budget_is_logged_once_per_key_hashed(
    server: ServerFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    srv = await server(limit_code_per_ip=f"{LIMIT}/hour",
                       limit_device_authorization_per_ip=f"{LIMIT}/minute")
    caplog.set_level(logging.WARNING, logger="deviceflow.ratelimit")
    for _ in range(3):
        async with srv.browser("198.51.100.7") as attacker:
            await asyncio.gather(*(enter_code(attacker, wrong_code(n)) for n in range(N)))
        async with srv.browser("192.0.2.1") as device:
            await asyncio.gather(*(device.post("/device_authorization", data={"client_id": "tv"})
                                   for _ in range(N)))
    trips = [(r.budget, r.key_digest) for r in caplog.records  # type: ignore[attr-defined]
             if r.name == "deviceflow.ratelimit"]
    assert sorted(trips) == [
        ("code_per_ip", key_digest("198.51.100.7")),
        ("device_authorization_per_ip", key_digest("tv 192.0.2.1")),
    ]
    assert "198.51.100.7" not in caplog.text
    assert "192.0.2.1" not in caplog.text


# --- the refund, on the storage itself ---------------------------------------------------------


async def test_refund_gives_back_its_own_unit_and_never_an_older_one(
    limits_storage: str | None,
) -> None:
    """The refund is one atomic step (on Redis, one script): concurrent right attempts each
    give back exactly one unit, and what is removed is never stamped before the attempt began,
    so the window is never looser than if the right attempts had taken nothing."""
    uri = "async+memory://" if limits_storage is None else "async+" + limits_storage
    limiter = Limiter(BruteForcePolicy(code_per_ip=f"{N}/hour"), uri)
    try:
        checks = [limiter.check("code_per_ip", "198.51.100.7")]
        wrong = [await limiter.spend(checks) for _ in range(LIMIT)]
        await asyncio.sleep(0.01)
        right = await asyncio.gather(*(limiter.spend(checks) for _ in range(N - LIMIT)))
        assert all(v.allowed for v in wrong + right)
        await asyncio.gather(*(limiter.refund(v) for v in right))
        await asyncio.gather(*(limiter.refund(v) for v in right))  # twice: nothing more
        # Exactly the right attempts' units came back; the wrong ones' stayed.
        again = await asyncio.gather(*(limiter.spend(checks) for _ in range(N)))
        assert sum(v.allowed for v in again) == N - LIMIT
        if limits_storage is not None:
            key = checks[0].item.key_for(checks[0].name, checks[0].key)
            client = redis.Redis.from_url(limits_storage)
            try:
                stamps = [float(s) for s in client.lrange("LIMITS:" + key, 0, -1)]
            finally:
                client.close()
            first_wrong, first_right = wrong[0].held, right[0].held
            assert first_wrong is not None
            assert first_right is not None
            # Every wrong attempt's entry is still there (no refund took one of them).
            assert sum(first_wrong.since <= s < first_right.since for s in stamps) == LIMIT
    finally:
        await limiter.reset()
        await limiter.close()

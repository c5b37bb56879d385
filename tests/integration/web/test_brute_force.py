"""Brute force on the verification pages (RFC 8628 §5.1): each limit trips with 429 and
Retry-After while a legitimate person elsewhere still gets through.

Wrong user codes are limited per browser session, per client IP and globally; failed passwords
per account and per IP. Each test runs its own app with budgets of three.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from tests.support.limits import generous_limits

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.models import ClientType
from deviceflow.server.service import AdminService
from deviceflow.server.web.app import create_app
from deviceflow.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

ISSUER = "http://127.0.0.1:8000"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PASSWORD = "correct horse battery staple"
BUDGET = 3
WRONG_CODES = ("BCDF-GHJK", "LMNP-QRST", "VWXZ-BCDF", "GHJK-LMNP", "QRST-VWXZ")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


class Server:
    def __init__(self, store: MemoryStore, app: Any) -> None:
        self.app = app
        self.admin = AdminService(store)

    def browser(self, ip: str) -> httpx.AsyncClient:
        """A fresh browser (its own cookie jar, so its own session) on ``ip``."""
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        return httpx.AsyncClient(transport=transport, base_url=ISSUER)

    async def user_code(self) -> str:
        async with self.browser("192.0.2.1") as device:
            response = await device.post("/device_authorization", data={"client_id": "tv"})
        assert response.status_code == 200
        return str(response.json()["user_code"])


ServerFactory = Callable[..., Awaitable[Server]]


@pytest.fixture
async def server(anyio_backend: str) -> AsyncIterator[ServerFactory]:
    """``await server(limit_code_per_ip="3/hour")``: an app with one small budget."""
    stack: list[Any] = []

    async def start(**limits: str) -> Server:
        store = MemoryStore()
        settings = ServerSettings(
            issuer=ISSUER, db="sqlite:///unused.sqlite3", log_format="text",
            **generous_limits(**limits),
        )
        app = create_app(settings, store=store)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        stack.append(lifespan)
        srv = Server(store, app)
        await srv.admin.add_client("tv", "TV", ClientType.PUBLIC, [DEVICE_GRANT], ["openid"])
        await srv.admin.add_user("alice", PASSWORD)
        await srv.admin.add_user("bob", PASSWORD)
        return srv

    yield start
    for lifespan in reversed(stack):
        await lifespan.__aexit__(None, None, None)


async def enter_code(browser: httpx.AsyncClient, code: str) -> httpx.Response:
    page = await browser.get("/device")
    return await browser.post("/device", data={"csrf_token": csrf_of(page.text), "user_code": code})


async def sign_in(browser: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    page = await browser.get("/device/signin")
    return await browser.post("/device/signin", data={
        "csrf_token": csrf_of(page.text), "username": username, "password": password,
    })


def assert_throttled(response: httpx.Response) -> int:
    """429, a positive integer Retry-After, and a page that says to wait, the form still there."""
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert retry_after > 0
    assert 'role="alert"' in response.text
    assert "Too many attempts. Please wait" in response.text
    assert response.headers["cache-control"] == "no-store"
    return retry_after


def assert_let_through(response: httpx.Response, to: str) -> None:
    assert response.status_code == 303, response.text
    assert response.headers["location"] == to


# --- wrong user codes ------------------------------------------------------------------------


async def test_per_session_limit_trips_and_another_person_gets_through(
    server: ServerFactory,
) -> None:
    srv = await server(limit_code_per_session=f"{BUDGET}/hour")
    good = await srv.user_code()
    async with srv.browser("198.51.100.7") as attacker:
        for code in WRONG_CODES[:BUDGET]:
            assert (await enter_code(attacker, code)).status_code == 400
        assert_throttled(await enter_code(attacker, WRONG_CODES[BUDGET]))
        # Over the limit even a right code is not looked up: no oracle while throttled.
        assert_throttled(await enter_code(attacker, good))
    async with srv.browser("203.0.113.50") as person:
        assert_let_through(await enter_code(person, good), "/device/signin")


async def test_per_ip_limit_trips_across_fresh_sessions(server: ServerFactory) -> None:
    srv = await server(limit_code_per_ip=f"{BUDGET}/hour")
    good = await srv.user_code()
    for code in WRONG_CODES[:BUDGET]:
        async with srv.browser("198.51.100.7") as fresh_session:  # cookies dropped each time
            assert (await enter_code(fresh_session, code)).status_code == 400
    async with srv.browser("198.51.100.7") as fresh_session:
        assert_throttled(await enter_code(fresh_session, WRONG_CODES[BUDGET]))
    async with srv.browser("203.0.113.50") as person:
        assert_let_through(await enter_code(person, good), "/device/signin")


async def test_global_limit_trips_and_signing_in_first_lets_a_person_continue(
    server: ServerFactory,
) -> None:
    srv = await server(limit_code_global=f"{BUDGET}/hour")
    good = await srv.user_code()
    for n, code in enumerate(WRONG_CODES[:BUDGET]):
        async with srv.browser(f"198.51.100.{n + 1}") as bot:  # a botnet: new IP, new session
            assert (await enter_code(bot, code)).status_code == 400
    async with srv.browser("198.51.100.200") as bot:
        assert_throttled(await enter_code(bot, WRONG_CODES[BUDGET]))

    async with srv.browser("203.0.113.50") as person:
        # The global budget is spent for everyone anonymous, so the page offers to sign in …
        throttled = await enter_code(person, good)
        assert_throttled(throttled)
        assert "sign in first and you can go on entering codes" in throttled.text
        link = re.search(r'<a href="([^"]+)">Sign in</a>', throttled.text)
        assert link
        assert link.group(1) == "/device/signin"
        # … and a signed-in person enters codes against a budget of their own.
        assert_let_through(await sign_in(person, "alice", PASSWORD), "/device")
        assert_let_through(await enter_code(person, good), "/device/consent")
        consent = await person.get("/device/consent")
        decided = await person.post("/device/consent", data={
            "csrf_token": csrf_of(consent.text), "user_code": good, "decision": "approve",
        })
        assert_let_through(decided, "/device/done")
        assert "Device connected" in (await person.get("/device/done")).text


async def test_throttled_page_offers_sign_in_only_when_it_helps(server: ServerFactory) -> None:
    srv = await server(limit_code_per_session=f"{BUDGET}/hour")
    async with srv.browser("198.51.100.7") as attacker:
        for code in WRONG_CODES[:BUDGET]:
            await enter_code(attacker, code)
        throttled = await enter_code(attacker, WRONG_CODES[BUDGET])
    assert_throttled(throttled)
    assert ">Sign in</a>" not in throttled.text
    assert "sign in first" not in throttled.text


# --- passwords -------------------------------------------------------------------------------


async def test_per_account_password_limit_trips_and_others_sign_in(server: ServerFactory) -> None:
    srv = await server(limit_login_per_account=f"{BUDGET}/15 minutes")
    for n in range(BUDGET):
        async with srv.browser(f"198.51.100.{n + 1}") as attacker:
            assert (await sign_in(attacker, "alice", f"guess {n}")).status_code == 400
    async with srv.browser("198.51.100.100") as attacker:
        # Even the right password waits: the account is being guessed at.
        assert_throttled(await sign_in(attacker, "alice", PASSWORD))
    async with srv.browser("203.0.113.50") as person:
        assert_let_through(await sign_in(person, "bob", PASSWORD), "/device")


async def test_per_ip_password_limit_trips_and_others_sign_in(server: ServerFactory) -> None:
    srv = await server(limit_login_per_ip=f"{BUDGET}/hour")
    for n in range(BUDGET):
        async with srv.browser("198.51.100.7") as attacker:  # spraying many usernames
            assert (await sign_in(attacker, f"user{n}", "password1")).status_code == 400
    async with srv.browser("198.51.100.7") as attacker:
        throttled = await sign_in(attacker, "bob", "password1")
    assert_throttled(throttled)
    assert '<label for="password">Password</label>' in throttled.text
    async with srv.browser("203.0.113.50") as person:
        assert_let_through(await sign_in(person, "alice", PASSWORD), "/device")

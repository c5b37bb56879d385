"""Sign-ins on the verification pages kept on the server, on every store (memory, SQLite,
PostgreSQL): a copied cookie stops approving once its sign-in ends (sign-out, password change,
the user's removal, the operator's signout), the cookie holds only a random id, and approving
needs a password younger than ``approval_max_age``."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from tests.support.stores import Backend, open_backend

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.models import BrowserSessionStatus, ClientType
from deviceflow.server.service import AdminService, DeviceFlowService
from deviceflow.server.service.sessions import SESSION_ID_BYTES
from deviceflow.server.web.app import create_app

pytestmark = pytest.mark.anyio

ISSUER = "http://127.0.0.1:8000"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PASSWORD = "correct horse battery staple"
START = 1_800_000_000.0
SETTINGS = {
    "device_code_expires_in": 3600,  # codes outlive the sign-ins these tests let go stale
    "limit_code_per_session": "1000/hour",
    "limit_code_per_ip": "1000/hour",
    "limit_code_global": "1000/hour",
    "limit_code_per_account": "1000/hour",
    "limit_login_per_account": "1000/hour",
    "limit_login_per_ip": "1000/hour",
}
AGAIN = "Enter your password again to approve this device"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_USER_CODE = re.compile(r'name="user_code" value="([A-Z-]+)"')


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def cookie_state(browser: httpx.AsyncClient) -> dict[str, Any]:
    """What the signed cookie carries (Starlette: base64 JSON, a timestamp, a signature)."""
    value = browser.cookies["deviceflow_session"]
    payload = value.split(".")[0]
    state: dict[str, Any] = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    return state


@dataclass
class Pages:
    app: Starlette
    admin: AdminService
    clock: Clock
    backend: Backend

    @property
    def service(self) -> DeviceFlowService:
        service = self.app.state.service
        assert isinstance(service, DeviceFlowService)
        return service

    def browser(self, ip: str = "203.0.113.10") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        return httpx.AsyncClient(transport=transport, base_url=ISSUER)

    async def authorize_device(self, client_id: str = "tv") -> dict[str, Any]:
        async with self.browser("192.0.2.44") as device:
            response = await device.post("/device_authorization", data={
                "client_id": client_id, "scope": "openid profile",
            })
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def poll(self, device_code: str) -> httpx.Response:
        async with self.browser("192.0.2.44") as device:
            return await device.post("/token", data={
                "grant_type": DEVICE_GRANT, "client_id": "tv", "device_code": device_code,
            })

    async def session_status(self, session_id: str) -> BrowserSessionStatus | None:
        session_hash = self.service.keyring.hasher.browser_session(session_id)
        async with self.backend.store.unit_of_work() as uow:
            stored = await uow.browser_sessions.get(session_hash)
        return None if stored is None else stored.status


@contextlib.asynccontextmanager
async def open_pages(kind: str, tmp_path: Path, **settings: Any) -> AsyncIterator[Pages]:
    async with open_backend(kind, tmp_path) as backend:
        clock = Clock()
        config = ServerSettings(issuer=ISSUER, db="sqlite:///unused.sqlite3", log_format="text",
                                **{**SETTINGS, **settings})
        app = create_app(config, store=backend.store, clock=clock)
        async with app.router.lifespan_context(app):
            admin = AdminService(backend.store, clock)
            await admin.add_client("tv", "Living-room TV", ClientType.PUBLIC,
                                   [DEVICE_GRANT, "refresh_token"], ["openid", "profile"])
            await admin.add_user("alice", PASSWORD, "Alice")
            await admin.add_user("bob", PASSWORD, "Bob")
            yield Pages(app, admin, clock, backend)


@pytest.fixture(params=[
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
])
async def pages(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pages]:
    async with open_pages(request.param, tmp_path) as value:
        yield value

# --- steps, the way a browser does them ------------------------------------------------------


async def sign_in(browser: httpx.AsyncClient, username: str = "alice",
                  password: str = PASSWORD) -> httpx.Response:
    page = await browser.get("/device/signin")
    if page.status_code == 303:  # skipped while signed in: the form posts all the same
        page = await browser.get("/device")
    return await browser.post("/device/signin", data={
        "csrf_token": csrf_of(page.text), "username": username, "password": password,
    })


async def enter_code(browser: httpx.AsyncClient, code: str) -> httpx.Response:
    page = await browser.get("/device")
    return await browser.post("/device", data={"csrf_token": csrf_of(page.text),
                                               "user_code": code})


async def post_decision(browser: httpx.AsyncClient, consent_html: str,
                        decision: str) -> httpx.Response:
    code = _USER_CODE.search(consent_html)
    assert code
    return await browser.post("/device/consent", data={
        "csrf_token": csrf_of(consent_html), "user_code": code.group(1), "decision": decision,
    })


async def signed_in_at_consent(pages: Pages, browser: httpx.AsyncClient,
                               user_code: str) -> httpx.Response:
    """Sign in (if needed), enter the code, and open the consent page."""
    entered = await enter_code(browser, user_code)
    if entered.headers["location"] == "/device/signin":
        assert (await sign_in(browser)).headers["location"] == "/device/consent"
    consent = await browser.get("/device/consent")
    assert consent.status_code == 200, consent.text
    return consent


def copy_of(pages: Pages, browser: httpx.AsyncClient) -> httpx.AsyncClient:
    """A second browser holding a copy of ``browser``'s cookie jar (a stolen cookie)."""
    thief = pages.browser("198.51.100.66")
    thief.cookies = httpx.Cookies(browser.cookies)
    return thief


async def assert_pending(pages: Pages, device_code: str) -> None:
    polled = await pages.poll(device_code)
    assert polled.json()["error"] == "authorization_pending"


# --- ending a sign-in ends it for every copy of the cookie -----------------------------------


async def test_a_copied_cookie_no_longer_approves_after_sign_out(pages: Pages) -> None:
    grant = await pages.authorize_device()
    async with pages.browser() as owner:
        await sign_in(owner)
        async with copy_of(pages, owner) as thief:
            consent = await signed_in_at_consent(pages, thief, grant["user_code"])
            assert "Alice" in consent.text  # the copy works while the sign-in lives

            page = await owner.get("/device")
            out = await owner.post("/device/signout", data={"csrf_token": csrf_of(page.text)})
            assert out.headers["location"] == "/device"

            refused = await post_decision(thief, consent.text, "approve")
            assert (refused.status_code, refused.headers["location"]) == (303, "/device/signin")
            reopened = await thief.get("/device/consent")
            assert reopened.headers["location"] == "/device/signin"
    await assert_pending(pages, grant["device_code"])


@pytest.mark.parametrize("how", ["password-change", "operator-signout", "user-removed"])
async def test_an_operator_action_ends_every_sign_in_of_that_user(pages: Pages, how: str) -> None:
    grant = await pages.authorize_device()
    async with pages.browser() as first, pages.browser("203.0.113.11") as second, \
            pages.browser("203.0.113.12") as bobs:
        consents = [await signed_in_at_consent(pages, b, grant["user_code"])
                    for b in (first, second)]
        await sign_in(bobs, "bob")
        ids = [cookie_state(b)["signin"] for b in (first, second)]
        if how == "password-change":
            assert await pages.admin.set_password("alice", "a brand new password") is not None
        elif how == "operator-signout":
            assert await pages.admin.sign_out_user("alice") == 2
            assert await pages.admin.sign_out_user("alice") == 0
            assert await pages.admin.sign_out_user("nobody") is None
        else:
            assert await pages.admin.remove_user("alice") is not None
        assert [await pages.session_status(i) for i in ids] == [BrowserSessionStatus.REVOKED] * 2
        for browser, consent in zip((first, second), consents, strict=True):
            refused = await post_decision(browser, consent.text, "approve")
            assert refused.headers["location"] == "/device/signin"
        assert "Signed in as" in (await bobs.get("/device")).text  # another user: untouched
    await assert_pending(pages, grant["device_code"])


async def test_the_cookie_holds_a_random_id_and_storage_only_its_hmac(pages: Pages) -> None:
    async with pages.browser() as browser:
        await sign_in(browser)
        state = cookie_state(browser)
        session_id = state["signin"]
        assert not {"user_id", "auth_time"} & state.keys()
        assert isinstance(session_id, str)
        assert len(base64.urlsafe_b64decode(session_id + "=" * (-len(session_id) % 4))) == (
            SESSION_ID_BYTES
        )
        assert await pages.session_status(session_id) is BrowserSessionStatus.ACTIVE
        async with pages.backend.store.unit_of_work() as uow:
            assert await uow.browser_sessions.get(session_id) is None  # never the id itself


async def test_each_sign_in_gets_a_new_id_and_ends_the_one_it_replaces(pages: Pages) -> None:
    async with pages.browser() as browser:
        await sign_in(browser)
        first = cookie_state(browser)["signin"]
        await sign_in(browser, "bob")  # a shared browser: bob after alice
        second = cookie_state(browser)["signin"]
        assert second != first
        assert await pages.session_status(first) is BrowserSessionStatus.REVOKED
        assert await pages.session_status(second) is BrowserSessionStatus.ACTIVE
        assert "Bob" in (await browser.get("/device")).text


async def test_concurrent_sign_outs_of_one_session_end_it_once(pages: Pages) -> None:
    async with pages.browser() as browser:
        await sign_in(browser)
        session_id = cookie_state(browser)["signin"]
    results: list[bool] = []

    async def end() -> None:
        results.append(await pages.service.sessions.end(session_id))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(end)
    assert results.count(True) == 1
    assert await pages.service.sessions.current(session_id) is None


async def test_expired_sessions_are_purged(pages: Pages) -> None:
    async with pages.browser() as browser:
        await sign_in(browser)
        session_id = cookie_state(browser)["signin"]
        pages.clock.now += 8 * 3600 - 1
        assert await pages.service.sessions.purge_expired() == 0
        assert "Signed in as" in (await browser.get("/device")).text
        pages.clock.now += 2
        assert "Signed in as" not in (await browser.get("/device")).text
        assert await pages.service.sessions.purge_expired() == 1
        assert await pages.session_status(session_id) is None


# --- approval_max_age ------------------------------------------------------------------------


async def test_a_twenty_minute_old_sign_in_enters_the_password_again_to_approve(
    pages: Pages,
) -> None:
    async with pages.browser() as browser:
        await sign_in(browser)
        pages.clock.now += 20 * 60
        grant = await pages.authorize_device()

        entered = await enter_code(browser, grant["user_code"])
        assert entered.headers["location"] == "/device/signin"  # not straight to consent
        assert (await browser.get("/device/consent")).headers["location"] == "/device/signin"
        again = await browser.get("/device/signin")
        assert again.status_code == 200
        assert AGAIN in again.text
        assert 'value="alice"' in again.text  # the username is known
        assert '<label for="password">Password</label>' in again.text
        await assert_pending(pages, grant["device_code"])

        signed = await browser.post("/device/signin", data={
            "csrf_token": csrf_of(again.text), "username": "alice", "password": PASSWORD,
        })
        assert signed.headers["location"] == "/device/consent"
        consent = await browser.get("/device/consent")
        decided = await post_decision(browser, consent.text, "approve")
        assert decided.headers["location"] == "/device/done"
        assert "Device connected" in (await browser.get("/device/done")).text

    tokens = await pages.poll(grant["device_code"])
    assert tokens.status_code == 200
    jwks = KeySet.import_key_set(pages.service.keyring.jwks)  # type: ignore[arg-type]
    claims = jwt.decode(tokens.json()["id_token"], jwks).claims
    assert claims["auth_time"] == int(START + 20 * 60)  # the fresh sign-in, not the first


async def test_an_open_consent_page_asks_for_the_password_once_the_sign_in_is_stale(
    pages: Pages,
) -> None:
    grant = await pages.authorize_device()
    async with pages.browser() as browser:
        consent = await signed_in_at_consent(pages, browser, grant["user_code"])
        pages.clock.now += 15 * 60  # exactly approval_max_age: too old
        refused = await post_decision(browser, consent.text, "approve")
        assert (refused.status_code, refused.headers["location"]) == (303, "/device/signin")
        await assert_pending(pages, grant["device_code"])
        assert (await sign_in(browser)).headers["location"] == "/device/consent"
        consent = await browser.get("/device/consent")
        assert (await post_decision(browser, consent.text, "approve")).headers["location"] == (
            "/device/done"
        )
    assert (await pages.poll(grant["device_code"])).status_code == 200


async def test_a_stale_sign_in_may_still_deny(pages: Pages) -> None:
    grant = await pages.authorize_device()
    async with pages.browser() as browser:
        consent = await signed_in_at_consent(pages, browser, grant["user_code"])
        pages.clock.now += 30 * 60
        denied = await post_decision(browser, consent.text, "deny")
        assert denied.headers["location"] == "/device/done"
        assert "Request denied" in (await browser.get("/device/done")).text
    assert (await pages.poll(grant["device_code"])).json()["error"] == "access_denied"


async def test_signing_in_again_goes_through_the_password_budget(tmp_path: Path) -> None:
    async with (
        open_pages("memory", tmp_path, limit_login_per_account="2/hour") as pages,
        pages.browser() as browser,
    ):
        await sign_in(browser)
        pages.clock.now += 20 * 60
        grant = await pages.authorize_device()
        await enter_code(browser, grant["user_code"])
        for _ in range(2):
            wrong = await sign_in(browser, password="not the password")
            assert wrong.status_code == 400
            assert AGAIN in wrong.text
        throttled = await sign_in(browser)  # the right password, past the budget
        assert throttled.status_code == 429
        assert "Retry-After" in throttled.headers
        assert (await browser.get("/device/consent")).headers["location"] == (
            "/device/signin"
        )


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_the_background_purge_deletes_expired_sign_ins(tmp_path: Path, kind: str) -> None:
    async with open_pages(kind, tmp_path, purge_interval=0.05) as pages:
        async with pages.browser() as browser:
            await sign_in(browser)
            session_id = cookie_state(browser)["signin"]
        pages.clock.now += 8 * 3600 + 1
        with anyio.fail_after(10):
            while await pages.session_status(session_id) is not None:
                await anyio.sleep(0.05)

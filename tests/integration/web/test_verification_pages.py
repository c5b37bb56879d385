"""The verification pages through HTTP (RFC 8628 §3.3, §5.1, §5.4, §6.1): the whole flow, CSRF,
headers, escaping, session reuse, Back/reopen after a decision, and refusals that are no oracle."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from tests.support.limits import generous_limits

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.codes import display_user_code
from deviceflow.protocol.models import ClientType
from deviceflow.server.service import AdminService
from deviceflow.server.web.app import create_app
from deviceflow.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

ISSUER = "http://127.0.0.1:8000"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}
SESSION_LIFETIME = 300
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Clock:
    """The app's clock (service and pages share it): tests move it to expire codes and sessions."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def without_csrf(html: str) -> str:
    return _CSRF.sub('name="csrf_token" value="…"', html)


@dataclass
class Harness:
    app: Starlette
    admin: AdminService
    clock: Clock
    seen: list[httpx.Response] = field(default_factory=list)

    def browser(self, ip: str = "203.0.113.10") -> httpx.AsyncClient:
        """A fresh browser (own cookie jar) talking from ``ip``."""
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))

        async def remember(response: httpx.Response) -> None:
            self.seen.append(response)

        return httpx.AsyncClient(
            transport=transport, base_url=ISSUER, event_hooks={"response": [remember]}
        )

    async def client(self, client_id: str, name: str = "Living-room TV",
                     grants: tuple[str, ...] = (DEVICE_GRANT, "refresh_token")) -> None:
        await self.admin.add_client(
            client_id, name, ClientType.PUBLIC, list(grants),
            ["openid", "profile", "offline_access"],
        )

    async def user(self, username: str, name: str = "") -> None:
        await self.admin.add_user(username, PASSWORD, name)

    async def authorize_device(
        self, client_id: str, *, ip: str = "192.0.2.44", user_agent: str = "tv-app/2.1 (WebOS)",
        scope: str = "openid profile offline_access",
    ) -> dict[str, Any]:
        async with self.browser(ip) as device:
            response = await device.post(
                "/device_authorization",
                data={"client_id": client_id, "scope": scope},
                headers={"User-Agent": user_agent},
            )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def poll(self, client_id: str, device_code: str) -> httpx.Response:
        async with self.browser("192.0.2.44") as device:
            return await device.post("/token", data={
                "grant_type": DEVICE_GRANT, "client_id": client_id, "device_code": device_code,
            })


@pytest.fixture
async def harness(anyio_backend: str) -> AsyncIterator[Harness]:
    store = MemoryStore()
    clock = Clock()
    settings = ServerSettings(
        issuer=ISSUER, db="sqlite:///unused.sqlite3", log_format="text",
        session_lifetime=SESSION_LIFETIME, **generous_limits(),
    )
    app = create_app(settings, store=store, clock=clock)
    async with app.router.lifespan_context(app):
        yield Harness(app, AdminService(store, clock), clock)


# --- steps, the way a browser does them ------------------------------------------------------


async def enter_code(browser: httpx.AsyncClient, code: str) -> httpx.Response:
    page = await browser.get("/device")
    return await browser.post(
        "/device", data={"csrf_token": csrf_of(page.text), "user_code": code}
    )


async def sign_in(
    browser: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> httpx.Response:
    page = await browser.get("/device/signin")
    return await browser.post("/device/signin", data={
        "csrf_token": csrf_of(page.text), "username": username, "password": password,
    })


async def decide(browser: httpx.AsyncClient, decision: str) -> httpx.Response:
    page = await browser.get("/device/consent")
    assert page.status_code == 200, page.text
    code = re.search(r'name="user_code" value="([A-Z-]+)"', page.text)
    assert code
    return await browser.post("/device/consent", data={
        "csrf_token": csrf_of(page.text), "user_code": code.group(1), "decision": decision,
    })


async def approve_as(
    harness: Harness, browser: httpx.AsyncClient, user_code: str, username: str,
    decision: str = "approve",
) -> httpx.Response:
    entered = await enter_code(browser, user_code)
    assert entered.status_code == 303, entered.text
    if entered.headers["location"] == "/device/signin":
        signed = await sign_in(browser, username)
        assert signed.headers["location"] == "/device/consent"
    decided = await decide(browser, decision)
    assert decided.status_code == 303
    assert decided.headers["location"] == "/device/done"
    return await browser.get("/device/done")


def assert_refused(response: httpx.Response) -> None:
    """The refusal: same page, code input still there, message in role=alert, never a 5xx."""
    assert response.status_code == 400
    assert 'role="alert"' in response.text
    assert "That code didn&#39;t work" in response.text
    assert 'id="user_code"' in response.text
    assert '<label for="user_code">Code</label>' in response.text


# --- the whole flow --------------------------------------------------------------------------


async def test_approve_flow_end_to_end(harness: Harness) -> None:
    await harness.client("tv")
    await harness.user("alice", "Alice Example")
    grant = await harness.authorize_device("tv")
    async with harness.browser("198.51.100.23") as browser:
        # verification_uri_complete pre-fills the code; nothing happens until Continue (§3.3.1).
        opened = await browser.get(grant["verification_uri_complete"])
        assert opened.status_code == 200
        assert f'value="{grant["user_code"]}"' in opened.text
        assert (await harness.poll("tv", grant["device_code"])).json()["error"] == (
            "authorization_pending"
        )

        entered = await browser.post("/device", data={
            "csrf_token": csrf_of(opened.text), "user_code": grant["user_code"],
        })
        assert (entered.status_code, entered.headers["location"]) == (303, "/device/signin")
        signin = await browser.get("/device/signin")
        assert signin.status_code == 200
        assert grant["user_code"] in signin.text
        signed = await browser.post("/device/signin", data={
            "csrf_token": csrf_of(signin.text), "username": "alice", "password": PASSWORD,
        })
        assert (signed.status_code, signed.headers["location"]) == (303, "/device/consent")

        consent = await browser.get("/device/consent")
        assert consent.status_code == 200
        text = consent.text
        assert "Living-room TV" in text
        assert grant["user_code"] in text
        assert "192.0.2.44" in text  # where the device asked from, not the browser
        assert "tv-app/2.1 (WebOS)" in text
        assert "15 January 2027, 08:00:00 UTC" in text
        assert "Only approve if you started this sign-in on a device in front of you." in text
        assert "See your name and username" in text
        assert "Stay signed in on this device (until you sign it out)" in text
        assert "Alice Example" in text

        decided = await browser.post("/device/consent", data={
            "csrf_token": csrf_of(text), "user_code": grant["user_code"], "decision": "approve",
        })
        assert (decided.status_code, decided.headers["location"]) == (303, "/device/done")
        done = await browser.get("/device/done")
        assert done.status_code == 200
        assert re.search(r'role="status"[^>]*>\s*<h1>Device connected</h1>', done.text)

    tokens = await harness.poll("tv", grant["device_code"])
    assert tokens.status_code == 200
    assert {"access_token", "id_token", "refresh_token"} <= tokens.json().keys()


STAY_SIGNED_IN = "Stay signed in on this device (until you sign it out)"


@pytest.mark.parametrize(
    ("grants", "scope", "stays"),
    [
        ((DEVICE_GRANT, "refresh_token"), "openid profile offline_access", True),
        ((DEVICE_GRANT, "refresh_token"), "openid profile", False),
        ((DEVICE_GRANT,), "openid offline_access", False),
        ((DEVICE_GRANT,), "openid", False),
    ],
    ids=["offline-access-and-grant", "no-offline-access", "no-refresh-grant", "neither"],
)
async def test_the_page_promises_staying_signed_in_exactly_when_a_refresh_token_comes(
    harness: Harness, grants: tuple[str, ...], scope: str, stays: bool,
) -> None:
    # One rule (refresh_token.issues_refresh_token) for the consent page and the token
    # endpoint: the page says "stay signed in" iff the token response holds a refresh token.
    await harness.client("tv", grants=grants)
    await harness.user("alice")
    grant = await harness.authorize_device("tv", scope=scope)
    async with harness.browser() as browser:
        entered = await enter_code(browser, grant["user_code"])
        assert entered.headers["location"] == "/device/signin"
        await sign_in(browser, "alice")
        consent = await browser.get("/device/consent")
        assert consent.status_code == 200
        assert (STAY_SIGNED_IN in consent.text) is stays
        # offline_access is never listed as a bare scope: the line above says it, or nothing.
        assert consent.text.count(STAY_SIGNED_IN) == (1 if stays else 0)
        await decide(browser, "approve")
    tokens = await harness.poll("tv", grant["device_code"])
    assert tokens.status_code == 200
    assert ("refresh_token" in tokens.json()) is stays


async def test_deny_flow_gives_the_device_access_denied(harness: Harness) -> None:
    await harness.client("tv")
    await harness.user("alice")
    grant = await harness.authorize_device("tv")
    async with harness.browser() as browser:
        done = await approve_as(harness, browser, grant["user_code"], "alice", "deny")
    assert re.search(r'role="status"[^>]*>\s*<h1>Request denied</h1>', done.text)
    assert "Device connected" not in done.text
    polled = await harness.poll("tv", grant["device_code"])
    assert polled.json()["error"] == "access_denied"


@pytest.mark.parametrize(
    "typed",
    [
        lambda c: c,
        lambda c: c.lower(),
        lambda c: c.replace("-", ""),
        lambda c: c.lower().replace("-", " "),
        lambda c: "  " + " ".join(c.replace("-", "")) + "  ",
        lambda c: c[:2] + "-" + c[2:].lower(),
    ],
    ids=["as-shown", "lowercase", "no-dash", "space-for-dash", "spaced-out", "odd-dash"],
)
async def test_code_entry_ignores_case_spaces_and_dashes(harness: Harness, typed: Any) -> None:
    """RFC 8628 §6.1: case-insensitive, punctuation and spaces ignored."""
    await harness.client("tv")
    grant = await harness.authorize_device("tv")
    async with harness.browser() as browser:
        entered = await enter_code(browser, typed(grant["user_code"]))
    assert (entered.status_code, entered.headers["location"]) == (303, "/device/signin")


# --- refusals are no oracle (§5.1) -----------------------------------------------------------


async def test_unknown_expired_used_and_denied_codes_are_indistinguishable(
    harness: Harness,
) -> None:
    await harness.client("tv")
    await harness.user("alice")
    expired = await harness.authorize_device("tv")
    harness.clock.now += 601  # default expires_in is 600 s
    used = await harness.authorize_device("tv")
    denied = await harness.authorize_device("tv")
    approved = await harness.authorize_device("tv")
    async with harness.browser() as approver:
        await approve_as(harness, approver, used["user_code"], "alice")
        await approve_as(harness, approver, denied["user_code"], "alice", "deny")
        await approve_as(harness, approver, approved["user_code"], "alice")
    assert (await harness.poll("tv", used["device_code"])).status_code == 200

    attempts = {
        "unknown": "BCDF-GHJK",
        "malformed": "hello!",
        "expired": expired["user_code"],
        "redeemed": used["user_code"],
        "denied": denied["user_code"],
        "approved-not-redeemed": approved["user_code"],
    }
    bodies: dict[str, str] = {}
    async with harness.browser("198.51.100.99") as guesser:
        for label, code in attempts.items():
            response = await enter_code(guesser, code)
            assert_refused(response)
            # What was typed comes back in its display form, to correct it (issue 12) …
            echoed = f'value="{html.escape(display_user_code(code))}"'
            assert echoed in response.text
            # … and that is all that differs: the reason for the refusal is not told.
            bodies[label] = without_csrf(response.text).replace(echoed, 'value="…"')
    assert len(set(bodies.values())) == 1, bodies.keys()


async def test_empty_code_asks_for_one_without_counting(harness: Harness) -> None:
    async with harness.browser() as browser:
        response = await enter_code(browser, "   ")
    assert response.status_code == 400
    assert "Enter the code shown on your device." in response.text
    # The message is tied to the input, as a refused code's is (issue 12).
    assert 'id="user_code_error"' in response.text
    assert 'aria-describedby="user_code_error user_code_hint" aria-invalid="true"' in response.text


# --- CSRF: a bad token consumes nothing and counts nothing -----------------------------------


@pytest.fixture
async def strict(anyio_backend: str) -> AsyncIterator[Harness]:
    """Budgets of one: any counted attempt would show up as a 429 on the next one."""
    store = MemoryStore()
    clock = Clock()
    settings = ServerSettings(
        issuer=ISSUER, db="sqlite:///unused.sqlite3", log_format="text",
        **generous_limits(limit_code_per_session="1/hour", limit_code_per_ip="1/hour",
                          limit_code_global="1/hour", limit_login_per_account="1/hour",
                          limit_login_per_ip="1/hour"),
    )
    app = create_app(settings, store=store, clock=clock)
    async with app.router.lifespan_context(app):
        yield Harness(app, AdminService(store, clock), clock)


@pytest.mark.parametrize("token", [None, "", "forged-token", "é-not-ascii"],
                         ids=["missing", "empty", "wrong", "non-ascii"])
async def test_bad_csrf_token_on_code_entry_spends_nothing(
    strict: Harness, token: str | None,
) -> None:
    await strict.client("tv")
    grant = await strict.authorize_device("tv")
    async with strict.browser() as browser:
        await browser.get("/device")
        for code in ("BCDF-GHJK", "BCDF-GHJK", grant["user_code"]):
            data = {"user_code": code}
            if token is not None:
                data["csrf_token"] = token
            refused = await browser.post("/device", data=data)
            assert refused.status_code == 403
            assert 'role="alert"' in refused.text
            assert f'value="{code}"' in refused.text  # the input is still there, as typed
            assert "aria-invalid" not in refused.text  # the form expired, not the code
        # Nothing was counted: the one wrong code allowed is still available …
        assert_refused(await enter_code(browser, "BCDF-GHJK"))
    async with strict.browser("198.51.100.1") as other:
        # … nothing was consumed: the code still works (a fresh session and IP; the global
        # budget of one wrong code is spent by the line above, so sign in first).
        await strict.user("alice")
        await sign_in(other, "alice")
        entered = await enter_code(other, grant["user_code"])
        assert (entered.status_code, entered.headers["location"]) == (303, "/device/consent")


async def test_bad_csrf_token_on_sign_in_counts_no_password_failure(strict: Harness) -> None:
    await strict.user("alice")
    async with strict.browser() as browser:
        await browser.get("/device/signin")
        for _ in range(3):
            refused = await browser.post("/device/signin", data={
                "csrf_token": "forged", "username": "alice", "password": "wrong",
            })
            assert refused.status_code == 403
            assert 'role="alert"' in refused.text
            assert 'value="alice"' in refused.text
        # A budget of one failure per account and IP: the forged posts counted none of it.
        wrong = await sign_in(browser, "alice", "still wrong")
        assert wrong.status_code == 400
        right = await sign_in(browser, "alice", PASSWORD)
        assert right.status_code == 429


async def test_bad_csrf_token_on_consent_records_nothing(harness: Harness) -> None:
    await harness.client("tv")
    await harness.user("alice")
    grant = await harness.authorize_device("tv")
    async with harness.browser() as browser:
        await enter_code(browser, grant["user_code"])
        await sign_in(browser, "alice")
        page = await browser.get("/device/consent")
        for decision in ("approve", "deny"):
            refused = await browser.post("/device/consent", data={
                "csrf_token": "forged", "user_code": grant["user_code"], "decision": decision,
            })
            assert refused.status_code == 403
            assert 'role="alert"' in refused.text
            assert "Approve" in refused.text
        assert (await harness.poll("tv", grant["device_code"])).json()["error"] == (
            "authorization_pending"
        )
        decided = await browser.post("/device/consent", data={
            "csrf_token": csrf_of(page.text), "user_code": grant["user_code"],
            "decision": "approve",
        })
        assert decided.headers["location"] == "/device/done"
    assert (await harness.poll("tv", grant["device_code"])).status_code == 200


async def test_sign_in_rotates_the_csrf_token(harness: Harness) -> None:
    await harness.user("alice")
    async with harness.browser() as browser:
        before = csrf_of((await browser.get("/device")).text)
        await sign_in(browser, "alice")
        after = csrf_of((await browser.get("/device")).text)
    assert before != after


# --- headers and escaping --------------------------------------------------------------------


async def test_every_page_carries_the_security_headers(harness: Harness) -> None:
    await harness.client("tv")
    await harness.user("alice")
    grant = await harness.authorize_device("tv")
    harness.seen.clear()
    async with harness.browser() as browser:
        await approve_as(harness, browser, grant["user_code"], "alice")
        await browser.get("/device/consent")  # Back after the decision
        await enter_code(browser, "BCDF-GHJK")  # refused
        await browser.post("/device", data={"user_code": "x"})  # no CSRF token
        await browser.post("/device", content=b"\xff\xfe", headers={
            "Content-Type": "application/x-www-form-urlencoded"})  # undecodable
        await browser.post("/device", json={"user_code": "x"})  # wrong content type
        page = await browser.get("/device")
        await browser.post("/device/signout", data={"csrf_token": csrf_of(page.text)})
        await sign_in(browser, "nobody", "nothing")  # refused
        await browser.get("/device/done")
    pages = [r for r in harness.seen if r.request.url.path.split("/")[1] == "device"]
    statuses = {r.status_code for r in pages}
    assert {200, 303, 400, 403} <= statuses
    assert all(s < 500 for s in statuses)
    for response in pages:
        for name, value in PAGE_HEADERS.items():
            assert response.headers.get(name) == value, (response.request.url, name)
        if response.status_code != 303:
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            assert "<script" not in response.text
            assert " style=" not in response.text
            assert "<style" not in response.text


async def test_session_cookie_is_httponly_and_samesite_lax(harness: Harness) -> None:
    async with harness.browser() as browser:
        response = await browser.get("/device")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


async def test_stylesheet_is_served(harness: Harness) -> None:
    async with harness.browser() as browser:
        page = await browser.get("/device")
        href = re.search(r'<link rel="stylesheet" href="([^"]+)"', page.text)
        assert href
        css = await browser.get(href.group(1))
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "min-height" in css.text


async def test_client_name_and_reflected_input_are_escaped(harness: Harness) -> None:
    evil = "<script>alert(1)</script>"
    await harness.client("evil", name=evil)
    await harness.user("alice", name='"><img src=x onerror=alert(2)>')
    grant = await harness.authorize_device("evil", user_agent=evil)
    async with harness.browser() as browser:
        opened = await browser.get("/device", params={"user_code": '"><script>alert(3)</script>'})
        assert "<script>" not in opened.text
        assert "&#34;&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in opened.text
        refused = await sign_in(browser, evil, "x")
        assert "<script>" not in refused.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in refused.text
        await enter_code(browser, grant["user_code"])
        await sign_in(browser, "alice")
        consent = await browser.get("/device/consent")
        assert consent.status_code == 200
        assert "<script>" not in consent.text
        assert "<img" not in consent.text
        assert consent.text.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2  # name and UA
        done = await decide(browser, "approve")
        result = await browser.get(done.headers["location"])
        assert "<script>" not in result.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in result.text


# --- the browser session ---------------------------------------------------------------------


async def test_sign_in_is_skipped_within_the_session_lifetime_and_asked_after(
    harness: Harness,
) -> None:
    await harness.client("tv")
    await harness.user("alice")
    async with harness.browser() as browser:
        first = await harness.authorize_device("tv")
        await approve_as(harness, browser, first["user_code"], "alice")

        harness.clock.now += SESSION_LIFETIME - 5
        second = await harness.authorize_device("tv")
        entered = await enter_code(browser, second["user_code"])
        assert entered.headers["location"] == "/device/consent"  # no password asked
        skipped = await browser.get("/device/signin")
        assert skipped.headers["location"] == "/device/consent"
        await decide(browser, "approve")

        harness.clock.now += 10  # now past the lifetime of the first sign-in
        third = await harness.authorize_device("tv")
        entered = await enter_code(browser, third["user_code"])
        assert entered.headers["location"] == "/device/signin"
        consent = await browser.get("/device/consent")
        assert consent.headers["location"] == "/device/signin"
        signed = await sign_in(browser, "alice")
        assert signed.headers["location"] == "/device/consent"


async def test_sign_out_forgets_the_sign_in(harness: Harness) -> None:
    await harness.client("tv")
    await harness.user("alice")
    async with harness.browser() as browser:
        await sign_in(browser, "alice")
        page = await browser.get("/device")
        assert "Signed in as" in page.text
        out = await browser.post("/device/signout", data={"csrf_token": csrf_of(page.text)})
        assert out.headers["location"] == "/device"
        grant = await harness.authorize_device("tv")
        entered = await enter_code(browser, grant["user_code"])
        assert entered.headers["location"] == "/device/signin"


async def test_wrong_password_and_unknown_user_read_the_same(harness: Harness) -> None:
    await harness.user("alice")
    async with harness.browser() as browser:
        wrong = await sign_in(browser, "alice", "not the password")
        unknown = await sign_in(browser, "zelda", "not the password")
    assert wrong.status_code == unknown.status_code == 400
    assert 'role="alert"' in wrong.text
    assert without_csrf(wrong.text).replace('value="alice"', "") == (
        without_csrf(unknown.text).replace('value="zelda"', "")
    )


# --- a decision is final: Back, reload, reopening the link -----------------------------------


async def test_back_and_reopen_after_approval_cannot_revive_the_code(harness: Harness) -> None:
    await harness.client("tv")
    await harness.user("alice")
    grant = await harness.authorize_device("tv")
    async with harness.browser() as browser:
        entered = await enter_code(browser, grant["user_code"])
        assert entered.status_code == 303
        await sign_in(browser, "alice")
        consent = await browser.get("/device/consent")
        await browser.post("/device/consent", data={
            "csrf_token": csrf_of(consent.text), "user_code": grant["user_code"],
            "decision": "approve",
        })
        # Back: the browser re-requests the consent page (no-store) …
        assert_refused(await browser.get("/device/consent"))
        # … or re-posts the old consent form with Deny.
        again = await browser.post("/device/consent", data={
            "csrf_token": csrf_of(consent.text), "user_code": grant["user_code"],
            "decision": "deny",
        })
        assert_refused(again)
        # Reopening verification_uri_complete and pressing Continue.
        reopened = await browser.get(grant["verification_uri_complete"])
        assert reopened.status_code == 200
        assert_refused(await browser.post("/device", data={
            "csrf_token": csrf_of(reopened.text), "user_code": grant["user_code"],
        }))
        # The result page still reads the stored decision.
        done = await browser.get("/device/done")
        assert "Device connected" in done.text
    assert (await harness.poll("tv", grant["device_code"])).status_code == 200


async def test_denied_code_cannot_be_approved_afterwards(harness: Harness) -> None:
    await harness.client("tv")
    await harness.user("alice")
    grant = await harness.authorize_device("tv")
    async with harness.browser() as browser:
        await enter_code(browser, grant["user_code"])
        await sign_in(browser, "alice")
        consent = await browser.get("/device/consent")
        form = {"csrf_token": csrf_of(consent.text), "user_code": grant["user_code"]}
        denied = await browser.post("/device/consent", data={**form, "decision": "deny"})
        assert denied.headers["location"] == "/device/done"
        assert_refused(await browser.post("/device/consent", data={**form, "decision": "approve"}))
    assert (await harness.poll("tv", grant["device_code"])).json()["error"] == "access_denied"


async def test_consent_from_an_older_tab_does_not_decide_the_newer_code(harness: Harness) -> None:
    await harness.client("tv")
    await harness.user("alice")
    first = await harness.authorize_device("tv")
    second = await harness.authorize_device("tv")
    async with harness.browser() as browser:
        await enter_code(browser, first["user_code"])
        await sign_in(browser, "alice")
        old_tab = await browser.get("/device/consent")
        await enter_code(browser, second["user_code"])  # another tab, same session
        response = await browser.post("/device/consent", data={
            "csrf_token": csrf_of(old_tab.text), "user_code": first["user_code"],
            "decision": "approve",
        })
        assert response.status_code == 409
        assert 'role="alert"' in response.text
        assert second["user_code"] in response.text
    for grant in (first, second):
        polled = await harness.poll("tv", grant["device_code"])
        assert polled.json()["error"] == "authorization_pending"


async def test_steps_out_of_order_redirect_instead_of_failing(harness: Harness) -> None:
    async with harness.browser() as browser:
        assert (await browser.get("/device/consent")).headers["location"] == "/device"
        assert (await browser.get("/device/done")).headers["location"] == "/device"
        assert (await browser.get("/device/signin")).status_code == 200
        page = await browser.get("/device")
        posted = await browser.post("/device/consent", data={
            "csrf_token": csrf_of(page.text), "decision": "approve",
        })
        assert posted.headers["location"] == "/device"


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"\xff\xfe=\xff", "application/x-www-form-urlencoded"),
        (b"user_code=A&user_code=B", "application/x-www-form-urlencoded"),
        (b"x" * (65 * 1024), "application/x-www-form-urlencoded"),
        (b'{"user_code": "x"}', "application/json"),
    ],
    ids=["non-utf8", "repeated-field", "too-large", "json"],
)
async def test_unreadable_forms_get_a_page_not_a_5xx(
    harness: Harness, content: bytes, content_type: str,
) -> None:
    async with harness.browser() as browser:
        for path in ("/device", "/device/signin", "/device/consent", "/device/signout"):
            response = await browser.post(path, content=content,
                                          headers={"Content-Type": content_type})
            assert response.status_code == 400, path
            assert 'role="alert"' in response.text
            assert response.headers["content-security-policy"] == CSP

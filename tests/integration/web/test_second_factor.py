"""The second factor on every store (memory, SQLite, PostgreSQL): enrolling an authenticator
app from /account/security (QR as inline SVG, the secret as text, a current code to confirm,
recovery codes shown once), then the "Verification code" step after the password, which accepts
a TOTP code or a recovery code once (RFC 6238 §5.2), also when two browsers race with the same
code, under the account's budget (spent before judged)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pyotp
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from tests.integration.web.test_browser_sessions import (
    Pages,
    csrf_of,
    enter_code,
    open_pages,
    post_decision,
    sign_in,
)

from deviceflow.server.secretbox import SEALED_PREFIX
from deviceflow.server.web.pages import SECURITY_HEADERS

pytestmark = pytest.mark.anyio

_SECRET = re.compile(r'id="totp_secret">([A-Z2-7 ]+)<')
_RECOVERY = re.compile(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>")
REFUSED = "That code didn&#39;t work."


@pytest.fixture(params=[
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
])
async def pages(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pages]:
    async with open_pages(request.param, tmp_path, limit_mfa_per_account="1000/hour") as value:
        yield value


async def enrol(pages: Pages, browser: httpx.AsyncClient) -> tuple[pyotp.TOTP, list[str]]:
    """Sign in, set up the app from the account page, confirm: the app and recovery codes."""
    assert (await sign_in(browser)).status_code == 303
    page = await browser.get("/account/security")
    assert page.status_code == 200
    assert "Set up an authenticator app" in page.text
    started = await browser.post("/account/security/totp",
                                 data={"csrf_token": csrf_of(page.text)})
    assert started.headers["location"] == "/account/security/totp"
    setup = await browser.get("/account/security/totp")
    assert setup.status_code == 200
    assert '<svg role="img"' in setup.text
    assert "style=" not in setup.text.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert setup.headers["content-security-policy"] == \
        SECURITY_HEADERS["Content-Security-Policy"]
    match = _SECRET.search(setup.text)
    assert match
    app = pyotp.TOTP(match.group(1).replace(" ", ""))
    wrong = await browser.post("/account/security/totp/confirm", data={
        "csrf_token": csrf_of(setup.text), "otp": "000000" if app.at(pages.clock.now) != "000000"
        else "111111"})
    assert wrong.status_code == 400
    assert 'aria-invalid="true"' in wrong.text
    done = await browser.post("/account/security/totp/confirm", data={
        "csrf_token": csrf_of(wrong.text), "otp": app.at(pages.clock.now)})
    assert done.status_code == 200, done.text
    codes = _RECOVERY.findall(done.text)
    assert len(codes) == 10
    assert "Two-step verification is on" in (await browser.get("/account/security")).text
    return app, codes


async def password_step(browser: httpx.AsyncClient) -> httpx.Response:
    """The password, right: the answer sends to the second step; returns that page."""
    signed = await sign_in(browser)
    assert signed.headers["location"] == "/device/signin/verify"
    page = await browser.get("/device/signin/verify")
    assert page.status_code == 200
    assert '<label for="otp">Verification code</label>' in page.text
    assert ">Verify</button>" in page.text
    return page


async def verify(browser: httpx.AsyncClient, page: httpx.Response, code: str) -> httpx.Response:
    return await browser.post("/device/signin/verify", data={
        "csrf_token": csrf_of(page.text), "otp": code})


async def user_id(pages: Pages, username: str) -> str:
    async with pages.backend.store.unit_of_work(read_only=True) as uow:
        user = await uow.users.get_by_username(username)
    assert user is not None
    return user.user_id


async def is_signed_in(browser: httpx.AsyncClient) -> bool:
    return (await browser.get("/account/devices")).status_code == 200


async def test_enrol_then_sign_in_needs_a_fresh_code_each_time(pages: Pages) -> None:
    async with pages.browser() as owner:
        app, _ = await enrol(pages, owner)
    async with pages.browser() as browser:
        page = await password_step(browser)
        assert not await is_signed_in(browser)  # the password alone signs no one in
        assert (await browser.get("/device/signin/verify")).status_code == 200
        # The code that confirmed the enrolment is of this time step: used, so refused.
        replay = await verify(browser, page, app.at(pages.clock.now))
        assert replay.status_code == 400
        assert REFUSED in replay.text
        pages.clock.now += 30
        accepted = await verify(browser, replay, app.at(pages.clock.now))
        assert accepted.status_code == 303
        # Back to what sent it to sign in ("Your devices", asked for above).
        assert accepted.headers["location"] == "/account/devices"
        assert await is_signed_in(browser)
    async with pages.browser() as again:
        page = await password_step(again)
        reused = await verify(again, page, app.at(pages.clock.now))
        assert reused.status_code == 400  # the same code is accepted once
        assert not await is_signed_in(again)


async def test_a_recovery_code_works_once(pages: Pages) -> None:
    async with pages.browser() as owner:
        _, codes = await enrol(pages, owner)
    async with pages.browser() as browser:
        page = await password_step(browser)
        used = await verify(browser, page, codes[3].upper().replace("-", " "))
        assert used.status_code == 303
        assert await is_signed_in(browser)
    async with pages.browser() as browser:
        page = await password_step(browser)
        again = await verify(browser, page, codes[3])
        assert again.status_code == 400
        assert not await is_signed_in(browser)
    status = await pages.service.factors.status(await user_id(pages, "alice"))
    assert status.recovery_codes_left == 9


async def test_two_browsers_racing_with_one_code_sign_in_once(pages: Pages) -> None:
    async with pages.browser() as owner:
        app, _ = await enrol(pages, owner)
    pages.clock.now += 30
    code = app.at(pages.clock.now)
    async with pages.browser() as first, pages.browser() as second:
        page_1, page_2 = await password_step(first), await password_step(second)
        results = await asyncio.gather(verify(first, page_1, code),
                                       verify(second, page_2, code))
        assert sorted(r.status_code for r in results) == [303, 400]
        assert sorted([await is_signed_in(first), await is_signed_in(second)]) == [False, True]


async def test_the_secret_is_sealed_at_rest(pages: Pages) -> None:
    async with pages.browser() as owner:
        app, _ = await enrol(pages, owner)
    alice = await user_id(pages, "alice")
    async with pages.backend.store.unit_of_work(read_only=True) as uow:
        stored = await uow.factors.get_totp(alice)
    assert stored is not None
    assert stored.sealed_secret.startswith(SEALED_PREFIX)
    assert app.secret.encode() not in stored.sealed_secret


async def test_the_password_step_lapses(pages: Pages) -> None:
    async with pages.browser() as owner:
        await enrol(pages, owner)
    async with pages.browser() as browser:
        await password_step(browser)
        pages.clock.now += 5 * 60 + 1
        lapsed = await browser.get("/device/signin/verify")
        assert lapsed.headers["location"] == "/device/signin"


async def test_wrong_codes_spend_the_account_budget_before_judging(tmp_path: Path) -> None:
    async with open_pages("memory", tmp_path, limit_mfa_per_account="3/hour") as pages:
        async with pages.browser() as owner:
            app, _ = await enrol(pages, owner)  # one wrong confirmation: one unit spent
        pages.clock.now += 30
        right = app.at(pages.clock.now)
        wrong = "000000" if right != "000000" else "111111"
        async with pages.browser() as browser:
            page = await password_step(browser)
            outcomes = await asyncio.gather(*(verify(browser, page, wrong) for _ in range(6)))
            assert sorted(r.status_code for r in outcomes) == [400, 400] + [429] * 4
            throttled = await verify(browser, page, right)  # even the right code waits
            assert throttled.status_code == 429
            assert "Retry-After" in throttled.headers
            assert not await is_signed_in(browser)


async def approved_tokens(pages: Pages, browser: httpx.AsyncClient) -> dict[str, object]:
    """A device asks, the signed-in ``browser`` approves, the device polls: its token answer."""
    grant = await pages.authorize_device()
    entered = await enter_code(browser, grant["user_code"])
    assert entered.headers["location"] == "/device/consent"
    consent = await browser.get("/device/consent")
    decided = await post_decision(browser, consent.text, "approve")
    assert decided.headers["location"] == "/device/done"
    polled = await pages.poll(grant["device_code"])
    assert polled.status_code == 200, polled.text
    body: dict[str, object] = polled.json()
    return body


def claims(pages: Pages, body: dict[str, object], name: str) -> dict[str, object]:
    keys = KeySet.import_key_set(pages.service.keyring.jwks)  # type: ignore[arg-type]
    token = body[name]
    assert isinstance(token, str)
    return dict(jwt.decode(token, keys).claims)


async def test_the_device_grant_tokens_say_which_factors_were_used(pages: Pages) -> None:
    async with pages.browser() as owner:
        assert (await sign_in(owner)).status_code == 303
        password_only = await approved_tokens(pages, owner)  # before the app is set up
        app, _ = await enrol(pages, owner)
    assert claims(pages, password_only, "access_token")["amr"] == ["pwd"]
    assert claims(pages, password_only, "id_token")["amr"] == ["pwd"]
    pages.clock.now += 30
    async with pages.browser() as browser:
        page = await password_step(browser)
        assert (await verify(browser, page, app.at(pages.clock.now))).status_code == 303
        both = await approved_tokens(pages, browser)
    # RFC 8176 §2: a password, a one-time code, and so more than one factor.
    assert claims(pages, both, "access_token")["amr"] == ["pwd", "otp", "mfa"]
    assert claims(pages, both, "id_token")["amr"] == ["pwd", "otp", "mfa"]

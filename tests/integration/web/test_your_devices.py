""""Your devices" (/account/devices) on every store: the list names each signed-in device
(client, when approved, from where, last used, scopes), **Sign out** and "Sign out all devices"
revoke its refresh-token family, behind CSRF and a fresh sign-in, and only the person's own."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.web.test_browser_sessions import (
    DEVICE_GRANT,
    PASSWORD,
    Pages,
    csrf_of,
    open_pages,
    post_decision,
    sign_in,
    signed_in_at_consent,
)

from deviceflow.protocol.models import ClientType
from deviceflow.server.web.pages import SECURITY_HEADERS

pytestmark = pytest.mark.anyio

_FAMILY = re.compile(r'name="family_id" value="([0-9a-f]+)"')
DEVICE_UA = "LivingRoomTV/2.1 (webOS)"
STALE = 16 * 60  # past the default approval_max_age (15 min), within the session lifetime


@pytest.fixture(params=[
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
])
async def pages(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pages]:
    async with open_pages(request.param, tmp_path) as value:
        await value.admin.add_client("cli", "Kitchen Tablet", ClientType.PUBLIC,
                                     [DEVICE_GRANT, "refresh_token"],
                                     ["openid", "profile", "offline_access"])
        yield value


async def connect_device(pages: Pages, browser: httpx.AsyncClient, ip: str = "192.0.2.44",
                         ) -> dict[str, Any]:
    """A device asks for a code, the person signed in on ``browser`` approves, the device
    polls: its tokens (with a refresh token: offline_access)."""
    async with pages.browser(ip) as device:
        started = await device.post("/device_authorization", headers={"User-Agent": DEVICE_UA},
                                    data={"client_id": "cli",
                                          "scope": "openid profile offline_access"})
        assert started.status_code == 200, started.text
        grant = started.json()
        consent = await signed_in_at_consent(pages, browser, grant["user_code"])
        decided = await post_decision(browser, consent.text, "approve")
        assert decided.headers["location"] == "/device/done"
        polled = await device.post("/token", data={
            "grant_type": DEVICE_GRANT, "client_id": "cli", "device_code": grant["device_code"],
        })
    assert polled.status_code == 200, polled.text
    tokens: dict[str, Any] = polled.json()
    assert "refresh_token" in tokens
    return tokens


async def refresh(pages: Pages, refresh_token: str) -> httpx.Response:
    async with pages.browser("192.0.2.44") as device:
        return await device.post("/token", data={
            "grant_type": "refresh_token", "client_id": "cli", "refresh_token": refresh_token,
        })


def families(html: str) -> list[str]:
    return _FAMILY.findall(html)


async def test_a_device_is_listed_and_signed_out_and_its_refresh_fails(pages: Pages) -> None:
    async with pages.browser() as browser:
        tokens = await connect_device(pages, browser)
        done = await browser.get("/device/done")
        assert 'href="/account/devices"' in done.text  # linked from the success page
        pages.clock.now += 120
        refreshed = await refresh(pages, tokens["refresh_token"])
        assert refreshed.status_code == 200
        current = refreshed.json()["refresh_token"]

        page = await browser.get("/account/devices")
        assert page.status_code == 200
        for name, value in SECURITY_HEADERS.items():
            assert page.headers[name] == value
        assert "<script" not in page.text
        assert "Kitchen Tablet" in page.text
        assert "192.0.2.44" in page.text
        assert DEVICE_UA in page.text
        assert "See your name and username" in page.text
        assert ">Sign out</button>" in page.text
        assert ">Sign out all devices</button>" in page.text
        assert "15 January 2027, 08:00:00 UTC" in page.text  # approved (the test clock)
        assert "15 January 2027, 08:02:00 UTC" in page.text  # last used: the refresh
        [family] = families(page.text)

        out = await browser.post("/account/devices/signout", data={
            "csrf_token": csrf_of(page.text), "family_id": family})
        assert (out.status_code, out.headers["location"]) == (303, "/account/devices")
        after = await browser.get("/account/devices")
        assert re.search(r'role="status"[^>]*>\s*<p>Signed out\.</p>', after.text)
        assert families(after.text) == []
        assert "No devices are signed in" in after.text
        again = await browser.get("/account/devices")
        assert 'role="status"' not in again.text  # said once

    denied = await refresh(pages, current)
    assert (denied.status_code, denied.json()["error"]) == (400, "invalid_grant")


async def test_the_page_needs_a_sign_in_and_comes_back_to_it(pages: Pages) -> None:
    async with pages.browser() as browser:
        first = await browser.get("/account/devices")
        assert (first.status_code, first.headers["location"]) == (303, "/device/signin")
        signed = await sign_in(browser)
        assert signed.headers["location"] == "/account/devices"
        page = await browser.get("/account/devices")
        assert page.status_code == 200
        assert "Signed in as <strong>Alice</strong>" in page.text
        # The return is used once: the next sign-in goes where the verification pages go.
        assert (await sign_in(browser)).headers["location"] == "/device"


async def test_signing_out_needs_a_fresh_sign_in(pages: Pages) -> None:
    async with pages.browser() as browser:
        tokens = await connect_device(pages, browser)
        pages.clock.now += STALE
        page = await browser.get("/account/devices")
        assert page.status_code == 200  # looking is fine
        assert "asked for your password again" in page.text
        [family] = families(page.text)
        form = {"csrf_token": csrf_of(page.text), "family_id": family}
        for path in ("/account/devices/signout", "/account/devices/signout-all"):
            refused = await browser.post(path, data=form)
            assert (refused.status_code, refused.headers["location"]) == (303, "/device/signin")
        signin = await browser.get("/device/signin")
        assert signin.status_code == 200
        assert "Enter your password again to sign out devices" in signin.text
        assert 'value="alice"' in signin.text
        assert "connect the device" not in signin.text
        assert (await refresh(pages, tokens["refresh_token"])).status_code == 200  # untouched

        pages.clock.now += 1
        current = (await refresh(pages, tokens["refresh_token"])).json()
        assert "refresh_token" in current
        back = await browser.post("/device/signin", data={
            "csrf_token": csrf_of(signin.text), "username": "alice", "password": PASSWORD})
        assert back.headers["location"] == "/account/devices"
        page = await browser.get("/account/devices")
        out = await browser.post("/account/devices/signout", data={
            "csrf_token": csrf_of(page.text), "family_id": family})
        assert out.headers["location"] == "/account/devices"
    assert (await refresh(pages, current["refresh_token"])).json()["error"] == "invalid_grant"


@pytest.mark.parametrize("token", [None, "forged"], ids=["missing", "wrong"])
async def test_a_form_without_the_csrf_token_signs_nothing_out(pages: Pages,
                                                               token: str | None) -> None:
    async with pages.browser() as browser:
        tokens = await connect_device(pages, browser)
        page = await browser.get("/account/devices")
        [family] = families(page.text)
        data = {"family_id": family} | ({"csrf_token": token} if token else {})
        for path in ("/account/devices/signout", "/account/devices/signout-all"):
            refused = await browser.post(path, data=data)
            assert refused.status_code == 403
            assert 'role="alert"' in refused.text
            assert "expired" in refused.text
            assert families(refused.text) == [family]
    assert (await refresh(pages, tokens["refresh_token"])).status_code == 200


async def test_another_persons_device_cannot_be_signed_out_by_editing_the_id(
    pages: Pages,
) -> None:
    async with pages.browser() as alice, pages.browser("203.0.113.20") as bob:
        tokens = await connect_device(pages, alice)
        [alices] = families((await alice.get("/account/devices")).text)
        await sign_in(bob, "bob")
        page = await bob.get("/account/devices")
        assert families(page.text) == []  # bob sees none of alice's devices
        for family in (alices, "0" * 32, "x" * 5000, ""):
            refused = await bob.post("/account/devices/signout", data={
                "csrf_token": csrf_of(page.text), "family_id": family})
            assert refused.status_code == 409
            assert 'role="alert"' in refused.text
        # "Sign out all" of bob's (none) leaves alice's alone too.
        none = await bob.post("/account/devices/signout-all",
                              data={"csrf_token": csrf_of(page.text)})
        assert none.status_code == 409
        assert 'role="alert"' in none.text
    assert (await refresh(pages, tokens["refresh_token"])).status_code == 200


async def test_two_sign_out_all_at_once_sign_out_every_device_once(pages: Pages) -> None:
    async with pages.browser() as first, pages.browser("203.0.113.11") as second:
        device_tokens = [await connect_device(pages, first, f"192.0.2.{n}") for n in (1, 2, 3)]
        await sign_in(second)
        pages_html = [(await b.get("/account/devices")).text for b in (first, second)]
        assert all(len(families(html)) == 3 for html in pages_html)
        answers = await asyncio.gather(*(
            b.post("/account/devices/signout-all", data={"csrf_token": csrf_of(html)})
            for b, html in zip((first, second), pages_html, strict=True)
        ))
        statuses = sorted(a.status_code for a in answers)
        # Both signed some out, or one got there first and the other found none left.
        assert statuses in ([303, 303], [303, 409])
        assert families((await first.get("/account/devices")).text) == []
    for tokens in device_tokens:
        assert (await refresh(pages, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    # And counted once each, in the service, under real concurrency:
    async with pages.browser() as third:
        more = [await connect_device(pages, third) for _ in range(2)]
    [alice] = [u for u in await pages.admin.list_users() if u.username == "alice"]
    counts = await asyncio.gather(*(pages.service.devices.sign_out_all(alice.user_id)
                                    for _ in range(4)))
    assert sum(counts) == len(more)


async def test_the_session_cookie_covers_both_page_families_only(pages: Pages) -> None:
    async with pages.browser() as browser:
        page = await browser.get("/device")
        cookie = page.headers["set-cookie"].lower()
        assert "path=/;" in cookie
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        await sign_in(browser)
        footer = await browser.get("/device")
        assert '<a href="/account/devices">Your devices</a>' in footer.text
        token = await browser.post("/token", data={"grant_type": DEVICE_GRANT})
        assert "set-cookie" not in token.headers  # the token endpoint has no session


async def test_a_password_change_signs_the_persons_devices_out(pages: Pages) -> None:
    async with pages.browser() as browser:
        tokens = await connect_device(pages, browser)
    ended = await pages.admin.set_password("alice", "a brand new password")
    assert ended is not None
    assert (ended.browser_sessions, ended.devices) == (1, 1)
    assert (await refresh(pages, tokens["refresh_token"])).json()["error"] == "invalid_grant"


async def test_unreadable_forms_get_a_page_not_a_5xx(pages: Pages) -> None:
    async with pages.browser() as browser:
        await sign_in(browser)
        for path in ("/account/devices/signout", "/account/devices/signout-all"):
            response = await browser.post(path, content=b"\xff\xfe=\xff",
                                          headers={"Content-Type":
                                                   "application/x-www-form-urlencoded"})
            assert response.status_code == 400, path
            assert 'role="alert"' in response.text

"""Remembered consent over HTTP (issue 11) on memory, SQLite and PostgreSQL: the first approval
shows the full permissions list and is remembered; the next request of the client within it gets
the short confirmation (never no page: RFC 8628 §5.4); asking for more shows the list with the
new scopes marked; "Your devices" lists the consent and withdrawing it signs the client's
devices out (the refresh token is refused), with an audit row; concurrent withdrawals end it
once."""

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
    Pages,
    csrf_of,
    open_pages,
    post_decision,
    signed_in_at_consent,
)
from tests.integration.web.test_your_devices import refresh

from deviceflow.protocol.audit import AuditActor, AuditEventType, AuditQuery
from deviceflow.protocol.models import ClientType

pytestmark = pytest.mark.anyio

FULL = "What it asks for"
SHORT = "It asks for nothing more."
NEW = '<strong class="new-mark">new</strong>'


@pytest.fixture(params=[
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
])
async def pages(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pages]:
    async with open_pages(request.param, tmp_path) as value:
        await value.admin.add_client("cli", "Kitchen Tablet", ClientType.PUBLIC,
                                     [DEVICE_GRANT, "refresh_token"],
                                     ["openid", "profile", "email", "offline_access"])
        await value.admin.add_client("lamp", "Desk Lamp", ClientType.PUBLIC,
                                     [DEVICE_GRANT, "refresh_token"],
                                     ["openid", "offline_access"])
        yield value


async def start(pages: Pages, scope: str, client_id: str = "cli") -> dict[str, Any]:
    async with pages.browser("192.0.2.44") as device:
        started = await device.post("/device_authorization",
                                    data={"client_id": client_id, "scope": scope})
    assert started.status_code == 200, started.text
    body: dict[str, Any] = started.json()
    return body


async def approve(pages: Pages, browser: httpx.AsyncClient, grant: dict[str, Any],
                  client_id: str = "cli") -> dict[str, Any]:
    consent = await signed_in_at_consent(pages, browser, grant["user_code"])
    decided = await post_decision(browser, consent.text, "approve")
    assert decided.headers["location"] == "/device/done"
    async with pages.browser("192.0.2.44") as device:
        polled = await device.post("/token", data={
            "grant_type": DEVICE_GRANT, "client_id": client_id,
            "device_code": grant["device_code"]})
    assert polled.status_code == 200, polled.text
    tokens: dict[str, Any] = polled.json()
    return tokens


def scope_items(html: str) -> list[str]:
    found = re.search(r'<ul class="scopes">(.*?)</ul>', html, re.S)
    assert found, html
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", li)).strip()
            for li in re.findall(r"<li[^>]*>(.*?)</li>", found.group(1), re.S)]


async def test_the_second_sign_in_gets_the_short_confirmation(pages: Pages) -> None:
    async with pages.browser() as browser:
        first = await start(pages, "openid profile")
        page = await signed_in_at_consent(pages, browser, first["user_code"])
        assert FULL in page.text
        assert SHORT not in page.text
        assert NEW not in page.text  # nothing remembered: a plain list, nothing marked
        assert await post_decision(browser, page.text, "approve")

        pages.clock.now += 60
        second = await start(pages, "profile")  # asks for less than was granted
        page = await signed_in_at_consent(pages, browser, second["user_code"])
        assert page.status_code == 200
        assert SHORT in page.text
        assert FULL not in page.text
        assert 'class="scopes"' not in page.text
        # What RFC 8628 §5.4 needs is all still there: the client, the code, where, when.
        assert "Kitchen Tablet" in page.text
        assert second["user_code"] in page.text
        assert "192.0.2.44" in page.text
        assert "<time datetime=" in page.text
        assert re.findall(r'name="decision" value="(\w+)"', page.text) == ["approve", "deny"]
        decided = await post_decision(browser, page.text, "approve")
        assert decided.headers["location"] == "/device/done"
    async with pages.backend.store.unit_of_work(read_only=True) as uow:
        alice = await uow.users.get_by_username("alice")
        assert alice is not None
        consent = await uow.consents.get(alice.user_id, "cli")
    assert consent is not None
    assert consent.scopes == {"openid", "profile"}


async def test_asking_for_more_shows_the_list_with_the_new_scopes_marked(pages: Pages) -> None:
    async with pages.browser() as browser:
        await approve(pages, browser, await start(pages, "openid"))
        more = await start(pages, "openid email offline_access")
        page = await signed_in_at_consent(pages, browser, more["user_code"])
        assert FULL in page.text
        assert SHORT not in page.text
        assert "What it asks for now is marked" in page.text
        items = scope_items(page.text)
        assert items[0] == "Confirm who you are (your account identifier)"  # granted: unmarked
        assert items[1].endswith(" new")
        assert items[2].endswith(" new")
        assert "Stay signed in" in items[2]
        await post_decision(browser, page.text, "approve")
        # Now all of it is remembered: the same request is confirmed short.
        again = await start(pages, "openid email offline_access")
        page = await signed_in_at_consent(pages, browser, again["user_code"])
        assert SHORT in page.text


async def test_a_denial_is_not_remembered(pages: Pages) -> None:
    async with pages.browser() as browser:
        first = await start(pages, "openid")
        page = await signed_in_at_consent(pages, browser, first["user_code"])
        await post_decision(browser, page.text, "deny")
        second = await start(pages, "openid")
        page = await signed_in_at_consent(pages, browser, second["user_code"])
        assert FULL in page.text
        assert SHORT not in page.text


async def test_withdrawing_signs_the_clients_devices_out(pages: Pages) -> None:
    async with pages.browser() as browser:
        tokens = await approve(pages, browser, await start(pages, "openid offline_access"))
        pages.clock.now += 1
        other = await approve(pages, browser, await start(pages, "openid offline_access",
                                                          "lamp"), "lamp")
        page = await browser.get("/account/devices")
        assert "Applications you've allowed" in page.text
        assert '<h3 class="client">Kitchen Tablet</h3>' in page.text
        assert re.findall(r'name="client_id" value="([^"]+)"', page.text) == ["lamp", "cli"]

        forged = await browser.post("/account/devices/withdraw", data={
            "csrf_token": "forged", "client_id": "cli"})
        assert forged.status_code == 403
        rotated = await refresh(pages, tokens["refresh_token"])
        assert rotated.status_code == 200  # the forged post changed nothing
        current = rotated.json()["refresh_token"]

        done = await browser.post("/account/devices/withdraw", data={
            "csrf_token": csrf_of(page.text), "client_id": "cli"})
        assert (done.status_code, done.headers["location"]) == (303, "/account/devices")
        after = await browser.get("/account/devices")
        assert "Permission withdrawn. Its devices were signed out: 1." in after.text
        assert re.findall(r'name="client_id" value="([^"]+)"', after.text) == ["lamp"]
        again = await browser.post("/account/devices/withdraw", data={
            "csrf_token": csrf_of(after.text), "client_id": "cli"})
        assert again.status_code == 409

        # Next time the client asks, the full list is shown again.
        fresh = await start(pages, "openid")
        page = await signed_in_at_consent(pages, browser, fresh["user_code"])
        assert FULL in page.text
        assert SHORT not in page.text
    assert (await refresh(pages, current)).json()["error"] == "invalid_grant"
    # The other client's device is untouched.
    async with pages.browser("192.0.2.44") as device:
        kept = await device.post("/token", data={
            "grant_type": "refresh_token", "client_id": "lamp",
            "refresh_token": other["refresh_token"]})
    assert kept.status_code == 200
    withdrawn = await pages.service.ctx.audit.query(AuditQuery(
        events=frozenset({AuditEventType.CONSENT_WITHDRAWN})))
    assert [(e.client_id, e.detail) for e in withdrawn] == [
        ("cli", "consent withdrawn: 1 devices signed out")]
    revoked = await pages.service.ctx.audit.query(AuditQuery(
        events=frozenset({AuditEventType.REVOKED})))
    assert [e.actor for e in revoked] == [AuditActor.PERSON]  # the one login ended


async def test_concurrent_withdrawals_end_it_once(pages: Pages) -> None:
    async with pages.browser() as browser:
        await approve(pages, browser, await start(pages, "openid offline_access"))
        page = await browser.get("/account/devices")
        token = csrf_of(page.text)
        results = await asyncio.gather(*(browser.post("/account/devices/withdraw", data={
            "csrf_token": token, "client_id": "cli"}) for _ in range(8)))
    assert sorted(r.status_code for r in results) == [303] + [409] * 7
    withdrawn = await pages.service.ctx.audit.query(AuditQuery(
        events=frozenset({AuditEventType.CONSENT_WITHDRAWN})))
    assert len(withdrawn) == 1


async def test_a_client_removed_and_registered_again_is_asked_in_full(pages: Pages) -> None:
    async with pages.browser() as browser:
        await approve(pages, browser, await start(pages, "openid"))
        assert await pages.admin.remove_client("cli") is True
        await pages.admin.add_client("cli", "Another App", ClientType.PUBLIC,
                                     [DEVICE_GRANT, "refresh_token"], ["openid"])
        page = await signed_in_at_consent(pages, browser,
                                          (await start(pages, "openid"))["user_code"])
        assert FULL in page.text
        assert SHORT not in page.text

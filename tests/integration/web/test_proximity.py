"""Proximity end to end (RFC 10027 §6.1.1, issue 10): a device authorization "from" a hosting
network abroad, approved from a home network elsewhere, warns under ``warn``, is refused under
``enforce`` (the device gets ``access_denied``), and passes silently when both sides share a
network; per-client device-flow rules hold at device authorization and at the token endpoint.

Each side's address reaches the server the way it does in production: a trusted proxy on
loopback sends ``X-Forwarded-For`` (uvicorn's proxy-headers middleware, as ``deviceflow serve``
runs it). The network facts come from MaxMind-format files the test writes, read by the real
lookup the settings name. On memory, SQLite, and PostgreSQL with Redis."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from tests.integration.web.test_audit import Clock, csrf_of
from tests.support.databases import fresh_postgres_database, require_postgres, sqlite_url
from tests.support.limits import GENEROUS_LIMITS
from tests.support.networkdb import write_databases
from tests.support.receivers import webhook_receiver
from tests.support.servers import claimed_redis_db, require_redis
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.audit import AuditEventType, AuditQuery
from deviceflow.protocol.models import ClientChanges, ClientType
from deviceflow.protocol.proximity import ProximityPolicy
from deviceflow.server.notifications.webhooks import generate_secret
from deviceflow.server.service import AdminService, DeviceFlowService
from deviceflow.server.web.app import create_app
from deviceflow.storage.interface import Store
from deviceflow.storage.memory import MemoryStore
from deviceflow.storage.sql.engine import create_store, upgrade

pytestmark = pytest.mark.anyio

ISSUER = "https://auth.example.test"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PASSWORD = "correct horse battery staple"
AWS_US = "3.5.140.2"  # Amazon AWS (AS16509) in the United States, per the test's databases
HOME_DE = "91.64.10.1"  # a Vodafone home line in Germany
OTHER_HOME_DE = "91.65.3.3"
WARNING = ("This request was started from a data centre (Amazon AWS) in the United States. "
           "You are in Germany.")
_BUTTONS = re.compile(r'<button type="submit" name="decision" value="(approve|deny)"')


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    app: Starlette
    store: Store
    clock: Clock

    @property
    def service(self) -> DeviceFlowService:
        service: DeviceFlowService = self.app.state.service
        return service

    @property
    def admin(self) -> AdminService:
        return AdminService(self.store, self.clock)

    def behind_proxy(self, address: str) -> httpx.AsyncClient:
        """A client whose requests reach the app through a trusted proxy on loopback that says
        they came from ``address``."""
        proxied = ProxyHeadersMiddleware(self.app, trusted_hosts="127.0.0.1")
        transport = httpx.ASGITransport(app=proxied, client=("127.0.0.1", 50000))
        return httpx.AsyncClient(transport=transport, base_url=ISSUER,
                                 headers={"X-Forwarded-For": address})

    async def authorize(self, address: str, client_id: str = "tv",
                        **form: str) -> httpx.Response:
        async with self.behind_proxy(address) as device:
            return await device.post("/device_authorization",
                                     data={"client_id": client_id, **form})

    async def token(self, address: str, form: dict[str, str],
                    client_id: str = "tv") -> httpx.Response:
        async with self.behind_proxy(address) as device:
            return await device.post("/token", data={"client_id": client_id, **form})

    async def consent_page(self, browser: httpx.AsyncClient, user_code: str) -> httpx.Response:
        page = await browser.get("/device")
        entered = await browser.post("/device", data={"csrf_token": csrf_of(page.text),
                                                      "user_code": user_code})
        assert entered.status_code == 303
        page = await browser.get("/device/signin")
        signed = await browser.post("/device/signin", data={
            "csrf_token": csrf_of(page.text), "username": "alice", "password": PASSWORD})
        assert signed.headers["location"] == "/device/consent", signed.text
        return await browser.get("/device/consent")

    async def judgements(self) -> list[str]:
        rows = await self.service.ctx.audit.query(
            AuditQuery(events=frozenset({AuditEventType.PROXIMITY_ASSESSED})))
        return [r.detail or "" for r in reversed(rows)]


async def _world(tmp_path: Path, store: Store, db_redis: str | None,
                 **overrides: Any) -> AsyncIterator[World]:
    asn, country = write_databases(tmp_path)
    clock = Clock()
    settings = ServerSettings(**{
        "issuer": ISSUER, "redis": db_redis, "log_format": "text", **GENEROUS_LIMITS,
        "network_asn_database": str(asn), "network_country_database": str(country),
        **overrides})
    app = create_app(settings, store=store, clock=clock)
    try:
        async with app.router.lifespan_context(app):
            world = World(app, store, clock)
            await world.admin.add_client("tv", "Living-room TV", ClientType.PUBLIC,
                                         [DEVICE_GRANT, "refresh_token"],
                                         ["openid", "profile", "offline_access"])
            await world.admin.add_user("alice", PASSWORD)
            yield world
    finally:
        await store.close()


@pytest.fixture(params=[
    "memory", "sqlite",
    pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
])
def backing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(database URL or "memory", Redis URL or None)."""
    if request.param == "memory":
        yield "memory", None
    elif request.param == "sqlite":
        yield sqlite_url(tmp_path / "deviceflow.sqlite3"), None
    else:
        require_postgres()
        require_redis()
        with ExitStack() as stack:
            yield (stack.enter_context(fresh_postgres_database()),
                   stack.enter_context(claimed_redis_db()))


async def _open(backing: tuple[str, str | None], tmp_path: Path,
                **overrides: Any) -> AsyncIterator[World]:
    url, redis_url = backing
    store: Store
    if url == "memory":
        store = MemoryStore()
    else:
        await upgrade(url)
        store = create_store(url)
    async for world in _world(tmp_path, store, redis_url, **overrides):
        yield world


@pytest.fixture
async def world(backing: tuple[str, str | None], tmp_path: Path) -> AsyncIterator[World]:
    async for value in _open(backing, tmp_path):
        yield value


def buttons(html: str) -> list[str]:
    return _BUTTONS.findall(html)


def alert_before_buttons(html: str) -> bool:
    return html.index(WARNING) < html.index('name="decision"')


async def test_warn_shows_the_risk_and_puts_deny_first(world: World) -> None:
    body = (await world.authorize(AWS_US)).json()
    world.clock.now += 120  # read off a screen, not handed over by a kit at once
    async with world.behind_proxy(HOME_DE) as browser:
        page = await world.consent_page(browser, body["user_code"])
        assert page.status_code == 200
        alert = re.search(r'<div class="alert risk" role="alert">(.*?)</div>', page.text, re.S)
        assert alert, page.text
        assert WARNING in alert.group(1)
        assert "If someone sent you this code or link, choose Deny." in alert.group(1)
        assert alert_before_buttons(page.text)
        assert buttons(page.text) == ["deny", "approve"]
        assert 'value="deny" class="deny" autofocus' in page.text
        # warn lets the person decide: approving still works.
        posted = await browser.post("/device/consent", data={
            "csrf_token": csrf_of(page.text), "user_code": body["user_code"],
            "decision": "approve"})
        assert posted.headers["location"] == "/device/done"
    issued = await world.token(AWS_US, {"grant_type": DEVICE_GRANT,
                                        "device_code": body["device_code"]})
    assert issued.status_code == 200
    # The device's network is recorded with the request, and every judgement is audited.
    requested = await world.service.ctx.audit.query(AuditQuery(
        events=frozenset({AuditEventType.DEVICE_AUTHORIZATION_REQUESTED})))
    assert requested[0].detail == "network=AS16509 country=US hosting=Amazon_AWS"
    assert requested[0].ip_address == AWS_US
    assert await world.judgements() == [
        "risk=high reasons=hosting_device policy=warn"] * 2  # the page, then the approval
    approved = await world.service.ctx.audit.query(AuditQuery(
        events=frozenset({AuditEventType.APPROVED})))
    assert approved[0].detail == "risk=high reasons=hosting_device"  # what it was approved under


async def test_enforce_refuses_the_approval_and_the_device_hears_access_denied(
        world: World) -> None:
    # The server says warn; this client says enforce (its own policy wins).
    await world.admin.update_client("tv", ClientChanges(
        proximity_policy=ProximityPolicy.ENFORCE))
    body = (await world.authorize(AWS_US)).json()
    world.clock.now += 120
    async with world.behind_proxy(HOME_DE) as browser:
        page = await world.consent_page(browser, body["user_code"])
        assert WARNING in page.text
        assert alert_before_buttons(page.text)
        assert "For your safety this request can't be approved here." in html.unescape(page.text)
        assert buttons(page.text) == ["deny"]  # no Approve offered
        # A hand-made POST is refused by the server, not only hidden by the page.
        posted = await browser.post("/device/consent", data={
            "csrf_token": csrf_of(page.text), "user_code": body["user_code"],
            "decision": "approve"})
        assert posted.status_code == 403
        assert "can't be approved here" in html.unescape(posted.text)
        assert 'role="alert"' in posted.text
    poll = await world.token(AWS_US, {"grant_type": DEVICE_GRANT,
                                      "device_code": body["device_code"]})
    assert (poll.status_code, poll.json()["error"]) == (400, "access_denied")
    denied = await world.service.ctx.audit.query(AuditQuery(
        events=frozenset({AuditEventType.DENIED})))
    assert denied[0].detail == ("refused by proximity policy: "
                                "risk=high reasons=hosting_device")


async def test_a_shared_network_passes_silently(world: World) -> None:
    body = (await world.authorize(HOME_DE)).json()
    async with world.behind_proxy(HOME_DE) as browser:
        page = await world.consent_page(browser, body["user_code"])
        assert 'class="alert risk"' not in page.text
        assert buttons(page.text) == ["approve", "deny"]
        posted = await browser.post("/device/consent", data={
            "csrf_token": csrf_of(page.text), "user_code": body["user_code"],
            "decision": "approve"})
        assert posted.headers["location"] == "/device/done"
    issued = await world.token(HOME_DE, {"grant_type": DEVICE_GRANT,
                                         "device_code": body["device_code"]})
    assert issued.status_code == 200
    assert await world.judgements() == ["risk=low reasons=same_public_ip policy=warn"] * 2


async def test_a_forged_post_is_not_judged(world: World) -> None:
    body = (await world.authorize(AWS_US)).json()
    async with world.behind_proxy(HOME_DE) as browser:
        await world.consent_page(browser, body["user_code"])
        forged = await browser.post("/device/consent", data={
            "csrf_token": "forged", "user_code": body["user_code"], "decision": "approve"})
    assert forged.status_code == 403
    assert len(await world.judgements()) == 1  # the page's own, none for the forgery


async def test_a_phone_on_another_line_in_the_same_country_is_not_warned(world: World) -> None:
    body = (await world.authorize(HOME_DE)).json()
    async with world.behind_proxy(OTHER_HOME_DE) as browser:
        page = await world.consent_page(browser, body["user_code"])
    assert 'class="alert risk"' not in page.text
    assert buttons(page.text) == ["approve", "deny"]


async def test_a_second_account_on_one_code_is_warned(world: World) -> None:
    await world.admin.add_user("bob", PASSWORD)
    body = (await world.authorize(HOME_DE)).json()
    async with world.behind_proxy(HOME_DE) as browser:
        await world.consent_page(browser, body["user_code"])
    async with world.behind_proxy(OTHER_HOME_DE) as browser:
        page = await browser.get("/device")
        await browser.post("/device", data={"csrf_token": csrf_of(page.text),
                                            "user_code": body["user_code"]})
        page = await browser.get("/device/signin")
        await browser.post("/device/signin", data={
            "csrf_token": csrf_of(page.text), "username": "bob", "password": PASSWORD})
        page = await browser.get("/device/consent")
    assert "2 different accounts have opened this code." in page.text
    assert buttons(page.text) == ["deny", "approve"]


async def test_off_records_nothing_and_changes_no_page(
        backing: tuple[str, str | None], tmp_path: Path) -> None:
    async for world in _open(backing, tmp_path, proximity_policy="off"):
        body = (await world.authorize(AWS_US)).json()
        async with world.behind_proxy(HOME_DE) as browser:
            page = await world.consent_page(browser, body["user_code"])
        assert 'class="alert risk"' not in page.text
        assert buttons(page.text) == ["approve", "deny"]
        assert await world.judgements() == []


async def test_report_audits_without_changing_the_page(
        backing: tuple[str, str | None], tmp_path: Path) -> None:
    async for world in _open(backing, tmp_path, proximity_policy="report"):
        body = (await world.authorize(AWS_US)).json()
        async with world.behind_proxy(HOME_DE) as browser:
            page = await world.consent_page(browser, body["user_code"])
        assert 'class="alert risk"' not in page.text
        assert buttons(page.text) == ["approve", "deny"]
        # Entered within seconds of its creation too: the kit's timing.
        assert await world.judgements() == [
            "risk=high reasons=hosting_device,fast_distant_entry policy=report"]


async def test_the_server_wide_enforce_setting(tmp_path: Path) -> None:
    async for world in _open(("memory", None), tmp_path, proximity_policy="enforce"):
        body = (await world.authorize(AWS_US)).json()
        async with world.behind_proxy(HOME_DE) as browser:
            page = await world.consent_page(browser, body["user_code"])
        assert buttons(page.text) == ["deny"]
        # Its own client policy can relax it again.
        await world.admin.update_client("tv", ClientChanges(
            proximity_policy=ProximityPolicy.WARN))
        world.service.ctx._clients.clear()  # the client cache, instead of waiting 5 s
        async with world.behind_proxy(HOME_DE) as browser:
            page = await world.consent_page(browser, body["user_code"])
        assert buttons(page.text) == ["deny", "approve"]


# --- per-client device-flow rules ---------------------------------------------------------------


async def test_allowed_networks_and_countries_for_device_authorization(world: World) -> None:
    await world.admin.update_client("tv", ClientChanges(device_networks=("91.64.0.0/16",)))
    refused = await world.authorize(AWS_US)
    assert (refused.status_code, refused.json()["error"]) == (400, "unauthorized_client")
    assert (await world.authorize(HOME_DE)).status_code == 200

    await world.admin.update_client("tv", ClientChanges(device_networks=(),
                                                        device_countries=("DE",)))
    world.service.ctx._clients.clear()
    refused = await world.authorize(AWS_US)
    assert (refused.status_code, refused.json()["error"]) == (400, "unauthorized_client")
    assert (await world.authorize(OTHER_HOME_DE)).status_code == 200


async def test_device_scope_allow_list(world: World) -> None:
    await world.admin.update_client("tv", ClientChanges(device_scopes=frozenset({"openid"})))
    refused = await world.authorize(HOME_DE, scope="openid profile")
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_scope")
    body = (await world.authorize(HOME_DE)).json()  # no scope asked: the allowed ones
    async with world.behind_proxy(HOME_DE) as browser:
        page = await world.consent_page(browser, body["user_code"])
        await browser.post("/device/consent", data={
            "csrf_token": csrf_of(page.text), "user_code": body["user_code"],
            "decision": "approve"})
    issued = await world.token(HOME_DE, {"grant_type": DEVICE_GRANT,
                                         "device_code": body["device_code"]})
    assert issued.json()["scope"] == "openid"


async def test_shorter_lifetimes_for_device_grant_tokens(world: World) -> None:
    await world.admin.update_client("tv", ClientChanges(
        device_access_token_lifetime=300, device_refresh_token_lifetime=3600))
    body = (await world.authorize(HOME_DE, scope="openid offline_access")).json()
    async with world.behind_proxy(HOME_DE) as browser:
        page = await world.consent_page(browser, body["user_code"])
        await browser.post("/device/consent", data={
            "csrf_token": csrf_of(page.text), "user_code": body["user_code"],
            "decision": "approve"})
    issued = (await world.token(HOME_DE, {"grant_type": DEVICE_GRANT,
                                          "device_code": body["device_code"]})).json()
    assert issued["expires_in"] == 300
    world.clock.now += 1800
    refreshed = (await world.token(HOME_DE, {"grant_type": "refresh_token",
                                             "refresh_token": issued["refresh_token"]})).json()
    assert refreshed["expires_in"] == 300  # the login keeps its client's lifetime
    world.clock.now += 1801  # past the login's end, an hour after the approval
    ended = await world.token(HOME_DE, {"grant_type": "refresh_token",
                                        "refresh_token": refreshed["refresh_token"]})
    assert (ended.status_code, ended.json()["error"]) == (400, "invalid_grant")


# --- the operator hears of high risk (issue 10 §4) ----------------------------------------------


async def test_a_high_risk_request_reaches_the_webhook_once(
        backing: tuple[str, str | None], tmp_path: Path) -> None:
    """The consent page judges on every view; the operator's webhook hears of a high-risk
    request once per device code (one atomic hit in the limiter's storage), and the approval's
    own event carries the device's network, its place and the risk it was approved under."""
    secret = generate_secret()
    with webhook_receiver(secret) as (hooks, url):
        async for world in _open(backing, tmp_path, webhook_urls=(url,), webhook_secret=secret):
            body = (await world.authorize(AWS_US)).json()
            world.clock.now += 120
            async with world.behind_proxy(HOME_DE) as browser:
                await world.consent_page(browser, body["user_code"])
                page = await browser.get("/device/consent")  # a reload judges again
                posted = await browser.post("/device/consent", data={
                    "csrf_token": csrf_of(page.text), "user_code": body["user_code"],
                    "decision": "approve"})
                assert posted.headers["location"] == "/device/done"
            assert len(await world.judgements()) == 3
            for _ in range(1000):  # the delivery task sends in the background
                if len(hooks.verified) >= 2:
                    break
                await asyncio.sleep(0.01)
    kinds = sorted(event["type"] for event in hooks.verified)
    assert kinds == ["approved", "high_risk_request"], kinds
    assert hooks.rejected == 0
    [risky] = [e["data"] for e in hooks.verified if e["type"] == "high_risk_request"]
    [approved] = [e["data"] for e in hooks.verified if e["type"] == "approved"]
    for data in (risky, approved):
        assert data["device"]["ip_address"] == AWS_US
        assert data["device"]["network"] == "Amazon AWS, AS16509"
        assert data["device"]["place"] == "United States"
    assert risky["risk"] == approved["risk"] == {"level": "high", "reasons": [WARNING]}

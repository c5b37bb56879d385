"""The audit log through HTTP, on the memory store and on SQLite: every event the server emits is
recorded by a real flow (device authorization, code entry, sign-in, approval and denial, tokens,
refresh, refresh reuse, replay revocation, operator sign-out), with the request's IP address,
user agent and request id; one ``deviceflow.audit`` log line per row; a pending poll records
nothing; concurrent decisions and redemptions record exactly one event; no secret reaches a row,
the database file or any log line; and the background purge drops rows past ``audit_retention``.
The SQL store on PostgreSQL is covered by tests/integration/storage/test_audit_contract.py."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from tests.support.databases import sqlite_url
from tests.support.limits import generous_limits

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.audit import AuditActor, AuditEvent, AuditEventType, AuditQuery
from deviceflow.protocol.models import ClientType
from deviceflow.server.logs import JsonFormatter
from deviceflow.server.service import AdminService, DeviceFlowService
from deviceflow.server.web.app import create_app
from deviceflow.storage.interface import Store
from deviceflow.storage.memory import MemoryStore
from deviceflow.storage.sql.engine import create_store, upgrade

pytestmark = pytest.mark.anyio

E = AuditEventType
ISSUER = "http://127.0.0.1:8000"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PASSWORD = "correct horse battery staple"
WRONG_PASSWORD = "tr0ub4dor&3-not-it"
DEVICE_IP, DEVICE_UA = "192.0.2.44", "tv-app/2.1 (WebOS)"
BROWSER_IP, BROWSER_UA = "203.0.113.10", "Firefox/128 on a phone"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    app: Starlette
    store: Store
    clock: Clock
    db_file: Path | None
    secrets: set[str] = field(default_factory=lambda: {PASSWORD, WRONG_PASSWORD})

    @property
    def service(self) -> DeviceFlowService:
        service: DeviceFlowService = self.app.state.service
        return service

    @property
    def admin(self) -> AdminService:
        return AdminService(self.store, self.clock)

    def http(self, ip: str, user_agent: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        return httpx.AsyncClient(transport=transport, base_url=ISSUER,
                                 headers={"User-Agent": user_agent})

    def device(self) -> httpx.AsyncClient:
        return self.http(DEVICE_IP, DEVICE_UA)

    def browser(self) -> httpx.AsyncClient:
        return self.http(BROWSER_IP, BROWSER_UA)

    async def authorize(self, request_id: str = "req-authorize") -> dict[str, Any]:
        async with self.device() as device:
            response = await device.post(
                "/device_authorization",
                data={"client_id": "tv", "scope": "openid profile offline_access"},
                headers={"X-Request-ID": request_id})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        self.secrets |= {body["device_code"], body["user_code"],
                         body["user_code"].replace("-", ""), body["user_code"].lower()}
        return body

    async def token(self, form: dict[str, str]) -> httpx.Response:
        async with self.device() as device:
            response = await device.post("/token", data={"client_id": "tv", **form})
        if response.status_code == 200:
            self.secrets |= {v for k, v in response.json().items() if k.endswith("_token")}
        return response

    async def poll(self, device_code: str) -> httpx.Response:
        return await self.token({"grant_type": DEVICE_GRANT, "device_code": device_code})

    async def events(self, *kinds: AuditEventType) -> list[AuditEvent]:
        """Oldest first, which reads like the flow."""
        found = await self.service.ctx.audit.query(AuditQuery(events=frozenset(kinds)))
        return list(reversed(found))


async def _open(kind: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[Harness]:
    db_file = None
    store: Store
    if kind == "memory":
        store = MemoryStore()
    else:
        db_file = tmp_path / "deviceflow.sqlite3"
        await upgrade(sqlite_url(db_file))
        store = create_store(sqlite_url(db_file))
    clock = Clock()
    settings = ServerSettings(**{"issuer": ISSUER, "redis": None, "log_format": "text",
                                 **generous_limits(), **overrides})
    app = create_app(settings, store=store, clock=clock)
    try:
        async with app.router.lifespan_context(app):
            harness = Harness(app, store, clock, db_file)
            await harness.admin.add_client("tv", "Living-room TV", ClientType.PUBLIC,
                                           [DEVICE_GRANT, "refresh_token"],
                                           ["openid", "profile", "offline_access"])
            await harness.admin.add_user("alice", PASSWORD)
            yield harness
    finally:
        await store.close()


@pytest.fixture(params=["memory", "sqlite"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    async for value in _open(request.param, tmp_path):
        yield value


# --- browser steps -----------------------------------------------------------------------


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, html
    return match.group(1)


async def enter_code(browser: httpx.AsyncClient, code: str) -> httpx.Response:
    page = await browser.get("/device")
    return await browser.post("/device", data={"csrf_token": csrf_of(page.text),
                                               "user_code": code})


async def sign_in(browser: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    page = await browser.get("/device/signin")
    return await browser.post("/device/signin", data={
        "csrf_token": csrf_of(page.text), "username": username, "password": password})


async def decide(browser: httpx.AsyncClient, decision: str) -> None:
    page = await browser.get("/device/consent")
    code = re.search(r'name="user_code" value="([A-Z-]+)"', page.text)
    assert code, page.text
    response = await browser.post("/device/consent", data={
        "csrf_token": csrf_of(page.text), "user_code": code.group(1), "decision": decision})
    assert response.headers["location"] == "/device/done", response.text


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Every log line of the test as the server writes it: JSON, formatted as it is emitted
    (the request id is read then, from the request's context)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def audit_lines(logs: str) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in logs.splitlines()]
    return [e for e in entries if e["logger"] == "deviceflow.audit"]


def assert_no_secret(harness: Harness, rows: list[AuditEvent], logs: str,
                     code_hashes: set[str]) -> None:
    values = [str(v) for row in rows for v in (
        row.user_id, row.client_id, row.ip_address, row.user_agent, row.family_id,
        row.request_id, row.grant_type, row.detail) if v is not None]
    for secret in harness.secrets | code_hashes:
        assert not any(secret in value for value in values), secret
    for secret in harness.secrets:
        assert secret not in logs, secret
    if harness.db_file is not None:
        stored = b"".join(p.read_bytes() for p in harness.db_file.parent.iterdir()
                          if p.name.startswith(harness.db_file.name))
        for secret in harness.secrets:
            assert secret.encode() not in stored, secret


# --- the flows ---------------------------------------------------------------------------


async def test_every_event_of_the_flows_is_recorded_without_a_secret(
    harness: Harness, json_logs: io.StringIO,
) -> None:
    clock = harness.clock
    alice = await harness.admin.list_users()
    alice_id = alice[0].user_id

    # A: requested → refused code, failed sign-ins → approved → issued → refreshed → reuse.
    a = await harness.authorize()
    requested = (await harness.events(E.DEVICE_AUTHORIZATION_REQUESTED))[0]
    assert (requested.client_id, requested.ip_address, requested.user_agent,
            requested.request_id, requested.user_id) == (
        "tv", DEVICE_IP, DEVICE_UA, "req-authorize", None)
    assert requested.family_id
    assert requested.occurred_at == clock.now
    before = len(await harness.events())
    for _ in range(3):  # pending polls and a slow_down: the hot path writes no audit row
        assert (await harness.poll(a["device_code"])).status_code == 400
    assert len(await harness.events()) == before

    async with harness.browser() as browser:
        assert (await enter_code(browser, "BCDF-GHJK")).status_code == 400
        assert (await sign_in(browser, "alice", WRONG_PASSWORD)).status_code == 400
        assert (await sign_in(browser, "nobody-" + WRONG_PASSWORD, WRONG_PASSWORD)
                ).status_code == 400
        assert (await enter_code(browser, a["user_code"])).status_code == 303
        assert (await sign_in(browser, "alice", PASSWORD)).status_code == 303
        await decide(browser, "approve")
        issued = await harness.poll(a["device_code"])
        assert issued.status_code == 200
        refreshed = await harness.token({"grant_type": "refresh_token",
                                         "refresh_token": issued.json()["refresh_token"]})
        assert refreshed.status_code == 200
        clock.now += 3600  # past the reuse grace window
        reused = await harness.token({"grant_type": "refresh_token",
                                      "refresh_token": issued.json()["refresh_token"]})
        assert reused.status_code == 400

        # B: denied.  C: approved, redeemed, then the device code replayed.
        b = await harness.authorize("req-b")
        assert (await enter_code(browser, b["user_code"])).status_code == 303
        assert (await sign_in(browser, "alice", PASSWORD)).status_code == 303  # an hour later
        await decide(browser, "deny")
        c = await harness.authorize("req-c")
        assert (await enter_code(browser, c["user_code"])).headers["location"] == (
            "/device/consent")
        await decide(browser, "approve")
        assert (await harness.poll(c["device_code"])).status_code == 200
        assert (await harness.poll(c["device_code"])).status_code == 400
    assert await harness.admin.sign_out_user("alice") == 1

    everything = await harness.events()
    # Each consent page shown or posted is judged for proximity (RFC 10027 §6.1.1) and audited
    # with its reasons: here both addresses are documentation ones, not globally routed, so
    # both sides count as the local network and the risk is low.
    judged = [r for r in everything if r.event is E.PROXIMITY_ASSESSED]
    assert judged
    assert {(r.detail, r.user_id, r.ip_address) for r in judged} == {
        ("risk=low reasons=same_private_network policy=warn", alice_id, BROWSER_IP)}
    rows = [r for r in everything if r.event is not E.PROXIMITY_ASSESSED]
    assert [r.event for r in rows] == [
        E.DEVICE_AUTHORIZATION_REQUESTED, E.CODE_ENTRY_REFUSED, E.SIGN_IN_FAILED,
        E.SIGN_IN_FAILED, E.SIGN_IN_SUCCEEDED, E.APPROVED, E.TOKENS_ISSUED, E.REFRESHED,
        E.REVOKED, E.REFRESH_REUSE_DETECTED,  # the reuse ends the login, in one transaction
        E.DEVICE_AUTHORIZATION_REQUESTED, E.SIGN_IN_SUCCEEDED, E.DENIED,
        E.DEVICE_AUTHORIZATION_REQUESTED, E.APPROVED, E.TOKENS_ISSUED,
        E.REVOKED, E.REVOKED,
    ]
    by = {(r.event, r.family_id): r for r in rows}
    fam_a, fam_b, fam_c = (rows[i].family_id for i in (0, 10, 13))
    assert len({fam_a, fam_b, fam_c}) == 3
    refused, wrong, unknown = rows[1:4]
    assert (refused.ip_address, refused.user_agent, refused.user_id) == (
        BROWSER_IP, BROWSER_UA, None)
    assert (wrong.user_id, wrong.detail) == (alice_id, "wrong password")
    assert (unknown.user_id, unknown.detail) == (None, "unknown account")  # the name is not kept
    assert rows[4].user_id == alice_id
    assert rows[4].ip_address == BROWSER_IP
    approved = by[E.APPROVED, fam_a]
    assert (approved.user_id, approved.client_id, approved.ip_address) == (
        alice_id, "tv", BROWSER_IP)
    tokens = by[E.TOKENS_ISSUED, fam_a]
    assert (tokens.user_id, tokens.client_id, tokens.grant_type, tokens.ip_address,
            tokens.user_agent) == (alice_id, "tv", DEVICE_GRANT, DEVICE_IP, DEVICE_UA)
    assert (by[E.REFRESHED, fam_a].grant_type, by[E.REFRESHED, fam_a].user_id) == (
        "refresh_token", alice_id)
    assert by[E.REFRESH_REUSE_DETECTED, fam_a].detail == "2 refresh tokens revoked"
    ended = by[E.REVOKED, fam_a]
    assert (ended.actor, ended.client_id) == (AuditActor.SERVER, "tv")
    assert by[E.DENIED, fam_b].user_id == alice_id
    replay = by[E.REVOKED, fam_c]
    assert (replay.actor, replay.ip_address) == (AuditActor.SERVER, DEVICE_IP)
    operator = rows[-1]
    assert (operator.event, operator.actor, operator.user_id, operator.ip_address) == (
        E.REVOKED, AuditActor.OPERATOR, alice_id, None)
    assert all(r.request_id for r in rows[:-1])  # every HTTP one; the CLI's has none

    # One log line per row, with the same fields.
    logs = json_logs.getvalue()
    lines = audit_lines(logs)
    assert [line["event"] for line in lines] == [r.event.value for r in everything]
    assert lines[0]["request_id"] == "req-authorize"
    issued_line = next(line for line in lines if line["event"] == E.TOKENS_ISSUED.value)
    assert (issued_line["user_id"], issued_line["client_id"], issued_line["ip_address"],
            issued_line["family_id"], issued_line["grant_type"]) == (
        alice_id, "tv", DEVICE_IP, fam_a, DEVICE_GRANT)

    code_hashes: set[str] = set()
    hasher = harness.service.keyring.hasher
    for code in (a, b, c):
        code_hashes |= {hasher.device_code(code["device_code"]),
                        hasher.user_code(code["user_code"].replace("-", ""))}
    assert_no_secret(harness, rows, logs, code_hashes)


async def test_throttled_code_entry_and_sign_in_are_recorded_once_per_window(
    tmp_path: Path,
) -> None:
    async for harness in _open("sqlite", tmp_path, limit_code_per_ip="1/hour",
                               limit_login_per_ip="1/hour"):
        async with harness.browser() as browser:
            assert (await enter_code(browser, "BCDF-GHJK")).status_code == 400
            for _ in range(3):  # an attack past the budget: one row for its window
                assert (await enter_code(browser, "BCDF-GHJK")).status_code == 429
            assert (await sign_in(browser, "alice", WRONG_PASSWORD)).status_code == 400
            for _ in range(3):
                assert (await sign_in(browser, "alice", WRONG_PASSWORD)).status_code == 429
        rows = await harness.events()
        assert [r.event for r in rows] == [E.CODE_ENTRY_REFUSED, E.CODE_ENTRY_THROTTLED,
                                           E.SIGN_IN_FAILED, E.SIGN_IN_THROTTLED]
        assert (rows[1].detail, rows[1].ip_address) == ("code_per_ip", BROWSER_IP)
        assert (rows[3].detail, rows[3].user_id) == ("login_per_ip", None)


async def test_concurrent_decisions_and_redemptions_record_one_event_each(
    harness: Harness,
) -> None:
    grant = await harness.authorize()
    async with harness.browser() as browser:
        assert (await enter_code(browser, grant["user_code"])).status_code == 303
        assert (await sign_in(browser, "alice", PASSWORD)).status_code == 303
        page = await browser.get("/device/consent")
        form = {"csrf_token": csrf_of(page.text), "user_code": grant["user_code"]}
        await asyncio.gather(*(
            browser.post("/device/consent", data={**form, "decision": d})
            for d in ["approve", "deny"] * 5))
    polls = await asyncio.gather(*(harness.poll(grant["device_code"]) for _ in range(10)))
    decided = await harness.events(E.APPROVED, E.DENIED)
    assert len(decided) == 1
    issued = await harness.events(E.TOKENS_ISSUED)
    assert len(issued) == sum(p.status_code == 200 for p in polls)
    assert len(issued) == (1 if decided[0].event is E.APPROVED else 0)


async def test_the_background_purge_drops_rows_past_the_retention(tmp_path: Path) -> None:
    async for harness in _open("sqlite", tmp_path, purge_interval=0.05, audit_retention=3600):
        await harness.authorize()
        harness.clock.now += 1800
        await harness.authorize("req-kept")
        harness.clock.now += 1801  # the first is now past the retention, the second is not
        for _ in range(200):
            rows = await harness.events()
            if len(rows) == 1:
                break
            await asyncio.sleep(0.02)
        assert [r.request_id for r in rows] == ["req-kept"]

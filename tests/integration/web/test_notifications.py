"""Issue 10 §4, "Recover fast", through the pages on every store (memory, SQLite, PostgreSQL):
approving a device login e-mails the person through a real SMTP server (aiosmtpd) and signs a
webhook to a real receiver that verifies it; denials, "Your devices" sign-outs and refresh-token
reuse reach the webhook; a refusing or unreachable receiver never affects the approval, the
failed attempts are logged and retried, and delivered once the receiver is back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from tests.integration.web.test_browser_sessions import (
    DEVICE_GRANT,
    ISSUER,
    Pages,
    csrf_of,
    open_pages,
    post_decision,
    sign_in,
    signed_in_at_consent,
)
from tests.support.receivers import Deliveries, Mailbox, smtp_server, webhook_receiver

from deviceflow.protocol.models import ClientChanges, RequestOrigin
from deviceflow.protocol.notifications import OutboxStatus
from deviceflow.server.embedded import free_port
from deviceflow.server.notifications.webhooks import generate_secret
from deviceflow.server.notifications.worker import OutboxWorker

pytestmark = pytest.mark.anyio

DEVICE_UA = "LivingRoomTV/2.1 (webOS)"
DEVICE_IP = "192.0.2.44"
ALICE = "alice@example.com"
RETRY_BASE = 30.0
DOCS = Path(__file__).parents[3] / "docs" / "operator.md"


@dataclass
class World:
    pages: Pages
    mailbox: Mailbox
    hooks: Deliveries
    secret: str

    @property
    def worker(self) -> OutboxWorker:
        worker = self.pages.app.state.notifications
        assert isinstance(worker, OutboxWorker)
        return worker

    async def settle(self) -> list[Any]:
        """Deliver what is due now: this worker's pass, and wait for the background task's
        sends in flight (it is woken by each commit). Returns the outbox."""
        for _ in range(2000):
            await self.worker.drain()
            async with self.pages.backend.store.unit_of_work() as uow:
                rows = list(await uow.outbox.list())
            now = self.pages.clock()
            # Pending and due now, or held by a claim (a send in flight); a message waiting
            # for its retry time is settled.
            busy = [m for m in rows if m.status is OutboxStatus.PENDING
                    and (m.next_attempt_at <= now
                         or (m.claimed_until is not None and m.claimed_until > now))]
            if not busy:
                return rows
            await asyncio.sleep(0.01)
        raise AssertionError("the outbox did not settle")

    async def approve(self, decision: str = "approve") -> dict[str, Any]:
        """A device asks for a code; alice, on a browser, decides; the device polls."""
        pages = self.pages
        async with pages.browser(DEVICE_IP) as device:
            started = await device.post("/device_authorization",
                                        headers={"User-Agent": DEVICE_UA},
                                        data={"client_id": "tv",
                                              "scope": "openid offline_access"})
            assert started.status_code == 200, started.text
            grant = started.json()
            async with pages.browser() as browser:
                consent = await signed_in_at_consent(pages, browser, grant["user_code"])
                decided = await post_decision(browser, consent.text, decision)
                assert decided.status_code == 303
                done = await browser.get(decided.headers["location"])
                word = "Device connected" if decision == "approve" else "Request denied"
                assert word in done.text
            polled = await device.post("/token", data={
                "grant_type": DEVICE_GRANT, "client_id": "tv",
                "device_code": grant["device_code"]})
        return {"grant": grant, "polled": polled}


@contextlib.contextmanager
def receivers() -> Iterator[tuple[Mailbox, int, Deliveries, str, str]]:
    secret = generate_secret()
    with smtp_server() as (mailbox, port), webhook_receiver(secret) as (hooks, url):
        yield mailbox, port, hooks, url, secret


def notification_settings(smtp_port: int, url: str, secret: str) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1", "smtp_port": smtp_port, "smtp_security": "none",
        "smtp_from": "deviceflow@example.com", "webhook_urls": (url,),
        "webhook_secret": secret, "notification_retry_base": RETRY_BASE,
    }


async def prepare(pages: Pages) -> None:
    """The TV may stay signed in (a refresh token), and alice has an e-mail address."""
    await pages.admin.update_client("tv", ClientChanges(
        scopes=frozenset({"openid", "profile", "offline_access"})))
    await pages.admin.set_email("alice", ALICE)


@pytest.fixture(params=[
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    with receivers() as (mailbox, port, hooks, url, secret):
        async with open_pages(request.param, tmp_path,
                              **notification_settings(port, url, secret)) as pages:
            await prepare(pages)
            yield World(pages, mailbox, hooks, secret)


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()


async def test_an_approval_through_the_pages_emails_the_person_and_signs_a_webhook(
    world: World,
) -> None:
    result = await world.approve()
    assert result["polled"].status_code == 200
    await world.settle()

    [message] = world.mailbox.messages
    assert world.mailbox.recipients == [[ALICE]]
    assert message["Subject"] == "A device signed in to your account"
    assert message["From"] == "deviceflow@example.com"
    text, html = text_and_html(message)
    for part in (text, html):
        assert "Living-room TV" in part
        assert "15 January 2027, 08:00 UTC" in part  # the test clock, with its zone
        assert DEVICE_IP in part
        assert DEVICE_UA in part
        # No code or token of the login, in any form.
        for secret in (result["grant"]["user_code"], result["grant"]["device_code"],
                       result["polled"].json()["access_token"],
                       result["polled"].json().get("refresh_token", "-")):
            assert secret not in part
            assert secret.replace("-", "") not in part
    devices = f"{ISSUER}/account/devices"
    assert devices in text
    assert f'<a href="{devices}">Your devices</a>' in html
    assert re.findall(r'href="([^"]+)"', html) == [devices]  # the one link, no parameters

    # The link alone signs no one in and revokes nothing: it leads to the sign-in.
    async with world.pages.browser() as stranger:
        opened = await stranger.get(devices.removeprefix(ISSUER))
        assert opened.status_code == 303
        assert "/device/signin" in opened.headers["location"]

    [event] = world.hooks.verified
    assert world.hooks.rejected == 0
    assert event["type"] == "approved"
    data = event["data"]
    assert (data["client_id"], data["client_name"], data["username"]) == (
        "tv", "Living-room TV", "alice")
    assert data["device"] == {"ip_address": DEVICE_IP, "user_agent": DEVICE_UA,
                              "network": "a local network", "place": None}
    assert data["event_id"] == world.hooks.ids[0]


async def test_denials_signouts_and_refresh_reuse_reach_the_webhook_and_not_the_mailbox(
    world: World,
) -> None:
    await world.approve("deny")
    await world.settle()
    assert [e["type"] for e in world.hooks.verified] == ["denied"]
    assert world.mailbox.messages == []  # the person is e-mailed about approvals only

    result = await world.approve()
    tokens = result["polled"].json()
    async with world.pages.browser(DEVICE_IP) as device:
        first = await device.post("/token", data={
            "grant_type": "refresh_token", "client_id": "tv",
            "refresh_token": tokens["refresh_token"]})
        assert first.status_code == 200
        world.pages.clock.now += 3600  # past the reuse grace window
        replay = await device.post("/token", data={
            "grant_type": "refresh_token", "client_id": "tv",
            "refresh_token": tokens["refresh_token"]})
        assert replay.json()["error"] == "invalid_grant"
    await world.settle()
    types = [e["type"] for e in world.hooks.verified]
    assert types[:2] == ["denied", "approved"]
    assert sorted(types[2:]) == ["refresh_reuse_detected", "revoked"]
    reuse = next(e for e in world.hooks.verified if e["type"] == "refresh_reuse_detected")
    assert reuse["data"]["device"]["ip_address"] == DEVICE_IP
    revoked = next(e for e in world.hooks.verified if e["type"] == "revoked")
    assert (revoked["data"]["actor"], revoked["data"]["username"]) == ("server", "alice")

    # "Your devices" → Sign out: a revoked event by the person.
    await world.approve()
    async with world.pages.browser() as browser:
        await sign_in(browser)
        page = await browser.get("/account/devices")
        [family] = re.findall(r'name="family_id" value="([0-9a-f]+)"', page.text)
        out = await browser.post("/account/devices/signout", data={
            "csrf_token": csrf_of(page.text), "family_id": family})
        assert out.status_code == 303
    await world.settle()
    last = world.hooks.verified[-1]
    assert (last["type"], last["data"]["actor"], last["data"]["family_id"]) == (
        "revoked", "person", family)
    assert len(world.mailbox.messages) == 2  # the two approvals
    assert len(set(world.hooks.ids)) == len(world.hooks.ids)


async def test_a_failing_smtp_server_and_webhook_never_affect_the_approval(
    world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    world.mailbox.refuse = True
    world.hooks.fail = True
    with caplog.at_level(logging.WARNING, logger="deviceflow.notifications"):
        result = await world.approve()  # "Device connected" is asserted inside
        assert result["polled"].status_code == 200
        rows = await world.settle()
    pending = [m for m in rows if m.status is OutboxStatus.PENDING]
    assert sorted(m.kind.value for m in pending) == ["email", "webhook"]
    assert all(m.attempts == 1 for m in pending)
    failures = [r.getMessage() for r in caplog.records
                if "notification delivery failed (attempt 1 of 8)" in r.getMessage()]
    assert len(failures) == 2
    assert any("SMTP server refused (554)" in f for f in failures)
    assert any("answered HTTP 500" in f for f in failures)
    assert world.mailbox.refused == 1
    assert world.hooks.failed == 1
    assert world.secret not in caplog.text
    assert ALICE not in caplog.text

    # Back up; the retry falls due after the back-off and succeeds.
    world.mailbox.refuse = False
    world.hooks.fail = False
    world.pages.clock.now += RETRY_BASE
    rows = await world.settle()
    assert {m.status for m in rows} == {OutboxStatus.DONE}
    assert len(world.mailbox.messages) == 1
    assert [e["type"] for e in world.hooks.verified] == ["approved"]
    assert {m.attempts for m in rows if m.kind.value != "event"} == {2}


async def test_a_high_risk_request_is_signed_to_the_webhook(world: World) -> None:
    notifier = world.pages.service.ctx.notifier
    event = await notifier.record_high_risk_request(
        world.pages.backend.store, client_id="tv",
        origin=RequestOrigin("198.51.100.7", "curl/8.5"), risk="high",
        reasons=("started from a data centre (Amazon AWS) in the United States",),
        network="Amazon AWS (AS16509), hosting", place="Ashburn, United States")
    await world.settle()
    [received] = world.hooks.verified
    assert received["type"] == "high_risk_request"
    assert received["data"]["event_id"] == event.event_id
    assert received["data"]["risk"] == {
        "level": "high",
        "reasons": ["started from a data centre (Amazon AWS) in the United States"]}
    assert received["data"]["device"]["place"] == "Ashburn, United States"
    assert world.mailbox.messages == []  # the operator's, not the person's


async def test_the_documented_verification_snippet_accepts_ours_and_refuses_a_replay(
    world: World,
) -> None:
    await world.approve("deny")
    await world.settle()
    [(headers, body)] = world.hooks.raw
    block = DOCS.read_text().split("<!-- verify-snippet -->", 1)[1]
    source = block.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(source, str(DOCS), "exec"), namespace)
    verify = namespace["verify_deviceflow_webhook"]
    seen: set[str] = set()
    assert verify(world.secret, headers, body, seen)["type"] == "denied"
    with pytest.raises(ValueError, match="already processed"):
        verify(world.secret, headers, body, seen)
    with pytest.raises(ValueError, match="bad signature"):
        verify(world.secret, headers, body.replace(b"denied", b"approved"), set())
    with pytest.raises(ValueError, match="bad signature"):
        verify(generate_secret(), headers, body, set())
    old = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 3600)}
    with pytest.raises(ValueError, match="replay"):
        verify(world.secret, old, body, set())


@pytest.mark.parametrize("kind", [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
])
async def test_a_refused_connection_is_retried_until_the_receiver_listens(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    secret = generate_secret()
    port = free_port()  # nothing listens there yet
    url = f"http://127.0.0.1:{port}/hooks/deviceflow"
    with smtp_server() as (mailbox, smtp_port):
        async with open_pages(kind, tmp_path,
                              **notification_settings(smtp_port, url, secret)) as pages:
            await prepare(pages)
            world = World(pages, mailbox, Deliveries(secret), secret)
            with caplog.at_level(logging.WARNING, logger="deviceflow.notifications"):
                await world.approve("deny")
                await world.settle()
            assert "unreachable (ConnectError)" in caplog.text
            assert secret not in caplog.text
            with webhook_receiver(secret, port) as (hooks, _):
                world.hooks = hooks
                pages.clock.now += RETRY_BASE
                rows = await world.settle()
            assert [e["type"] for e in hooks.verified] == ["denied"]
            assert {m.status for m in rows} == {OutboxStatus.DONE}

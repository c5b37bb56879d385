"""Remembered consent at the edges (issue 11): the short confirmation keeps the proximity block
(Deny first at high risk; ``enforce`` still refuses an approval), on memory, SQLite and
PostgreSQL+Redis; and /authorize follows the same rule (short confirmation within remembered
scopes, new ones marked, a page every time)."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator

import pytest
from tests.integration.web.test_authorization_code import (
    _CSRF,
    _REQUEST_ID,
    Server,
    authorize_url,
    field,
    pkce_pair,
    sign_in,
)
from tests.integration.web.test_authorization_code import server as server
from tests.integration.web.test_proximity import (
    AWS_US,
    DEVICE_GRANT,
    HOME_DE,
    WARNING,
    World,
    _open,
    alert_before_buttons,
    buttons,
    csrf_of,
)
from tests.integration.web.test_proximity import backing as backing

from deviceflow.protocol.models import ClientChanges
from deviceflow.protocol.proximity import ProximityPolicy

pytestmark = pytest.mark.anyio

SHORT = "It asks for nothing more."
FULL = "What it asks for"


@pytest.fixture
async def world(backing: tuple[str, str | None], tmp_path: object) -> AsyncIterator[World]:
    async for value in _open(backing, tmp_path):  # type: ignore[arg-type]
        yield value


async def approve_from_home(world: World) -> None:
    """A first approval where device and phone share a home line: no risk, remembered."""
    body = (await world.authorize(HOME_DE, scope="openid profile")).json()
    async with world.behind_proxy(HOME_DE) as browser:
        page = await world.consent_page(browser, body["user_code"])
        assert FULL in page.text
        posted = await browser.post("/device/consent", data={
            "csrf_token": csrf_of(page.text), "user_code": body["user_code"],
            "decision": "approve"})
        assert posted.headers["location"] == "/device/done"


async def test_the_short_confirmation_keeps_the_risk_notice_and_deny_first(
        world: World) -> None:
    await approve_from_home(world)
    body = (await world.authorize(AWS_US, scope="openid")).json()
    world.clock.now += 120
    async with world.behind_proxy(HOME_DE) as browser:
        page = await world.consent_page(browser, body["user_code"])
        assert SHORT in page.text
        assert FULL not in page.text
        assert WARNING in page.text
        assert alert_before_buttons(page.text)
        assert buttons(page.text) == ["deny", "approve"]
        assert 'value="deny" class="deny" autofocus' in page.text


async def test_enforce_still_refuses_within_a_remembered_consent(world: World) -> None:
    # Set first: clients are cached for a few seconds; a home approval passes under enforce.
    await world.admin.update_client("tv", ClientChanges(
        proximity_policy=ProximityPolicy.ENFORCE))
    await approve_from_home(world)
    body = (await world.authorize(AWS_US, scope="openid")).json()
    world.clock.now += 120
    async with world.behind_proxy(HOME_DE) as browser:
        page = await world.consent_page(browser, body["user_code"])
        assert SHORT in page.text
        assert buttons(page.text) == ["deny"]
        posted = await browser.post("/device/consent", data={
            "csrf_token": csrf_of(page.text), "user_code": body["user_code"],
            "decision": "approve"})
        assert posted.status_code == 403
        assert "can't be approved here" in html.unescape(posted.text)
    poll = await world.token(AWS_US, {"grant_type": DEVICE_GRANT,
                                      "device_code": body["device_code"]})
    assert (poll.status_code, poll.json()["error"]) == (400, "access_denied")


async def test_authorize_confirms_short_within_remembered_scopes(server: Server) -> None:
    _, challenge = pkce_pair()
    async with server.browser() as browser:
        started = await browser.get(authorize_url(challenge, scope="openid"))
        await sign_in(browser, started.headers["location"])
        page = await browser.get("/tenant/authorize/consent")
        assert FULL in page.text
        assert SHORT not in page.text
        decided = await browser.post("/tenant/authorize/consent", data={
            "csrf_token": field(_CSRF, page.text), "request_id": field(_REQUEST_ID, page.text),
            "decision": "approve"})
        assert decided.status_code == 303
        assert "code=" in decided.headers["location"]

        # The same request again: a page (never a silent redirect), the short one.
        again = await browser.get(authorize_url(challenge, scope="openid"))
        assert again.headers["location"] == "/tenant/authorize/consent"
        page = await browser.get("/tenant/authorize/consent")
        assert SHORT in page.text
        assert FULL not in page.text
        assert '<strong class="destination">127.0.0.1:50123</strong>' in page.text

        # Asking for more: the full list, the new scopes marked.
        more = await browser.get(authorize_url(challenge, scope="openid profile"))
        assert more.headers["location"] == "/tenant/authorize/consent"
        page = await browser.get("/tenant/authorize/consent")
        assert FULL in page.text
        assert page.text.count('<strong class="new-mark">new</strong>') == 1

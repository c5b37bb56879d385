"""What a person sees and how it reaches them (issue 7, section 4): names and User-Agents that
would disguise themselves on the consent page are neutralised when shown, and every response
carries ``Strict-Transport-Security`` when the server is served or advertised over HTTPS."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.integration.web.test_verification_pages import (  # noqa: F401 - harness: a fixture
    DEVICE_GRANT,
    Harness,
    enter_code,
    harness,
    sign_in,
)
from tests.support.limits import generous_limits

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.display import REPLACEMENT
from deviceflow.protocol.models import Client, ClientType
from deviceflow.server.web.app import create_app
from deviceflow.server.web.middleware import HSTS
from deviceflow.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

RLO = "\u202e"


async def test_a_stored_name_and_user_agent_with_bidi_controls_are_shown_neutralised(
    harness: Harness,  # noqa: F811 - the fixture imported above
) -> None:
    """A client registered before names were checked (or written to the database by hand) with
    U+202E: the consent and result pages show U+FFFD where the override was, never the override
    itself, so "Evil<RLO>exe.TV" cannot read as "EvilVT.exe"."""
    async with harness.admin.store.unit_of_work() as uow:
        await uow.clients.add(Client(
            "evil", f"Evil{RLO}exe.TV", ClientType.PUBLIC,
            frozenset({DEVICE_GRANT}), frozenset({"openid"}),
        ))
        await uow.commit()
    await harness.user("alice")
    # Headers are bytes, decoded as ISO-8859-1 by the server: UTF-8 of U+202E arrives as
    # "â", U+0080 (a C1 control), "®", and an ANSI escape arrives as itself.
    async with harness.browser("192.0.2.44") as device:
        response = await device.post(
            "/device_authorization", data={"client_id": "evil", "scope": "openid"},
            headers={"User-Agent": "curl\u202e/8.0\x1b[2J".encode()},
        )
    assert response.status_code == 200, response.text
    grant = response.json()
    async with harness.browser() as browser:
        await enter_code(browser, grant["user_code"])
        await sign_in(browser, "alice")
        consent = await browser.get("/device/consent")
    assert consent.status_code == 200
    for hidden in (RLO, "\x80", "\x1b"):
        assert hidden not in consent.text
    assert f"Evil{REPLACEMENT}exe.TV" in consent.text
    assert f"curl\u00e2{REPLACEMENT}\u00ae/8.0{REPLACEMENT}[2J" in consent.text


async def _responses(issuer: str, **settings: Any) -> list[httpx.Response]:
    app = create_app(ServerSettings(issuer=issuer, redis=None, log_format="text",
                                    **generous_limits(), **settings), store=MemoryStore())
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=transport, base_url=issuer
    ) as http:
        return [
            await http.get("/.well-known/openid-configuration"),
            await http.get("/jwks.json"),
            await http.post("/token", data={"grant_type": "nonsense", "client_id": "x"}),
            await http.post("/device_authorization", data={"client_id": "nobody"}),
            await http.get("/device"),
            await http.get("/static/style.css"),
            await http.get("/no-such-page"),
            await http.get("/healthz"),
        ]


async def test_every_response_carries_hsts_when_the_issuer_is_https() -> None:
    responses = await _responses("https://auth.example.com")
    assert {r.status_code for r in responses} >= {200, 400, 404}
    for response in responses:
        assert response.headers.get("strict-transport-security") == HSTS, response.url
    assert HSTS == "max-age=63072000"


async def test_no_hsts_on_a_plain_http_loopback_issuer() -> None:
    """RFC 6797 §7.2: the header is not sent over plain HTTP (a loopback development server)."""
    for response in await _responses("http://127.0.0.1:8000"):
        assert "strict-transport-security" not in response.headers

"""An issuer with a path (``https://auth.example.com/tenant``): every route under the path,
discovery where OIDC Discovery §4 and RFC 8414 §3.1 put it, every advertised URL answering,
the cookie scoped to the path, and the same behind a proxy that strips the path or keeps it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.models import ClientType
from deviceflow.server.service import AdminService
from deviceflow.server.web.app import create_app
from deviceflow.server.web.middleware import IssuerPathMiddleware
from deviceflow.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

HOST = "http://127.0.0.1:8000"
ISSUER = HOST + "/tenant"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
GENEROUS = {
    "limit_code_per_session": "1000/hour", "limit_code_per_ip": "1000/hour",
    "limit_code_global": "1000/hour", "limit_code_per_account": "1000/hour",
    "limit_login_per_account": "1000/hour", "limit_login_per_ip": "1000/hour",
}


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


@dataclass
class Tenant:
    app: Starlette
    admin: AdminService
    stripped: bool

    def http(self) -> httpx.AsyncClient:
        """What the app receives: with a stripping proxy the path arrives without /tenant, and
        this client plays that proxy (it drops the prefix before the app sees the request)."""
        transport = httpx.ASGITransport(app=self.app, client=("203.0.113.9", 4000))
        if not self.stripped:
            return httpx.AsyncClient(transport=transport, base_url=HOST)

        async def strip(request: httpx.Request) -> None:
            path = request.url.raw_path
            if path.startswith(b"/tenant/") or path == b"/tenant":
                request.url = request.url.copy_with(raw_path=path[len(b"/tenant"):] or b"/")
            elif path == b"/.well-known/oauth-authorization-server/tenant":
                # The nginx example maps RFC 8414's host-root location to the app's own.
                request.url = request.url.copy_with(
                    raw_path=b"/.well-known/oauth-authorization-server")
        return httpx.AsyncClient(transport=transport, base_url=HOST,
                                 event_hooks={"request": [strip]})


@pytest.fixture(params=["proxy-keeps-path", "proxy-strips-path"])
async def tenant(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Tenant]:
    async with _tenant(stripped=request.param == "proxy-strips-path") as value:
        yield value


@pytest.fixture
async def kept(anyio_backend: str) -> AsyncIterator[Tenant]:
    """Behind a proxy that keeps the path (or none): what reaches the app is what was asked."""
    async with _tenant(stripped=False) as value:
        yield value


@contextlib.asynccontextmanager
async def _tenant(*, stripped: bool) -> AsyncIterator[Tenant]:
    store = MemoryStore()
    settings = ServerSettings(issuer=ISSUER, db="sqlite:///unused.sqlite3", log_format="text",
                              proxy_strips_issuer_path=stripped, **GENEROUS)
    app = create_app(settings, store=store)
    async with app.router.lifespan_context(app):
        admin = AdminService(store)
        await admin.add_client("tv", "Living-room TV", ClientType.PUBLIC,
                               [DEVICE_GRANT, "refresh_token"],
                               ["openid", "profile", "offline_access"])
        await admin.add_user("alice", PASSWORD)
        yield Tenant(app, admin, stripped)


async def test_discovery_is_where_oidc_and_rfc8414_put_it(tenant: Tenant) -> None:
    async with tenant.http() as http:
        oidc = await http.get("/tenant/.well-known/openid-configuration")
        rfc8414 = await http.get("/.well-known/oauth-authorization-server/tenant")
        appended = await http.get("/tenant/.well-known/oauth-authorization-server")
    for response in (oidc, rfc8414, appended):
        assert response.status_code == 200
        assert response.json() == oidc.json()
    meta = oidc.json()
    assert meta["issuer"] == ISSUER  # RFC 8414 §3.3: identical to the issuer used
    for key, value in meta.items():
        if key.endswith(("_endpoint", "_uri")):
            assert value.startswith(ISSUER + "/"), key


async def test_every_advertised_url_answers_under_the_path(tenant: Tenant) -> None:
    async with tenant.http() as http:
        meta = (await http.get("/tenant/.well-known/openid-configuration")).json()
        jwks = await http.get(meta["jwks_uri"])
        assert jwks.status_code == 200
        assert jwks.json()["keys"]
        started = await http.post(meta["device_authorization_endpoint"],
                                  data={"client_id": "tv", "scope": "openid"})
        assert started.status_code == 200
        body = started.json()
        assert body["verification_uri"] == ISSUER + "/device"
        assert body["verification_uri_complete"].startswith(ISSUER + "/device?user_code=")
        polled = await http.post(meta["token_endpoint"], data={
            "grant_type": DEVICE_GRANT, "client_id": "tv", "device_code": body["device_code"]})
        assert polled.json()["error"] == "authorization_pending"
        for key in ("userinfo_endpoint",):
            assert (await http.get(meta[key])).status_code == 401
        for key in ("revocation_endpoint", "introspection_endpoint"):
            answered = await http.post(meta[key], data={"token": "x", "client_id": "tv"})
            assert answered.status_code in (200, 401), key  # a route, not a 404
        assert (await http.get("/tenant/healthz")).status_code == 200
        assert (await http.get("/tenant/readyz")).status_code == 200


async def test_nothing_is_served_at_the_host_root(kept: Tenant) -> None:
    async with kept.http() as http:
        for path in ("/token", "/device", "/.well-known/openid-configuration", "/jwks.json",
                     "/.well-known/oauth-authorization-server", "/healthz"):
            response = await http.request("POST" if path == "/token" else "GET", path)
            assert response.status_code == 404, path
            assert "Traceback" not in response.text


async def test_device_login_through_the_pages_under_the_path(tenant: Tenant) -> None:
    async with tenant.http() as device:
        grant = (await device.post("/tenant/device_authorization", data={
            "client_id": "tv", "scope": "openid offline_access"})).json()
    async with tenant.http() as browser:
        page = await browser.get(grant["verification_uri_complete"].removeprefix(HOST))
        assert page.status_code == 200
        cookie = page.headers["set-cookie"]
        assert "path=/tenant;" in cookie.lower()  # scoped to the issuer's path
        assert 'action="/tenant/device"' in page.text
        assert 'href="/tenant/static/style.css"' in page.text
        entered = await browser.post("/tenant/device", data={
            "csrf_token": csrf_of(page.text), "user_code": grant["user_code"]})
        assert entered.status_code == 303
        assert entered.headers["location"] == "/tenant/device/signin"
        page = await browser.get("/tenant/device/signin")
        signed = await browser.post("/tenant/device/signin", data={
            "csrf_token": csrf_of(page.text), "username": "alice", "password": PASSWORD})
        assert signed.headers["location"] == "/tenant/device/consent"
        page = await browser.get("/tenant/device/consent")
        assert page.status_code == 200
        assert 'action="/tenant/device/consent"' in page.text
        assert 'action="/tenant/device/signout"' in page.text
        assert 'href="/tenant/account/devices"' in page.text
        decided = await browser.post("/tenant/device/consent", data={
            "csrf_token": csrf_of(page.text), "user_code": grant["user_code"],
            "decision": "approve"})
        assert decided.headers["location"] == "/tenant/device/done"
        done = await browser.get("/tenant/device/done")
        assert "Device connected" in done.text
        async with tenant.http() as device:
            tokens = await device.post("/tenant/token", data={
                "grant_type": DEVICE_GRANT, "client_id": "tv",
                "device_code": grant["device_code"]})
            assert tokens.status_code == 200
            assert {"access_token", "refresh_token", "id_token"} <= set(tokens.json())
            refreshed = await device.post("/tenant/token", data={
                "grant_type": "refresh_token", "client_id": "tv",
                "refresh_token": tokens.json()["refresh_token"]})
            assert refreshed.status_code == 200
        # The same sign-in reaches "Your devices", which lists the device now signed in.
        devices = await browser.get("/tenant/account/devices")
        assert devices.status_code == 200
        assert "Living-room TV" in devices.text


async def test_an_unknown_page_under_the_path_is_a_page_with_a_way_back(tenant: Tenant) -> None:
    async with tenant.http() as browser:
        response = await browser.get("/tenant/device/nowhere")
    assert response.status_code == 404
    assert 'role="alert"' in response.text
    assert 'href="/tenant/device"' in response.text


def test_issuer_paths_are_plain_segments() -> None:
    for bad in ("https://a.example/ten ant", "https://a.example/%2e%2e", "https://a.example/a/../b",
                "https://a.example/t?x=1"):
        with pytest.raises(ValueError, match="issuer"):
            ServerSettings(issuer=bad)
    assert ServerSettings(issuer="https://a.example/t/").issuer_path == "/t"
    assert ServerSettings(issuer="https://a.example/a/b").issuer_path == "/a/b"
    assert ServerSettings(issuer="https://a.example").issuer_path == ""
    assert ServerSettings(issuer="https://a.example/").issuer_path == ""


def _paths(routes: list[Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for route in routes:
        if isinstance(route, Mount) and route.routes:
            out.extend(_paths(list(route.routes), prefix + route.path))
        else:
            out.append(prefix + route.path)
    return out


def test_every_route_is_under_the_issuers_path() -> None:
    settings = ServerSettings(issuer=ISSUER, db="sqlite:///unused.sqlite3", enable_metrics=True,
                              metrics_token="m" * 32)
    app = create_app(settings, store=MemoryStore())
    paths = _paths(list(app.routes))
    outside = [p for p in paths if not p.startswith("/tenant/")]
    assert outside == ["/.well-known/oauth-authorization-server/tenant"]  # RFC 8414 §3.1
    for expected in ("/token", "/device_authorization", "/device", "/device/signin",
                     "/device/consent", "/device/done", "/device/signout", "/account/devices",
                     "/authorize", "/authorize/consent", "/userinfo", "/revoke", "/introspect",
                     "/jwks.json", "/metrics", "/healthz", "/readyz", "/static",
                     "/.well-known/openid-configuration",
                     "/.well-known/oauth-authorization-server"):
        assert "/tenant" + expected in paths, expected


async def test_issuer_path_middleware_puts_the_path_back(anyio_backend: str) -> None:
    seen: list[tuple[str, bytes]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope.get("path", ""), scope.get("raw_path", b"")))

    wrapped = IssuerPathMiddleware(app, prefix="/tenant")
    await wrapped({"type": "http", "path": "/device", "raw_path": b"/device"}, None, None)
    await wrapped({"type": "http", "path": "/tenant", "raw_path": b"/tenant"}, None, None)
    await wrapped({"type": "lifespan"}, None, None)
    assert seen == [("/tenant/device", b"/tenant/device"),
                    ("/tenant/tenant", b"/tenant/tenant"),  # a stripping proxy always strips
                    ("", b"")]  # lifespan passes untouched

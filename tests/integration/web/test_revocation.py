"""Revocation (RFC 7009 §2.1–2.2) and introspection (RFC 7662 §2.1–2.2) through HTTP, on the
memory store, SQLite and PostgreSQL: another client's token, unknown tokens, the cascade from a
refresh token to its access tokens, access-token revocation, the public client's cascade,
``active: false`` with nothing else, who may introspect, and concurrent revocations of one
login. Approvals go through the service; the app's clock is the test's."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

import httpx
import pytest
from starlette.applications import Starlette
from tests.support.stores import KINDS, open_backend

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.models import DEVICE_CODE_GRANT, ClientType, User
from deviceflow.protocol.verification import Decision
from deviceflow.server.service import AdminService, DecisionOutcome, DeviceFlowService
from deviceflow.server.web.app import create_app
from deviceflow.storage.interface import Store

pytestmark = pytest.mark.anyio

ISSUER = "http://127.0.0.1:8000"
START = 1_800_000_000.0
FORM = "application/x-www-form-urlencoded"
SCOPE = "openid profile offline_access"
CONCURRENT = 20


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Server:
    app: Starlette
    http: httpx.AsyncClient
    clock: Clock
    store: Store
    secrets: dict[str, str] = field(default_factory=dict)
    users: int = 0
    device_code: str = ""
    """The device code of the latest login."""

    @property
    def service(self) -> DeviceFlowService:
        service: DeviceFlowService = self.app.state.service
        return service

    async def add_client(self, client_id: str, *, public: bool = True) -> None:
        kind = ClientType.PUBLIC if public else ClientType.CONFIDENTIAL
        _, secret = await AdminService(self.store, self.clock).add_client(
            client_id, client_id.upper(), kind, (DEVICE_CODE_GRANT, "refresh_token"),
            SCOPE.split())
        if secret is not None:
            self.secrets[client_id] = secret

    def basic(self, client_id: str) -> dict[str, str]:
        raw = f"{quote_plus(client_id)}:{quote_plus(self.secrets[client_id])}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    async def post(self, path: str, form: dict[str, str],
                   headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.http.post(path, content=urlencode(form).encode(),
                                    headers={"Content-Type": FORM, **(headers or {})})

    async def login(self, client_id: str = "tv", scope: str = SCOPE) -> dict[str, Any]:
        self.users += 1
        user = User(f"sub-{self.users}", f"person-{self.users}", "P", "$argon2id$x", START)
        async with self.store.unit_of_work() as uow:
            await uow.users.add(user)
            await uow.commit()
        auth = {"client_id": client_id}
        headers = self.basic(client_id) if client_id in self.secrets else None
        if headers:
            auth = {}
        codes = (await self.post("/device_authorization", {**auth, "scope": scope},
                                 headers)).json()
        outcome = await self.service.verification.record_decision(
            codes["user_code"], Decision.APPROVE, user.user_id, self.clock() - 5)
        assert outcome is DecisionOutcome.RECORDED
        self.device_code = codes["device_code"]
        response = await self.post("/token", {**auth, "grant_type": DEVICE_CODE_GRANT,
                                              "device_code": codes["device_code"]}, headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def revoke(self, token: str, client_id: str = "tv", **form: str) -> httpx.Response:
        if client_id in self.secrets:
            return await self.post("/revoke", {"token": token, **form}, self.basic(client_id))
        return await self.post("/revoke", {"token": token, "client_id": client_id, **form})

    async def introspect(self, token: str, client_id: str = "rs", **form: str
                         ) -> dict[str, Any]:
        response = await self.post("/introspect", {"token": token, **form},
                                   self.basic(client_id))
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body: dict[str, Any] = response.json()
        return body

    async def userinfo(self, access_token: str) -> int:
        response = await self.http.get(
            "/userinfo", headers={"Authorization": f"Bearer {access_token}"})
        return response.status_code

    async def refresh(self, refresh_token: str, client_id: str = "tv") -> httpx.Response:
        return await self.post("/token", {"grant_type": "refresh_token", "client_id": client_id,
                                          "refresh_token": refresh_token})


@contextlib.asynccontextmanager
async def serving(store: Store, **overrides: Any) -> AsyncIterator[Server]:
    values: dict[str, Any] = {"issuer": ISSUER, "redis": None, "signing_alg": "ES256",
                              "limit_device_authorization_per_ip": "100000/minute",
                              "limit_device_codes_per_client": "1000000", **overrides}
    clock = Clock()
    app = create_app(ServerSettings(**values), store=store, clock=clock)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=transport, base_url=ISSUER
    ) as http:
        yield Server(app, http, clock, store)


@pytest.fixture(params=KINDS)
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    """``tv``, ``tv2``: public device clients; ``svc``: a confidential device client; ``rs``: a
    resource server (confidential)."""
    async with open_backend(request.param, tmp_path) as backend, serving(backend.store) as srv:
        for client_id in ("tv", "tv2"):
            await srv.add_client(client_id)
        for client_id in ("svc", "rs"):
            await srv.add_client(client_id, public=False)
        yield srv


def assert_revoked_answer(response: httpx.Response) -> None:
    """RFC 7009 §2.2: 200, and the body (empty here) is ignored."""
    assert response.status_code == 200, response.text
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"


# --- RFC 7009 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token"],
                         ids=["no-hint", "right-hint", "wrong-hint"])
async def test_revoking_a_refresh_token_ends_the_login_and_its_access_tokens(
    server: Server, hint: str | None,
) -> None:
    tokens = await server.login()
    other = await server.login()  # another login of the client: untouched
    assert await server.userinfo(tokens["access_token"]) == 200
    form = {"token_type_hint": hint} if hint else {}
    assert_revoked_answer(await server.revoke(tokens["refresh_token"], **form))
    assert (await server.refresh(tokens["refresh_token"])).status_code == 400
    assert await server.userinfo(tokens["access_token"]) == 401
    assert await server.introspect(tokens["access_token"]) == {"active": False}
    assert await server.introspect(tokens["refresh_token"]) == {"active": False}
    assert await server.userinfo(other["access_token"]) == 200
    assert (await server.refresh(other["refresh_token"])).status_code == 200


async def test_a_rotated_away_access_token_is_denied_with_its_login(server: Server) -> None:
    first = await server.login()
    second = (await server.refresh(first["refresh_token"])).json()
    assert_revoked_answer(await server.revoke(second["refresh_token"]))
    for access_token in (first["access_token"], second["access_token"]):
        assert await server.userinfo(access_token) == 401


async def test_a_public_clients_access_token_ends_its_login(server: Server) -> None:
    tokens = await server.login()
    assert_revoked_answer(await server.revoke(tokens["access_token"],
                                              token_type_hint="access_token"))
    assert await server.userinfo(tokens["access_token"]) == 401
    assert (await server.refresh(tokens["refresh_token"])).status_code == 400


async def test_a_confidential_clients_access_token_is_revoked_alone(server: Server) -> None:
    tokens = await server.login("svc")
    assert_revoked_answer(await server.revoke(tokens["access_token"], "svc"))
    assert await server.userinfo(tokens["access_token"]) == 401
    assert (await server.introspect(tokens["refresh_token"]))["active"] is True
    refreshed = await server.post("/token", {"grant_type": "refresh_token",
                                             "refresh_token": tokens["refresh_token"]},
                                  server.basic("svc"))
    assert refreshed.status_code == 200
    assert await server.userinfo(refreshed.json()["access_token"]) == 200


@pytest.mark.parametrize("kind", ["refresh_token", "access_token"])
async def test_another_clients_token_is_answered_200_and_left_alone(
    server: Server, kind: str,
) -> None:
    tokens = await server.login("tv")
    assert_revoked_answer(await server.revoke(tokens[kind], "tv2"))
    assert_revoked_answer(await server.revoke(tokens[kind], "svc"))
    assert await server.userinfo(tokens["access_token"]) == 200
    assert (await server.refresh(tokens["refresh_token"])).status_code == 200


@pytest.mark.parametrize("token", ["garbage", "eyJhbGciOiJub25lIn0.e30.", "x" * 4000],
                         ids=["opaque", "unsigned-jwt", "long"])
async def test_an_unknown_token_is_answered_200(server: Server, token: str) -> None:
    assert_revoked_answer(await server.revoke(token))
    assert_revoked_answer(await server.revoke(token, token_type_hint="refresh_token"))


async def test_an_id_token_is_unsupported_token_type(server: Server) -> None:
    tokens = await server.login()
    response = await server.revoke(tokens["id_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_token_type"
    assert_revoked_answer(await server.revoke(tokens["id_token"], "tv2"))  # not tv2's


@pytest.mark.parametrize(
    ("form", "headers", "status", "error"),
    [({"client_id": "tv"}, None, 400, "invalid_request"),
     ({"client_id": "tv", "token": ""}, None, 400, "invalid_request"),
     ({"token": "t"}, None, 400, "invalid_client"),
     ({"token": "t", "client_id": "nobody"}, None, 400, "invalid_client"),
     ({"token": "t"}, {"Authorization": "Basic c3ZjOndyb25n"}, 401, "invalid_client")],
    ids=["no-token", "empty-token", "no-client", "unknown-client", "wrong-secret"],
)
async def test_revocation_refusals(server: Server, form: dict[str, str],
                                   headers: dict[str, str] | None, status: int,
                                   error: str) -> None:
    response = await server.post("/revoke", form, headers)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Basic ")


async def test_concurrent_revocations_of_one_login_revoke_it_once(server: Server) -> None:
    tokens = await server.login()
    answers = await asyncio.gather(*(
        server.revoke(tokens["refresh_token"] if i % 2 else tokens["access_token"])
        for i in range(CONCURRENT)))
    assert [r.status_code for r in answers] == [200] * CONCURRENT
    assert await server.userinfo(tokens["access_token"]) == 401
    async with server.store.unit_of_work(read_only=True) as uow:
        assert list(await uow.refresh_tokens.families("sub-1")) == []
        families = [e for e in await uow.denylist.since(0, START) if e.kind == "family"]
    assert len(families) == 1


async def test_replay_of_a_rotated_refresh_token_denies_the_access_tokens(server: Server
                                                                          ) -> None:
    first = await server.login()
    second = (await server.refresh(first["refresh_token"])).json()
    server.clock.now += 120  # past the reuse grace window
    assert (await server.refresh(first["refresh_token"])).status_code == 400
    assert await server.userinfo(second["access_token"]) == 401


async def test_replay_of_a_redeemed_device_code_denies_the_access_tokens(server: Server
                                                                         ) -> None:
    tokens = await server.login()
    replay = await server.post("/token", {"client_id": "tv", "grant_type": DEVICE_CODE_GRANT,
                                          "device_code": server.device_code})
    assert replay.status_code == 400
    assert await server.userinfo(tokens["access_token"]) == 401
    assert await server.introspect(tokens["access_token"]) == {"active": False}


async def test_denylist_entries_are_purged_once_no_token_can_match(server: Server) -> None:
    tokens = await server.login()
    assert_revoked_answer(await server.revoke(tokens["access_token"]))
    async with server.store.unit_of_work(read_only=True) as uow:
        assert len(await uow.denylist.since(0, server.clock.now)) == 2  # jti and family
    server.clock.now += 3600 + 61
    await server.service.tokens.purge_expired()
    async with server.store.unit_of_work(read_only=True) as uow:
        assert await uow.denylist.since(0, 0) == []


async def test_revoke_user_ends_every_login_of_the_person(server: Server) -> None:
    tokens = await server.login()
    revocation = server.service.revocation
    assert await revocation.revoke_user("sub-1", actor="operator") == 1
    assert await server.userinfo(tokens["access_token"]) == 401
    assert await revocation.revoke_family("unknown-family", actor="person") == 0


# --- RFC 7662 ----------------------------------------------------------------------------------


async def test_an_active_access_token_is_described(server: Server) -> None:
    tokens = await server.login("tv", "openid profile")
    body = await server.introspect(tokens["access_token"], token_type_hint="refresh_token")
    assert body["active"] is True
    assert body["client_id"] == "tv"
    assert body["sub"] == "sub-1"
    assert body["username"] == "person-1"
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "openid profile"
    assert body["iss"] == ISSUER
    assert body["gty"] == DEVICE_CODE_GRANT
    assert body["exp"] - body["iat"] == 3600
    assert "fam" not in body


async def test_an_active_refresh_token_is_described(server: Server) -> None:
    tokens = await server.login()
    body = await server.introspect(tokens["refresh_token"])
    assert body["active"] is True
    assert body["client_id"] == "tv"
    assert "token_type" not in body


async def test_inactive_tokens_say_active_false_and_nothing_else(server: Server) -> None:
    expired = await server.login()
    rotated = await server.login()
    (await server.refresh(rotated["refresh_token"])).raise_for_status()
    removed = await server.login()
    async with server.store.unit_of_work() as uow:
        await uow.users.remove("person-3")
        await uow.commit()
    server.clock.now += 3600
    for token in ("garbage", expired["access_token"], rotated["refresh_token"],
                  removed["refresh_token"], expired["id_token"]):
        assert await server.introspect(token) == {"active": False}


@pytest.mark.parametrize(
    ("form", "headers"),
    [({}, None), ({"client_id": "tv"}, None), ({"client_id": "rs"}, None),
     ({}, {"Authorization": "Basic cnM6d3Jvbmc="}), ({}, {"Authorization": "Basic !!"})],
    ids=["anonymous", "public-client", "confidential-without-secret", "wrong-secret",
         "malformed-basic"],
)
async def test_introspection_needs_a_confidential_client(
    server: Server, form: dict[str, str], headers: dict[str, str] | None,
) -> None:
    tokens = await server.login()
    response = await server.post("/introspect", {"token": tokens["access_token"], **form},
                                 headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")


async def test_a_resource_server_may_introspect_any_clients_token(server: Server) -> None:
    tokens = await server.login("tv")
    assert (await server.introspect(tokens["access_token"], "svc"))["active"] is True


async def test_introspection_without_a_token_is_invalid_request(server: Server) -> None:
    response = await server.post("/introspect", {}, server.basic("rs"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# --- feature flags -----------------------------------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False])
async def test_flags_decide_routes_and_metadata(tmp_path: Path, enabled: bool) -> None:
    async with open_backend("memory", tmp_path) as backend, serving(
        backend.store, enable_revocation=enabled, enable_introspection=enabled,
    ) as srv:
        meta = (await srv.http.get("/.well-known/oauth-authorization-server")).json()
        revoke = await srv.post("/revoke", {"token": "t", "client_id": "x"})
        introspect = await srv.post("/introspect", {"token": "t"})
    names = {"revocation_endpoint", "introspection_endpoint",
             "revocation_endpoint_auth_methods_supported",
             "introspection_endpoint_auth_methods_supported"}
    if enabled:
        assert names <= set(meta)
        assert meta["revocation_endpoint"] == ISSUER + "/revoke"
        assert meta["introspection_endpoint"] == ISSUER + "/introspect"
        assert "none" in meta["revocation_endpoint_auth_methods_supported"]
        assert "none" not in meta["introspection_endpoint_auth_methods_supported"]
        assert revoke.status_code == 400
        assert introspect.status_code == 401
    else:
        assert not names & set(meta)
        assert revoke.status_code == 404
        assert introspect.status_code == 404

"""The client credentials grant (RFC 6749 §4.4) through HTTP: confidential clients only, an
access token alone (no refresh token, no ID token), a ``sub`` in the clients' namespace that no
person's can enter (RFC 9700 §4.15), scope within the client's, an audit row, and introspection
and userinfo that know a client's token from a person's."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette

from deviceflow.config.server import ServerSettings
from deviceflow.protocol.audit import AuditEventType, AuditQuery
from deviceflow.protocol.models import Client, ClientChanges, ClientType, User
from deviceflow.server.service import AdminRefused, AdminService
from deviceflow.server.web.app import create_app
from deviceflow.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

ISSUER = "http://127.0.0.1:8000"
CC = "client_credentials"


@dataclass
class Server:
    app: Starlette
    admin: AdminService
    store: MemoryStore

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=ISSUER)


async def _server(**settings: object) -> tuple[Starlette, MemoryStore]:
    store = MemoryStore()
    app = create_app(ServerSettings(issuer=ISSUER, db="sqlite:///unused.sqlite3",
                                    log_format="text", **settings), store=store)
    return app, store


@pytest.fixture
async def server(anyio_backend: str) -> AsyncIterator[Server]:
    app, store = await _server()
    async with app.router.lifespan_context(app):
        yield Server(app, AdminService(store), store)


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def confidential(server: Server, client_id: str, grants: list[str] | None = None,
                       scopes: tuple[str, ...] = ("openid", "profile", "reports.read",
                                                  "reports.write")) -> str:
    _, secret = await server.admin.add_client(client_id, "Nightly job", ClientType.CONFIDENTIAL,
                                              grants if grants is not None else [CC],
                                              list(scopes))
    assert secret is not None
    return secret


async def test_a_confidential_client_gets_an_access_token_alone(server: Server) -> None:
    secret = await confidential(server, "job")
    async with server.http() as http:
        response = await http.post("/token", data={"grant_type": CC},
                                   headers=basic("job", secret))
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
        assert response.headers["cache-control"] == "no-store"
        # Omitted scope: every registered scope that is not about a person (RFC 6749 §3.3).
        assert body["scope"] == "reports.read reports.write"
        meta = (await http.get("/.well-known/openid-configuration")).json()
        keys = KeySet.import_key_set((await http.get(meta["jwks_uri"])).json())
    assert CC in meta["grant_types_supported"]
    claims = jwt.decode(body["access_token"], keys).claims
    assert claims["sub"] == "client:job"
    assert claims["client_id"] == "job"
    assert claims["gty"] == CC
    assert "auth_time" not in claims
    assert "fam" not in claims


async def test_client_secret_post_and_a_narrower_scope(server: Server) -> None:
    secret = await confidential(server, "job")
    async with server.http() as http:
        response = await http.post("/token", data={
            "grant_type": CC, "client_id": "job", "client_secret": secret,
            "scope": "reports.read"})
    assert response.status_code == 200
    assert response.json()["scope"] == "reports.read"


@pytest.mark.parametrize("scope", ["reports.admin", "openid", "offline_access",
                                   "reports.read profile"])
async def test_a_scope_outside_the_clients_or_about_a_person_is_invalid_scope(
    server: Server, scope: str,
) -> None:
    secret = await confidential(server, "job")
    async with server.http() as http:
        response = await http.post("/token", data={"grant_type": CC, "scope": scope},
                                   headers=basic("job", secret))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


async def test_a_wrong_secret_is_invalid_client(server: Server) -> None:
    await confidential(server, "job")
    async with server.http() as http:
        response = await http.post("/token", data={"grant_type": CC},
                                   headers=basic("job", "not-the-secret"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_a_client_not_registered_for_the_grant_is_unauthorized(server: Server) -> None:
    secret = await confidential(server, "tv-backend", grants=["refresh_token"])
    async with server.http() as http:
        response = await http.post("/token", data={"grant_type": CC},
                                   headers=basic("tv-backend", secret))
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


async def test_a_public_client_never_gets_one(server: Server) -> None:
    # Registration refuses it; a row written around the admin is refused at /token as well.
    with pytest.raises(AdminRefused, match="confidential"):
        await server.admin.add_client("cli", "CLI", ClientType.PUBLIC, [CC], ["openid"])
    await server.admin.add_client("cli", "CLI", ClientType.PUBLIC, ["refresh_token"], ["x"])
    with pytest.raises(AdminRefused, match="confidential"):
        await server.admin.update_client("cli", ClientChanges(grant_types=frozenset({CC})))
    async with server.store.unit_of_work() as uow:
        await uow.clients.add(Client("sneaky", "Sneaky", ClientType.PUBLIC,
                                     frozenset({CC}), frozenset({"x"})))
    async with server.http() as http:
        response = await http.post("/token", data={"grant_type": CC, "client_id": "sneaky"})
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


async def test_each_issue_is_audited(server: Server) -> None:
    secret = await confidential(server, "job")
    async with server.http() as http:
        await http.post("/token", data={"grant_type": CC}, headers=basic("job", secret))
    events = await server.admin.audit.query(AuditQuery(client_id="job"))
    assert [(e.event, e.grant_type, e.user_id) for e in events] == [
        (AuditEventType.TOKENS_ISSUED, CC, None)]


async def test_introspection_and_userinfo_know_a_clients_token(server: Server) -> None:
    secret = await confidential(server, "job")
    rs_secret = await confidential(server, "api", grants=[])
    async with server.http() as http:
        token = (await http.post("/token", data={"grant_type": CC},
                                 headers=basic("job", secret))).json()["access_token"]
        seen = (await http.post("/introspect", data={"token": token},
                                headers=basic("api", rs_secret))).json()
        assert seen["active"] is True
        assert seen["sub"] == "client:job"
        assert "username" not in seen
        # userinfo describes a person: a client's own token has none (OIDC Core §5.3).
        assert (await http.get("/userinfo", headers={
            "Authorization": f"Bearer {token}"})).status_code == 401
        await server.admin.remove_client("job")
        server.app.state.service.ctx._clients.clear()  # skip the client cache's few seconds
        gone = (await http.post("/introspect", data={"token": token},
                                headers=basic("api", rs_secret))).json()
    assert gone == {"active": False}


async def test_turned_off_it_is_neither_accepted_nor_advertised(anyio_backend: str) -> None:
    app, store = await _server(enable_client_credentials=False)
    async with app.router.lifespan_context(app):
        _, secret = await AdminService(store).add_client(
            "job", "Job", ClientType.CONFIDENTIAL, [CC], ["x"])
        assert secret is not None
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=ISSUER) as http:
            meta = (await http.get("/.well-known/openid-configuration")).json()
            response = await http.post("/token", data={"grant_type": CC},
                                       headers=basic("job", secret))
    assert CC not in meta["grant_types_supported"]
    assert response.json()["error"] == "unsupported_grant_type"


def test_no_person_can_have_a_sub_in_the_clients_namespace() -> None:
    with pytest.raises(ValueError, match="reserved for clients"):
        User("client:job", "job", "Job", "hash")
    assert User("0123456789abcdef0123456789abcdef", "alice", "Alice", "hash")


async def test_users_made_by_the_operator_are_never_in_the_clients_namespace(
    server: Server,
) -> None:
    user = await server.admin.add_user("client:job", "a long enough password")
    assert not user.user_id.startswith("client:")  # the username is not the sub

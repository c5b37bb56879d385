"""The protocol endpoints through HTTP, on the memory store and on SQLite: discovery (RFC 8414),
device authorization (RFC 8628 §3.1–3.2), the token endpoint (§3.4–3.5, RFC 6749 §5), refresh
(RFC 6749 §6), JWKS and userinfo, malformed input, and logs that never hold a secret.

Each test drives the app's clock, so expiry and ``slow_down`` are exact. Approvals go through the
service (the pages have their own tests)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import pickle
import re
import shutil
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

import anyio
import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from tests.support.limits import generous_limits

from deviceflow.config.server import ServerSettings
from deviceflow.protocol import errors as oauth_errors
from deviceflow.protocol.codes import USER_CODE_ALPHABET
from deviceflow.protocol.models import DEVICE_CODE_GRANT, ClientType, RequestOrigin, User
from deviceflow.protocol.params import FormParams
from deviceflow.protocol.verification import Decision
from deviceflow.server import keys as keys_module
from deviceflow.server.keys import SIGNING_KEY_PREFIX
from deviceflow.server.logs import JsonFormatter
from deviceflow.server.service import AdminService, DecisionOutcome, DeviceFlowService
from deviceflow.server.web.app import create_app
from deviceflow.storage.interface import (
    SecretEncryption,
    StorageUnavailableError,
    Store,
    StoredSecret,
)
from deviceflow.storage.memory import MemoryStore
from deviceflow.storage.sql.engine import create_store, upgrade

pytestmark = pytest.mark.anyio

ISSUER = "http://127.0.0.1:8000"
START = 1_800_000_000.0
FORM = "application/x-www-form-urlencoded"
USER_CODE = re.compile(rf"^[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}$")
ALL_SCOPES = ("openid", "profile", "offline_access")
DESCRIPTIONS = {
    cls.error: cls.description
    for cls in vars(oauth_errors).values()
    if isinstance(cls, type) and issubclass(cls, oauth_errors.OAuthError)
}
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


# --- fixtures -------------------------------------------------------------------------------------


class Clock:
    """The app's clock: tests move it to expire codes and tokens and to pace polls."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _in_thread(factory: Callable[[], Any]) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, factory).result()


@pytest.fixture(scope="session")
def signing_key() -> bytes:
    """One RSA key for the session: generating 2048-bit keys per app would dominate the run.
    Creating and reusing keys is tested in tests/unit/server/test_keys.py and by the CLI."""
    key = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)
    return json.dumps(key.as_dict(private=True)).encode()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; each test gets a copy."""
    path = tmp_path_factory.mktemp("endpoints-template") / "template.sqlite3"
    _in_thread(lambda: upgrade(f"sqlite:///{path}"))
    return path


_IMPORTED_KEYS: dict[tuple[str, bytes], Any] = {}


@pytest.fixture(autouse=True)
def _import_each_key_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing an RSA private key validates it (~50 ms). The import is a pure function of the
    stored bytes, so the session remembers it; everything else about key loading stays real."""
    real = keys_module._import

    def remembered(alg: str, data: bytes) -> Any:
        if (alg, data) not in _IMPORTED_KEYS:
            _IMPORTED_KEYS[alg, data] = real(alg, data)
        return _IMPORTED_KEYS[alg, data]

    monkeypatch.setattr(keys_module, "_import", remembered)


@pytest.fixture(params=["memory", "sqlite"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, signing_key: bytes
) -> AsyncIterator[Store]:
    active: Store
    if request.param == "memory":
        active = MemoryStore()
    else:
        path = tmp_path / "deviceflow.sqlite3"
        shutil.copyfile(sqlite_template, path)
        active = create_store(f"sqlite:///{path}")
    try:
        async with active.unit_of_work() as uow:
            # As 0.1 stored it: the app seals it at start-up, as it would an old database's.
            await uow.secrets.add_if_absent(SIGNING_KEY_PREFIX + "RS256",
                                            StoredSecret(signing_key, SecretEncryption.NONE))
            await uow.commit()
        yield active
    finally:
        await active.close()


@dataclass
class Server:
    """One running app with an HTTP client, its clock and its store."""

    app: Starlette
    http: httpx.AsyncClient
    clock: Clock
    store: Store
    secrets: dict[str, str] = field(default_factory=dict)
    _users: int = 0

    @property
    def service(self) -> DeviceFlowService:
        service: DeviceFlowService = self.app.state.service
        return service

    # --- setup ---------------------------------------------------------------------------------

    async def add_client(
        self, client_id: str, *, public: bool = True,
        grants: tuple[str, ...] = (DEVICE_CODE_GRANT, "refresh_token"),
        scopes: tuple[str, ...] = ALL_SCOPES, lifetime: int | None = None,
    ) -> str | None:
        kind = ClientType.PUBLIC if public else ClientType.CONFIDENTIAL
        _, secret = await AdminService(self.store, self.clock).add_client(
            client_id, client_id.upper(), kind, grants, scopes, lifetime)
        if secret is not None:
            self.secrets[client_id] = secret
        return secret

    async def add_user(self, username: str, name: str = "") -> User:
        # A fixed hash: these tests never sign in, and argon2id per user would only cost time.
        user = User(f"sub-{username}", username, name or username, "$argon2id$unused", START)
        async with self.store.unit_of_work() as uow:
            await uow.users.add(user)
            await uow.commit()
        return user

    # --- requests ------------------------------------------------------------------------------

    async def post(
        self, path: str, form: dict[str, str] | list[tuple[str, str]],
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        # Always the form media type, even for an empty form (httpx omits it then).
        return await self.http.post(path, content=urlencode(form).encode(),
                                    headers={"Content-Type": FORM, **(headers or {})})

    async def authorize(self, client_id: str = "tv", **form: str) -> dict[str, Any]:
        response = await self.post("/device_authorization", {"client_id": client_id, **form})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def poll(
        self, device_code: str, client_id: str = "tv", headers: dict[str, str] | None = None,
        **form: str,
    ) -> httpx.Response:
        return await self.post("/token", {"grant_type": DEVICE_CODE_GRANT,
                                          "device_code": device_code, "client_id": client_id,
                                          **form}, headers)

    async def refresh(self, refresh_token: str, client_id: str = "tv", **form: str
                      ) -> httpx.Response:
        return await self.post("/token", {"grant_type": "refresh_token",
                                          "refresh_token": refresh_token,
                                          "client_id": client_id, **form})

    async def decide(self, user_code: str, user: User, decision: Decision = Decision.APPROVE
                     ) -> None:
        outcome = await self.service.verification.record_decision(user_code, decision, user.user_id,
                                                     self.clock() - 5)
        assert outcome is DecisionOutcome.RECORDED

    async def login(self, client_id: str = "tv", user: User | None = None,
                    **form: str) -> dict[str, Any]:
        """A whole device flow: authorize, approve, redeem. Returns the token response."""
        if user is None:
            self._users += 1
            user = await self.add_user(f"someone-{self._users}")
        codes = await self.authorize(client_id, **form)
        await self.decide(codes["user_code"], user)
        response = await self.poll(codes["device_code"], client_id)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def keys(self) -> KeySet:
        response = await self.http.get("/jwks.json")
        assert response.status_code == 200
        return KeySet.import_key_set(response.json())


@pytest.fixture
def serve(store: Store) -> Callable[..., contextlib.AbstractAsyncContextManager[Server]]:
    """``async with serve(**settings) as server``: the app on the test's store."""

    @contextlib.asynccontextmanager
    async def start(
        *, raise_app_exceptions: bool = True, **overrides: Any
    ) -> AsyncIterator[Server]:
        values: dict[str, Any] = {"issuer": ISSUER, "redis": None, **generous_limits(), **overrides}
        clock = Clock()
        app = create_app(ServerSettings(**values), store=store, clock=clock)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000),
                                        raise_app_exceptions=raise_app_exceptions)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url=values["issuer"]
        ) as http:
            yield Server(app, http, clock, store)

    return start


@pytest.fixture
async def server(
    serve: Callable[..., contextlib.AbstractAsyncContextManager[Server]],
) -> AsyncIterator[Server]:
    """The app with default settings and the usual clients registered:

    - ``tv``: public, device + refresh grants, every scope
    - ``tv2``: public, device + refresh grants (another device client)
    - ``tv-noref``: public, device grant only, openid + profile
    - ``web``: public, refresh grant only (no device grant)
    - ``svc``: confidential, device + refresh grants
    - ``svc:1 x``: confidential, with characters Basic must form-urlencode
    """
    async with serve() as srv:
        await srv.add_client("tv")
        await srv.add_client("tv2")
        await srv.add_client("tv-noref", grants=(DEVICE_CODE_GRANT,), scopes=("openid", "profile"))
        await srv.add_client("web", grants=("refresh_token",))
        await srv.add_client("svc", public=False)
        await srv.add_client("svc:1 x", public=False)
        yield srv


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: form-urlencode id and secret, join with ':', Base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    """An RFC 6749 §5.2 error: exactly ``error`` and its fixed ``error_description``, JSON,
    ``no-store``, and nothing that looks like a stack trace."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": error, "error_description": DESCRIPTIONS[error]}
    assert response.headers["cache-control"] == "no-store"
    assert "Traceback" not in response.text
    assert "File \"" not in response.text


def decode(token: str, keys: KeySet) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a JWS against the server's JWKS; return header and claims."""
    decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256"])
    return dict(decoded.header), dict(decoded.claims)


async def still_serving(server: Server) -> None:
    response = await server.http.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    codes = await server.authorize("tv")
    assert USER_CODE.match(codes["user_code"])


# --- discovery (RFC 8414, OIDC Discovery) --------------------------------------------------------

REQUIRED_METADATA = {
    "issuer", "device_authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint",
    "grant_types_supported", "scopes_supported", "response_types_supported",
    "token_endpoint_auth_methods_supported", "id_token_signing_alg_values_supported",
    "subject_types_supported",
}


@pytest.mark.parametrize(
    "issuer",
    ["http://127.0.0.1:8000", "https://auth.example.com", "https://auth.example.com/"],
    ids=["loopback", "https", "https-trailing-slash"],
)
async def test_discovery_on_both_paths_with_the_issuer_byte_for_byte(
    serve: Callable[..., contextlib.AbstractAsyncContextManager[Server]], issuer: str
) -> None:
    async with serve(issuer=issuer) as srv:
        oidc = await srv.http.get("/.well-known/openid-configuration")
        oauth = await srv.http.get("/.well-known/oauth-authorization-server")
    assert oidc.status_code == oauth.status_code == 200
    assert oidc.content == oauth.content
    assert f'"issuer":{json.dumps(issuer)}' in oidc.text  # the bytes, not just equal JSON
    meta = oidc.json()
    assert meta["issuer"] == issuer
    assert set(meta) >= REQUIRED_METADATA
    base = issuer.rstrip("/")
    assert meta["device_authorization_endpoint"] == base + "/device_authorization"
    assert meta["token_endpoint"] == base + "/token"
    assert meta["jwks_uri"] == base + "/jwks.json"
    assert meta["userinfo_endpoint"] == base + "/userinfo"


async def test_discovery_values(server: Server) -> None:
    response = await server.http.get("/.well-known/openid-configuration")
    meta = response.json()
    assert response.headers["content-type"] == "application/json"
    assert meta["grant_types_supported"] == [
        "authorization_code", DEVICE_CODE_GRANT, "client_credentials", "refresh_token"]
    assert meta["scopes_supported"] == list(ALL_SCOPES)
    # RFC 8414 §2, RFC 7636 §4.3 (S256 only), RFC 9207 §3.
    assert meta["authorization_endpoint"] == ISSUER + "/authorize"
    assert meta["response_types_supported"] == ["code"]
    assert meta["response_modes_supported"] == ["query"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["token_endpoint_auth_methods_supported"] == [
        "none", "client_secret_basic", "client_secret_post"]
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert meta["subject_types_supported"] == ["public"]


@pytest.mark.parametrize(
    ("userinfo", "refresh"),
    [(True, True), (False, True), (True, False), (False, False)],
    ids=["all-on", "userinfo-off", "refresh-off", "all-off"],
)
async def test_feature_flags_decide_what_is_advertised_and_mounted(
    serve: Callable[..., contextlib.AbstractAsyncContextManager[Server]],
    userinfo: bool, refresh: bool,
) -> None:
    async with serve(enable_userinfo=userinfo, enable_refresh_token=refresh) as srv:
        await srv.add_client("tv")
        meta = (await srv.http.get("/.well-known/oauth-authorization-server")).json()
        assert ("userinfo_endpoint" in meta) is userinfo
        assert ("refresh_token" in meta["grant_types_supported"]) is refresh
        assert DEVICE_CODE_GRANT in meta["grant_types_supported"]

        tokens = await srv.login("tv", scope="openid offline_access")
        assert ("refresh_token" in tokens) is refresh
        mounted = await srv.http.get(
            "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
        assert mounted.status_code == (200 if userinfo else 404)
        if not refresh:
            assert_error(await srv.refresh("anything"), 400, "unsupported_grant_type")


async def test_jwks_has_public_keys_only_with_kid(server: Server) -> None:
    response = await server.http.get("/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert {"kty", "kid", "alg", "use"} <= set(key)
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    assert not PRIVATE_JWK_MEMBERS & set(key)


async def test_extra_es256_key_is_published_and_advertised(
    serve: Callable[..., contextlib.AbstractAsyncContextManager[Server]],
) -> None:
    async with serve(extra_signing_algs=("ES256",)) as srv:
        meta = (await srv.http.get("/.well-known/openid-configuration")).json()
        keys = (await srv.http.get("/jwks.json")).json()["keys"]
        assert meta["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
        assert [(k["kty"], k["alg"]) for k in keys] == [("RSA", "RS256"), ("EC", "ES256")]
        assert len({k["kid"] for k in keys}) == 2
        for key in keys:
            assert not PRIVATE_JWK_MEMBERS & set(key)
        await srv.add_client("tv")
        header, _ = decode((await srv.login("tv"))["access_token"], await srv.keys())
        assert header["alg"] == "RS256"  # the extra key is published, not used to sign


# --- device authorization (RFC 8628 §3.1–3.2) -----------------------------------------------------


async def test_device_authorization_response(server: Server) -> None:
    response = await server.post("/device_authorization",
                                 {"client_id": "tv", "scope": "openid profile"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"device_code", "user_code", "verification_uri",
                         "verification_uri_complete", "expires_in", "interval"}
    assert isinstance(body["device_code"], str)
    padded = body["device_code"] + "=" * (-len(body["device_code"]) % 4)
    assert len(base64.urlsafe_b64decode(padded)) >= 32  # ≥ 256 bits
    assert USER_CODE.match(body["user_code"])
    assert body["verification_uri"] == ISSUER + "/device"
    assert body["verification_uri_complete"] == f"{ISSUER}/device?user_code={body['user_code']}"
    assert body["expires_in"] == 600
    assert body["interval"] == 5
    assert type(body["expires_in"]) is int
    assert type(body["interval"]) is int


@pytest.mark.parametrize(
    ("client_id", "how"),
    [("tv", "public"), ("svc", "basic"), ("svc", "post"), ("svc:1 x", "basic"),
     ("svc:1 x", "post")],
    ids=["public-by-client_id", "client_secret_basic", "client_secret_post",
         "basic-urlencoded-id", "post-odd-id"],
)
async def test_device_authorization_client_authentication(
    server: Server, client_id: str, how: str
) -> None:
    form: dict[str, str] = {}
    headers: dict[str, str] = {}
    if how == "public":
        form = {"client_id": client_id}
    elif how == "basic":
        headers = basic(client_id, server.secrets[client_id])
    else:
        form = {"client_id": client_id, "client_secret": server.secrets[client_id]}
    response = await server.post("/device_authorization", form, headers)
    assert response.status_code == 200, response.text
    assert USER_CODE.match(response.json()["user_code"])


def _secret_of(server: Server, spec: str) -> str:
    return server.secrets.get(spec.removeprefix("$"), spec) if spec.startswith("$") else spec


REFUSALS: list[tuple[str, list[tuple[str, str]], tuple[str, str] | None, int, str, bool]] = [
    # (id, form, basic (id, secret) or None, status, error, WWW-Authenticate expected)
    ("basic-and-post", [("client_secret", "$svc")], ("svc", "$svc"), 400, "invalid_request",
     False),
    ("basic-and-other-client_id", [("client_id", "tv")], ("svc", "$svc"), 400,
     "invalid_request", False),
    ("confidential-without-secret", [("client_id", "svc")], None, 400, "invalid_client", False),
    ("confidential-wrong-post", [("client_id", "svc"), ("client_secret", "nope")], None, 400,
     "invalid_client", False),
    ("confidential-wrong-basic", [], ("svc", "nope"), 401, "invalid_client", True),
    ("unknown-client", [("client_id", "nobody")], None, 400, "invalid_client", False),
    ("unknown-client-basic", [], ("nobody", "x"), 401, "invalid_client", True),
    ("public-with-post-secret", [("client_id", "tv"), ("client_secret", "x")], None, 400,
     "invalid_client", False),
    ("public-with-basic-secret", [], ("tv", "x"), 401, "invalid_client", True),
    ("no-client", [("scope", "openid")], None, 400, "invalid_client", False),
    ("no-device-grant", [("client_id", "web")], None, 400, "unauthorized_client", False),
    ("scope-not-allowed", [("client_id", "tv-noref"), ("scope", "openid offline_access")], None,
     400, "invalid_scope", False),
    ("scope-unknown", [("client_id", "tv"), ("scope", "admin")], None, 400, "invalid_scope",
     False),
    ("scope-malformed", [("client_id", "tv"), ("scope", 'open"id')], None, 400, "invalid_scope",
     False),
    ("repeated-client_id", [("client_id", "tv"), ("client_id", "tv")], None, 400,
     "invalid_request", False),
    ("repeated-scope", [("client_id", "tv"), ("scope", "openid"), ("scope", "profile")], None,
     400, "invalid_request", False),
]


@pytest.mark.parametrize(("form", "auth", "status", "error", "challenge"),
                         [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
async def test_device_authorization_refusals(
    server: Server, form: list[tuple[str, str]], auth: tuple[str, str] | None, status: int,
    error: str, challenge: bool,
) -> None:
    resolved = [(k, _secret_of(server, v)) for k, v in form]
    headers = basic(auth[0], _secret_of(server, auth[1])) if auth else None
    response = await server.post("/device_authorization", resolved, headers)
    assert_error(response, status, error)
    if challenge:
        assert response.headers["www-authenticate"] == 'Basic realm="deviceflow", charset="UTF-8"'
    else:
        assert "www-authenticate" not in response.headers
    await still_serving(server)


async def test_unknown_parameters_are_ignored(server: Server) -> None:
    body = await server.authorize("tv", scope="openid", audience="https://api.example.com",
                                  redirect_uri="https://evil.example", foo="bar", nonce="n")
    assert USER_CODE.match(body["user_code"])


async def test_empty_parameters_are_treated_as_absent(server: Server) -> None:
    # RFC 6749 §3.1: a public client sending an empty client_secret has sent no secret.
    response = await server.post("/device_authorization",
                                 {"client_id": "tv", "client_secret": "", "scope": ""})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("settings", "lifetime", "expires_in", "interval"),
    [
        ({}, None, 600, 5),
        ({"device_code_expires_in": 900, "interval": 7}, None, 900, 7),
        ({}, 120, 120, 5),
        ({"device_code_expires_in": 900}, 1800, 1800, 5),
    ],
    ids=["defaults", "server-settings", "per-client", "per-client-beats-server"],
)
async def test_expires_in_per_server_and_per_client_and_interval_always_sent(
    serve: Callable[..., contextlib.AbstractAsyncContextManager[Server]],
    settings: dict[str, int], lifetime: int | None, expires_in: int, interval: int,
) -> None:
    async with serve(**settings) as srv:
        await srv.add_client("dev", lifetime=lifetime)
        body = await srv.authorize("dev")
        assert (body["expires_in"], body["interval"]) == (expires_in, interval)
        srv.clock.advance(expires_in - 1)
        assert_error(await srv.poll(body["device_code"], "dev"), 400, "authorization_pending")
        srv.clock.advance(1)
        assert_error(await srv.poll(body["device_code"], "dev"), 400, "expired_token")


async def test_user_and_device_codes_are_unique(server: Server) -> None:
    bodies = [await server.authorize("tv") for _ in range(25)]
    assert len({b["user_code"] for b in bodies}) == 25
    assert len({b["device_code"] for b in bodies}) == 25


# --- token endpoint, device grant (RFC 8628 §3.4–3.5) ---------------------------------------------


async def test_slow_down_grows_the_interval_by_five_for_all_later_polls(server: Server) -> None:
    codes = await server.authorize("tv")
    # (seconds since the previous poll, answer, the interval the server now holds)
    script = [
        (0, "authorization_pending"),   # first poll: interval 5
        (5, "authorization_pending"),   # waited 5
        (1, "slow_down"),               # too fast: interval 10
        (5, "slow_down"),               # 5 < 10: interval 15
        (15, "authorization_pending"),  # waited 15
        (10, "slow_down"),              # 10 < 15: interval 20
        (20, "authorization_pending"),
        (20, "authorization_pending"),  # the grown interval stays
    ]
    for gap, expected in script:
        server.clock.advance(gap)
        assert_error(await server.poll(codes["device_code"]), 400, expected)
    # After all that the code still works.
    server.clock.advance(20)
    await server.decide(codes["user_code"], await server.add_user("alice"))
    assert (await server.poll(codes["device_code"])).status_code == 200


@pytest.mark.parametrize(
    ("steps", "status", "error"),
    [
        (["deny"], 400, "access_denied"),
        (["deny", "wait-5", "poll", "wait-5"], 400, "access_denied"),
        (["expire"], 400, "expired_token"),
        (["approve", "expire"], 400, "expired_token"),
        (["deny", "expire"], 400, "expired_token"),
        (["poll", "expire", "poll"], 400, "expired_token"),
        (["approve", "poll"], 400, "invalid_grant"),
        (["approve", "poll", "expire"], 400, "invalid_grant"),
        (["expire", "retention", "purge"], 400, "invalid_grant"),
        (["expire", "almost-retention", "purge"], 400, "expired_token"),
    ],
    ids=["denied", "denied-stays-denied", "expired", "approved-then-expired",
         "denied-then-expired", "expired-after-polls", "redeemed", "redeemed-then-expired",
         "purged-after-retention", "kept-during-retention"],
)
async def test_poll_outcomes(
    server: Server, steps: list[str], status: int, error: str
) -> None:
    codes = await server.authorize("tv")
    alice = await server.add_user("alice")
    for step in steps:
        if step == "approve":
            await server.decide(codes["user_code"], alice)
        elif step == "deny":
            await server.decide(codes["user_code"], alice, Decision.DENY)
        elif step == "poll":
            await server.poll(codes["device_code"])
        elif step.startswith("wait-"):
            server.clock.advance(int(step.removeprefix("wait-")))
        elif step == "expire":
            server.clock.advance(600)
        elif step == "retention":
            server.clock.advance(86400 + 1)
        elif step == "almost-retention":
            server.clock.advance(86400 - 600)
        elif step == "purge":
            await server.service.tokens.purge_expired()
    server.clock.advance(5)
    assert_error(await server.poll(codes["device_code"]), status, error)


@pytest.mark.parametrize(
    ("owner", "poller", "approved"),
    [("tv", "tv2", False), ("tv", "tv2", True), ("svc", "tv", True), ("tv", "svc", True)],
    ids=["other-public-pending", "other-public-approved", "public-polls-confidential",
         "confidential-polls-public"],
)
async def test_another_clients_code_is_invalid_grant(
    server: Server, owner: str, poller: str, approved: bool
) -> None:
    if owner == "svc":
        codes = (await server.post("/device_authorization", {},
                                   basic("svc", server.secrets["svc"]))).json()
    else:
        codes = await server.authorize(owner)
    if approved:
        await server.decide(codes["user_code"], await server.add_user("alice"))
    if poller == "svc":
        response = await server.poll(codes["device_code"], "svc",
                                     client_secret=server.secrets["svc"])
    else:
        response = await server.poll(codes["device_code"], poller)
    assert_error(response, 400, "invalid_grant")
    if approved and owner == "tv":
        # The rightful client still gets its tokens: a wrong poll consumed nothing.
        assert (await server.poll(codes["device_code"], owner)).status_code == 200


@pytest.mark.parametrize(
    "device_code",
    ["unknown-code", "x" * 43, "WDJB-MJHT"],
    ids=["unknown", "well-formed-unknown", "a-user-code"],
)
async def test_unknown_device_code_is_invalid_grant(server: Server, device_code: str) -> None:
    assert_error(await server.poll(device_code), 400, "invalid_grant")


async def test_user_code_is_not_a_device_code(server: Server) -> None:
    codes = await server.authorize("tv")
    assert_error(await server.poll(codes["user_code"]), 400, "invalid_grant")
    assert_error(await server.poll(codes["user_code"].replace("-", "")), 400, "invalid_grant")


TOKEN_CLIENT_REFUSALS: list[tuple[str, dict[str, str], tuple[str, str] | None, bool]] = [
    ("unknown-client", {"client_id": "nobody"}, None, False),
    ("unknown-client-basic", {}, ("nobody", "x"), True),
    ("confidential-without-secret", {"client_id": "svc"}, None, False),
    ("confidential-wrong-post", {"client_id": "svc", "client_secret": "nope"}, None, False),
    ("confidential-wrong-basic", {}, ("svc", "nope"), True),
    ("public-with-basic-secret", {}, ("tv", "x"), True),
    ("no-client", {}, None, False),
]


@pytest.mark.parametrize(("form", "auth", "challenge"), [r[1:] for r in TOKEN_CLIENT_REFUSALS],
                         ids=[r[0] for r in TOKEN_CLIENT_REFUSALS])
async def test_token_invalid_client_is_401_with_a_challenge_only_after_basic(
    server: Server, form: dict[str, str], auth: tuple[str, str] | None, challenge: bool
) -> None:
    """RFC 6749 §5.2: 401 + WWW-Authenticate when Basic was tried; otherwise 400, since RFC 9110
    §15.5.2 forbids a 401 without a challenge."""
    codes = await server.authorize("tv")
    response = await server.post(
        "/token", {"grant_type": DEVICE_CODE_GRANT, "device_code": codes["device_code"], **form},
        basic(*auth) if auth else None)
    assert_error(response, 401 if challenge else 400, "invalid_client")
    assert ("www-authenticate" in response.headers) is challenge
    if challenge:
        assert response.headers["www-authenticate"].startswith("Basic ")


async def test_token_basic_and_post_together_is_invalid_request(server: Server) -> None:
    response = await server.post(
        "/token", {"grant_type": DEVICE_CODE_GRANT, "device_code": "x",
                   "client_secret": server.secrets["svc"]}, basic("svc", server.secrets["svc"]))
    assert_error(response, 400, "invalid_request")


async def test_client_without_the_device_grant_is_unauthorized_at_the_token_endpoint(
    server: Server,
) -> None:
    codes = await server.authorize("tv")
    assert_error(await server.poll(codes["device_code"], "web"), 400, "unauthorized_client")


async def test_token_endpoint_ignores_unknown_parameters(server: Server) -> None:
    codes = await server.authorize("tv")
    await server.decide(codes["user_code"], await server.add_user("alice"))
    response = await server.poll(codes["device_code"], scope="admin", audience="x", foo="bar",
                                 redirect_uri="https://evil.example")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == " ".join(sorted(ALL_SCOPES))  # not the ignored "admin"


async def test_missing_device_code_is_invalid_request(server: Server) -> None:
    response = await server.post("/token", {"grant_type": DEVICE_CODE_GRANT, "client_id": "tv"})
    assert_error(response, 400, "invalid_request")


class _Colliding:
    """User codes that collide with the first one issued, then a fresh one."""

    def __init__(self) -> None:
        self.user_codes = iter(["WDJBMJHT", "WDJBMJHT", "WDJBMJHT", "BCDFGHJK"])
        self.n = 0

    def device_code(self) -> str:
        self.n += 1
        return f"colliding-device-code-{self.n:030d}"

    def user_code(self) -> str:
        return next(self.user_codes)

    def token(self) -> str:
        self.n += 1
        return f"colliding-token-{self.n:030d}"


async def test_a_colliding_user_code_is_drawn_again_on_every_store(server: Server) -> None:
    """Storage refuses a live user code twice; the service draws again inside the same
    transaction (on SQL, the failed insert must not spoil it)."""
    service = DeviceFlowService(server.store, server.service.keyring, server.service.policy,
                                server.service.limiter, clock=server.clock, codes=_Colliding())
    origin = RequestOrigin("203.0.113.9", "pytest")
    first = await service.tokens.device_authorization(FormParams({"client_id": "tv"}), None, origin)
    second = await service.tokens.device_authorization(
        FormParams({"client_id": "tv"}), None, origin)
    assert (first.user_code, second.user_code) == ("WDJB-MJHT", "BCDF-GHJK")
    alice = await server.add_user("alice")
    await server.decide("BCDF-GHJK", alice)
    assert (await server.poll(second.device_code)).status_code == 200
    assert_error(await server.poll(first.device_code), 400, "authorization_pending")


@pytest.mark.parametrize(
    ("client_id", "scope", "refresh", "id_token"),
    [
        ("tv", "openid profile offline_access", True, True),
        ("tv", "profile offline_access", True, False),
        ("tv", None, True, True),
        # OIDC Core §11: no offline_access, no refresh token, even with the grant.
        ("tv", "openid profile", False, True),
        ("tv-noref", "openid", False, True),
        ("tv-noref", "profile", False, False),
    ],
    ids=["everything", "no-openid-no-id-token", "default-scope", "no-offline-access",
         "no-refresh-grant", "nothing-extra"],
)
async def test_token_success(
    server: Server, client_id: str, scope: str | None, refresh: bool, id_token: bool
) -> None:
    alice = await server.add_user("alice", "Alice Liddell")
    codes = await server.authorize(client_id, **({"scope": scope} if scope else {}))
    server.clock.advance(30)
    auth_time = server.clock() - 5
    await server.decide(codes["user_code"], alice)
    server.clock.advance(3)
    response = await server.poll(codes["device_code"], client_id)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    granted = scope or " ".join(sorted(ALL_SCOPES if client_id == "tv" else ("openid",
                                                                              "profile")))
    expected_keys = {"access_token", "token_type", "expires_in", "scope"}
    expected_keys |= {"refresh_token"} if refresh else set()
    expected_keys |= {"id_token"} if id_token else set()
    assert set(body) == expected_keys
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == granted

    keys = await server.keys()
    kids = {k.kid for k in keys.keys}
    header, claims = decode(body["access_token"], keys)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    assert header["kid"] in kids
    now = int(server.clock())
    assert set(claims) >= {"iss", "sub", "aud", "client_id", "scope", "exp", "iat", "jti"}
    assert claims["iss"] == ISSUER
    assert claims["sub"] == alice.user_id
    assert claims["aud"] == ISSUER
    assert claims["client_id"] == client_id
    assert claims["scope"] == granted
    assert claims["iat"] == now
    assert claims["exp"] == now + 3600
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 16
    assert claims["gty"] == DEVICE_CODE_GRANT  # the grant that began the login

    if id_token:
        header, claims = decode(body["id_token"], keys)
        assert header["kid"] in kids
        assert header["typ"] == "JWT"
        assert claims["iss"] == ISSUER
        assert claims["sub"] == alice.user_id
        assert claims["aud"] == client_id
        assert claims["iat"] == now
        assert claims["exp"] == now + 3600
        assert claims["auth_time"] == int(auth_time)
        profile = "profile" in granted.split()
        assert ("preferred_username" in claims) is profile
        if profile:
            assert (claims["preferred_username"], claims["name"]) == ("alice", "Alice Liddell")


@pytest.mark.parametrize("how", ["basic", "post"])
async def test_confidential_client_polls_and_redeems(server: Server, how: str) -> None:
    secret = server.secrets["svc:1 x"]
    auth = basic("svc:1 x", secret)
    form = {} if how == "basic" else {"client_id": "svc:1 x", "client_secret": secret}
    codes = (await server.post("/device_authorization", form,
                               auth if how == "basic" else None)).json()
    await server.decide(codes["user_code"], await server.add_user("alice"))
    response = await server.post(
        "/token", {"grant_type": DEVICE_CODE_GRANT, "device_code": codes["device_code"], **form},
        auth if how == "basic" else None)
    assert response.status_code == 200, response.text
    assert "refresh_token" in response.json()


async def test_access_tokens_are_distinct_per_login(server: Server) -> None:
    alice = await server.add_user("alice")
    first, second = await server.login("tv", alice), await server.login("tv", alice)
    keys = await server.keys()
    assert decode(first["access_token"], keys)[1]["jti"] != \
        decode(second["access_token"], keys)[1]["jti"]
    assert first["refresh_token"] != second["refresh_token"]


# --- refresh grant (RFC 6749 §6) ------------------------------------------------------------------


async def test_refresh_rotates_and_replay_revokes_the_family(server: Server) -> None:
    alice = await server.add_user("alice")
    first = await server.login("tv", alice, scope="openid profile offline_access")
    server.clock.advance(60)

    response = await server.refresh(first["refresh_token"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == "openid profile offline_access"
    _, claims = decode(second["access_token"], await server.keys())
    assert claims["sub"] == alice.user_id
    assert claims["iat"] == int(server.clock())
    assert claims["gty"] == DEVICE_CODE_GRANT  # still the device login, not "refresh_token"
    _, id_claims = decode(second["id_token"], await server.keys())
    assert id_claims["auth_time"] == int(START - 5)  # the original sign-in, not the refresh

    # The rotated token comes back after the reuse grace window: invalid_grant, and the whole
    # family is revoked ...
    server.clock.advance(61)
    assert_error(await server.refresh(first["refresh_token"]), 400, "invalid_grant")
    assert_error(await server.refresh(second["refresh_token"]), 400, "invalid_grant")
    # ... but another login of the same person is untouched.
    other = await server.login("tv", alice)
    assert (await server.refresh(other["refresh_token"])).status_code == 200


async def test_a_lost_refresh_response_can_be_retried_within_the_grace_window(
    server: Server,
) -> None:
    first = await server.login("tv", scope="openid offline_access")
    lost = await server.refresh(first["refresh_token"])  # never reaches the device
    assert lost.status_code == 200
    server.clock.advance(20)
    retried = await server.refresh(first["refresh_token"])
    assert retried.status_code == 200, retried.text
    assert_error(await server.refresh(lost.json()["refresh_token"]), 400, "invalid_grant")
    assert (await server.refresh(retried.json()["refresh_token"])).status_code == 200


@pytest.mark.parametrize(
    ("requested", "status", "granted"),
    [
        (None, 200, "openid offline_access"),
        ("openid", 200, "openid"),
        ("offline_access openid", 200, "offline_access openid"),
        ("openid profile offline_access", 400, "invalid_scope"),
        ("profile", 400, "invalid_scope"),
        ("admin", 400, "invalid_scope"),
    ],
    ids=["omitted-is-original", "narrower", "same-reordered", "wider", "other-allowed-scope",
         "unknown"],
)
async def test_refresh_scope_is_at_most_the_original(
    server: Server, requested: str | None, status: int, granted: str
) -> None:
    tokens = await server.login("tv", scope="openid offline_access")
    response = await server.refresh(tokens["refresh_token"],
                                    **({"scope": requested} if requested else {}))
    if status != 200:
        assert_error(response, status, granted)
        # A refused request consumed nothing: the token still works.
        assert (await server.refresh(tokens["refresh_token"])).status_code == 200
        return
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == granted
    assert decode(body["access_token"], await server.keys())[1]["scope"] == granted
    # Narrowing is for this access token only: the next refresh may ask for the original again.
    again = await server.refresh(body["refresh_token"], scope="openid offline_access")
    assert again.status_code == 200
    assert again.json()["scope"] == "openid offline_access"


async def test_refresh_token_of_another_client_is_invalid_grant_and_revokes_nothing(
    server: Server,
) -> None:
    tokens = await server.login("tv")
    assert_error(await server.refresh(tokens["refresh_token"], "tv2"), 400, "invalid_grant")
    assert (await server.refresh(tokens["refresh_token"], "tv")).status_code == 200


@pytest.mark.parametrize(
    ("refresh_token", "advance", "error"),
    [("garbage", 0, "invalid_grant"), (None, 30 * 86400, "invalid_grant")],
    ids=["unknown", "expired"],
)
async def test_refresh_refusals(
    server: Server, refresh_token: str | None, advance: int, error: str
) -> None:
    tokens = await server.login("tv")
    server.clock.advance(advance)
    assert_error(await server.refresh(refresh_token or tokens["refresh_token"]), 400, error)


async def test_refresh_without_the_grant_is_unauthorized_client(server: Server) -> None:
    tokens = await server.login("tv")
    assert_error(await server.refresh(tokens["refresh_token"], "tv-noref"), 400,
                 "unauthorized_client")
    response = await server.post("/token", {"grant_type": "refresh_token", "client_id": "tv"})
    assert_error(response, 400, "invalid_request")  # no refresh_token parameter


# --- userinfo (OIDC Core §5.3, RFC 6750) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("openid", {"sub"}),
        ("openid profile", {"sub", "preferred_username", "name"}),
        ("profile", {"sub", "preferred_username", "name"}),
        ("offline_access", {"sub"}),
    ],
    ids=["openid", "openid-profile", "profile", "no-profile"],
)
async def test_userinfo_claims_by_scope(server: Server, scope: str, expected: set[str]) -> None:
    alice = await server.add_user("alice", "Alice Liddell")
    tokens = await server.login("tv", alice, scope=scope)
    for method in ("GET", "POST"):
        response = await server.http.request(
            method, "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
        assert response.status_code == 200
        body = response.json()
        assert set(body) == expected
        assert body["sub"] == alice.user_id
        if "name" in expected:
            assert (body["preferred_username"], body["name"]) == ("alice", "Alice Liddell")


@pytest.mark.parametrize(
    "case",
    ["missing", "empty-bearer", "garbage", "basic-scheme", "expired", "id-token", "tampered",
     "deleted-user"],
)
async def test_userinfo_refuses_with_401_and_a_bearer_challenge(server: Server, case: str) -> None:
    alice = await server.add_user("alice")
    tokens = await server.login("tv", alice, scope="openid profile")
    access, id_token = tokens["access_token"], tokens["id_token"]
    header: str | None = {
        "missing": None,
        "empty-bearer": "Bearer ",
        "garbage": "Bearer not.a.jwt",
        "basic-scheme": "Basic " + access,
        "expired": "Bearer " + access,
        "id-token": "Bearer " + id_token,
        "tampered": "Bearer " + access[:-6] + ("AAAAAA" if not access.endswith("AAAAAA")
                                                 else "BBBBBB"),
        "deleted-user": "Bearer " + access,
    }[case]
    if case == "expired":
        server.clock.advance(3600)
    if case == "deleted-user":
        await AdminService(server.store).remove_user("alice")
    response = await server.http.get("/userinfo",
                                     headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="deviceflow"')
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == "invalid_token"
    assert "Traceback" not in response.text
    assert response.headers["cache-control"] == "no-store"


# --- malformed input ------------------------------------------------------------------------------

_BIG = b"client_id=tv&grant_type=x&pad=" + b"a" * (64 * 1024)


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(body), 8192):
        yield body[i:i + 8192]


MALFORMED: list[tuple[str, bytes, dict[str, str]]] = [
    ("no-content-type", b"client_id=tv", {}),
    ("json", b'{"client_id": "tv"}', {"Content-Type": "application/json"}),
    ("text-plain", b"client_id=tv", {"Content-Type": "text/plain"}),
    ("multipart", b"--x\r\n\r\n--x--", {"Content-Type": "multipart/form-data; boundary=x"}),
    ("over-64k", _BIG, {"Content-Type": FORM}),
    ("raw-non-utf8", b"client_id=t\xffv&grant_type=x", {"Content-Type": FORM}),
    ("escaped-non-utf8", b"client_id=t%FFv&grant_type=x", {"Content-Type": FORM}),
    ("repeated", b"client_id=tv&client_id=tv&grant_type=x", {"Content-Type": FORM}),
    ("bad-content-length", b"client_id=tv", {"Content-Type": FORM, "Content-Length": "-1"}),
]


@pytest.mark.parametrize(("body", "headers"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
async def test_malformed_bodies_are_invalid_request(
    server: Server, body: bytes, headers: dict[str, str]
) -> None:
    for path in ("/token", "/device_authorization"):
        response = await server.http.post(path, content=body, headers=headers)
        assert_error(response, 400, "invalid_request")
        await still_serving(server)


async def test_body_over_64k_without_content_length_is_invalid_request(server: Server) -> None:
    for path in ("/token", "/device_authorization"):
        response = await server.http.post(path, content=_chunks(_BIG),
                                          headers={"Content-Type": FORM})
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert_error(response, 400, "invalid_request")
        await still_serving(server)


async def test_a_body_of_exactly_64k_is_read(server: Server) -> None:
    head = b"client_id=tv&pad="
    body = head + b"a" * (64 * 1024 - len(head))
    response = await server.http.post("/device_authorization", content=body,
                                      headers={"Content-Type": FORM})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"client_id": "tv"}, 400, "invalid_request"),
        ({"client_id": "tv", "grant_type": ""}, 400, "invalid_request"),
        ({"client_id": "tv", "grant_type": "password"}, 400, "unsupported_grant_type"),
        # Offered now, but not to this public client (RFC 6749 §4.4), and without a code.
        ({"client_id": "tv", "grant_type": "client_credentials"}, 400, "unauthorized_client"),
        ({"client_id": "tv", "grant_type": "authorization_code"}, 400, "invalid_request"),
        ({"client_id": "tv", "grant_type": "device_code"}, 400, "unsupported_grant_type"),
        ({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}, 400,
         "unsupported_grant_type"),
    ],
    ids=["missing-grant_type", "empty-grant_type", "password", "client_credentials",
         "authorization_code", "short-device_code-name", "jwt-bearer-unauthenticated"],
)
async def test_grant_type(server: Server, form: dict[str, str], status: int, error: str) -> None:
    assert_error(await server.post("/token", form), status, error)
    await still_serving(server)


@pytest.mark.parametrize("path", ["/token", "/device_authorization"])
async def test_only_post_on_post_endpoints(server: Server, path: str) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = await server.http.request(method, path)
        assert response.status_code == 405, method
        assert response.headers["allow"] == "POST"
        body = response.json()
        assert set(body) == {"error", "error_description"}
        assert "Traceback" not in response.text
        await still_serving(server)


@pytest.mark.parametrize(
    ("exception", "status", "error"),
    [(RuntimeError, 500, "server_error"),
     (ConnectionRefusedError, 503, "temporarily_unavailable"),
     (StorageUnavailableError, 503, "temporarily_unavailable")],
    ids=["bug", "outage", "database-connection-lost"],
)
async def test_unexpected_failures_answer_without_a_traceback(
    serve: Callable[..., contextlib.AbstractAsyncContextManager[Server]],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    exception: type[Exception], status: int, error: str,
) -> None:
    async with serve(raise_app_exceptions=False) as srv:
        await srv.add_client("tv")

        async def broken(*args: object) -> None:
            raise exception("internal detail: /var/lib/secret.db")

        with monkeypatch.context() as patched:
            patched.setattr(srv.service.tokens, "token", broken)
            with caplog.at_level(logging.ERROR):
                response = await srv.post("/token", {"grant_type": DEVICE_CODE_GRANT,
                                                     "client_id": "tv", "device_code": "x"})
            assert_error(response, status, error)
            assert "internal detail" not in response.text
            assert any(r.exc_info for r in caplog.records), "the traceback goes to the log"
        await still_serving(srv)


# --- secrets at rest ------------------------------------------------------------------------------


async def test_codes_tokens_and_client_secrets_are_never_stored_in_plaintext(
    server: Server,
) -> None:
    """Device codes, user codes and refresh tokens only as HMAC-SHA-256, client secrets hashed:
    after a whole flow, none of them is anywhere in the database files."""
    alice = await server.add_user("alice")
    auth = basic("svc", server.secrets["svc"])
    codes = (await server.post("/device_authorization", {"scope": "openid offline_access"},
                               auth)).json()
    await server.decide(codes["user_code"], alice)
    form = {"grant_type": DEVICE_CODE_GRANT, "device_code": codes["device_code"]}
    tokens = (await server.post("/token", form, auth)).json()
    rotated = (await server.post("/token", {"grant_type": "refresh_token",
                                            "refresh_token": tokens["refresh_token"]},
                                 auth)).json()
    plaintexts = [codes["device_code"], codes["user_code"], codes["user_code"].replace("-", ""),
                  tokens["refresh_token"], rotated["refresh_token"], server.secrets["svc"],
                  server.secrets["svc:1 x"]]
    if isinstance(server.store, MemoryStore):
        # In memory, what is kept is the store's state: every value it holds, serialized.
        stored = pickle.dumps(server.store._state)
    else:
        await server.store.close()  # checkpoint the WAL so the main file holds everything
        database = Path(str(server.store.engine.url.database))  # type: ignore[attr-defined]
        stored = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert b"alice" in stored  # what is stored in the clear is there to be found
    for plaintext in plaintexts:
        assert plaintext.encode() not in stored


# --- logs -----------------------------------------------------------------------------------------


async def test_no_log_line_holds_a_code_or_a_token(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = await server.add_user("alice")
    secrets: list[str] = [server.secrets["svc"]]

    # A confidential client, through every step of the flow.
    auth = basic("svc", server.secrets["svc"])
    codes = (await server.post("/device_authorization",
                               {"scope": "openid profile offline_access"}, auth)).json()
    secrets += [codes["device_code"], codes["user_code"], codes["user_code"].replace("-", "")]
    token_form = {"grant_type": DEVICE_CODE_GRANT, "device_code": codes["device_code"]}
    await server.post("/token", token_form, auth)                      # pending
    await server.post("/token", token_form, auth)                      # slow_down
    await server.poll(codes["device_code"], "tv")                      # another client's code
    await server.http.get("/device", params={"user_code": codes["user_code"]})
    await server.decide(codes["user_code"].lower(), alice)
    server.clock.advance(10)
    tokens = (await server.post("/token", token_form, auth)).json()
    secrets += [tokens["access_token"], tokens["refresh_token"], tokens["id_token"]]

    refresh_form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    rotated = (await server.post("/token", refresh_form, auth)).json()
    secrets += [rotated["access_token"], rotated["refresh_token"]]
    await server.post("/token", {**refresh_form, "scope": "admin"}, auth)  # invalid_scope
    retried = (await server.post("/token", refresh_form, auth)).json()  # within the grace window
    secrets += [retried["access_token"], retried["refresh_token"]]
    server.clock.advance(61)
    await server.post("/token", refresh_form, auth)                    # replay: family revoked
    await server.post("/token", token_form, auth)                      # redeemed: replay
    await server.http.get("/userinfo",
                          headers={"Authorization": "Bearer " + rotated["access_token"]})
    server.clock.advance(7200)
    await server.http.get("/userinfo",
                          headers={"Authorization": "Bearer " + rotated["access_token"]})
    await server.post("/token", token_form, basic("svc", "wrong-" + server.secrets["svc"]))

    # The test's own HTTP client (httpx, httpcore) logs URLs; it is not the server.
    server_records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert {r.name for r in server_records} >= {"deviceflow.access", "deviceflow.web"}, \
        "the flow logged nothing: the check would prove nothing"
    formatter = JsonFormatter()
    for record in server_records:
        line = formatter.format(record) + repr(vars(record))
        for secret in secrets:
            assert secret not in line, f"{record.name} logged a secret: {record.getMessage()}"


# --- the harness itself ---------------------------------------------------------------------------


def test_descriptions_cover_every_error_code() -> None:
    assert set(DESCRIPTIONS) >= {
        "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
        "unsupported_grant_type", "invalid_scope", "authorization_pending", "slow_down",
        "access_denied", "expired_token", "server_error", "temporarily_unavailable",
    }


@pytest.fixture(autouse=True)
def _no_leaked_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test, never from the developer's DEVICEFLOW_* environment."""
    for name in list(os.environ):
        if name.startswith("DEVICEFLOW_") and name != "DEVICEFLOW_TOKEN_STORE":
            monkeypatch.delenv(name)

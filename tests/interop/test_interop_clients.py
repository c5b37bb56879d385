"""Interop with widely used third-party client libraries: each completes a device login (RFC 8628)
against a running ``deviceflow serve`` over HTTPS, the login approved through the pages by a
browser without JavaScript, and must come back with an access token, an ID token and a refresh
token, then refresh with the library's own refresh call.

- from npm (``tests/interop/clients.mjs``, pinned in package.json/package-lock.json):
  openid-client 6, openid-client 5 (under the alias ``openid-client-5``), oauth4webapi (with
  OpenID discovery, and again with RFC 8414 discovery);
- from PyPI (pinned in pyproject.toml's ``dev`` extra): Authlib's httpx and requests clients,
  oauthlib's ``DeviceClient`` with requests-oauthlib, requests-oauth2client, MSAL Python
  (``PublicClientApplication(oidc_authority=…)``);
- openid-client 6 and Authlib also through the authorization code grant with PKCE (RFC 6749
  §4.1, RFC 7636), as native apps catching the code on a loopback redirect (RFC 8252 §7.3).

Every test runs against an issuer with a path (``https://127.0.0.1:{port}/tenant``: MSAL
accepts no other) and against a root issuer. The server's certificate comes from a CA made by
the test (``tests/support/tls.py``); each client trusts that CA the way its users would
(``NODE_EXTRA_CA_CERTS``, ``REQUESTS_CA_BUNDLE``, ``verify=``), never by turning verification
off. Every ID token is checked here as well as by the library: signature against the server's
JWKS, ``iss`` equal to the issuer, ``aud`` equal to the client; every access token is used at
the userinfo endpoint.

Marker ``interop_clients`` (``pytest -m interop_clients``). Needs ``npm ci --prefix
tests/interop`` (``scripts/test`` runs it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry
from tests.support.forms import LoopbackRedirect, approve_authorization, approve_device_login
from tests.support.servers import (
    DEVICE_GRANT,
    PASSWORD,
    SCOPE,
    ServerProcess,
    add_client,
    add_users,
    migrated_database,
    start_server,
    wait_ready,
)
from tests.support.tls import make_test_tls

HERE = Path(__file__).resolve().parent
pytestmark = [pytest.mark.interop_clients, pytest.mark.slow]

NODE_LIBRARIES = ("openid-client", "openid-client-5", "oauth4webapi", "oauth4webapi-rfc8414")
PYTHON_LIBRARIES = ("authlib-httpx", "authlib-requests", "requests-oauthlib",
                    "requests-oauth2client", "msal")
CODE_FLOW_CLIENTS = ("openid-client-code", "authlib-code")
LIBRARIES = NODE_LIBRARIES + PYTHON_LIBRARIES + CODE_FLOW_CLIENTS


def client_id_for(library: str) -> str:
    return f"interop-{library}"


def username_for(library: str) -> str:
    return f"user-{library}"


@dataclass
class Server:
    process: ServerProcess
    users: dict[str, str]
    """username → sub"""

    @property
    def issuer(self) -> str:
        return self.process.issuer

    def metadata(self) -> dict[str, Any]:
        url = self.issuer + "/.well-known/openid-configuration"
        body: dict[str, Any] = httpx.get(url, verify=self.process.verify, timeout=10).json()
        return body

    def jwks(self) -> KeySet:
        jwks = httpx.get(self.metadata()["jwks_uri"], verify=self.process.verify, timeout=10)
        return KeySet.import_key_set(jwks.json())


PATH_ISSUER = "/tenant"


@pytest.fixture(scope="module", params=[PATH_ISSUER, ""], ids=["path-issuer", "root-issuer"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[Server]:
    """An HTTPS server whose issuer has a path (``https://127.0.0.1:{port}/tenant``, every route
    below it) or none; one client id and one user per library."""
    issuer_path: str = request.param
    tmp = tmp_path_factory.mktemp("interop-clients")
    tls = make_test_tls(tmp / "tls")
    with migrated_database("sqlite", tmp) as db:
        users = add_users(db, [username_for(library) for library in LIBRARIES])
        for library in NODE_LIBRARIES + PYTHON_LIBRARIES:
            add_client(db, client_id_for(library))
        for library in CODE_FLOW_CLIENTS:
            # A native app's loopback redirect: any port at request time (RFC 8252 §7.3).
            add_client(db, client_id_for(library), grants=("authorization_code", "refresh_token"),
                       redirect_uris=("http://127.0.0.1/callback",))
        process = start_server("interop-clients", db, tmp, tls=tls, issuer_path=issuer_path)
        try:
            wait_ready(process)
            yield Server(process, users)
        finally:
            process.stop()


# --- what every client must have received --------------------------------------------------------


def check_id_token(server: Server, id_token: str, client_id: str, sub: str) -> dict[str, Any]:
    """OIDC Core §3.1.3.7: the signature verifies with a key from the server's JWKS, ``iss`` is
    the issuer exactly, ``aud`` is the client; ``sub`` is the user who approved."""
    token = jwt.decode(id_token, server.jwks(), algorithms=["RS256", "ES256"])
    JWTClaimsRegistry(
        iss={"essential": True, "value": server.issuer},
        aud={"essential": True, "value": client_id},
        sub={"essential": True, "value": sub},
        exp={"essential": True},
        iat={"essential": True},
    ).validate(token.claims)
    return dict(token.claims)


def check_tokens(
    server: Server, tokens: dict[str, Any], library: str, *, id_token_required: bool = True
) -> dict[str, Any]:
    """Access, ID and refresh tokens, and the access token works at the server (userinfo)."""
    client_id = client_id_for(library)
    sub = server.users[username_for(library)]
    assert str(tokens["token_type"]).lower() == "bearer"
    assert tokens["access_token"]
    assert tokens["refresh_token"]
    claims: dict[str, Any] = {}
    if id_token_required or tokens.get("id_token"):
        assert tokens["id_token"], f"{library}: no ID token"
        claims = check_id_token(server, tokens["id_token"], client_id, sub)
    info = httpx.get(
        server.metadata()["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        verify=server.process.verify, timeout=10,
    )
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == sub
    return claims


def check_login(
    server: Server, library: str, tokens: dict[str, Any], refreshed: dict[str, Any],
) -> None:
    check_tokens(server, tokens, library)
    # A refresh answers with a new access token (the ID token is optional there, OIDC Core §12.2,
    # but checked when present).
    check_tokens(server, refreshed, library, id_token_required=False)
    assert refreshed["access_token"] != tokens["access_token"]


class Approver:
    """Approves the login in a browser (another thread) while the library polls, as a person
    would with the code on the device's screen."""

    def __init__(self, server: Server, library: str) -> None:
        self.server = server
        self.library = library
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def __call__(self, request: dict[str, Any]) -> None:
        """``request``: a device authorization response (``verification_uri_complete``), or an
        authorization request (``url``) to be answered at ``redirect_uri``."""
        username, verify = username_for(self.library), self.server.process.verify
        start = request.get("verification_uri_complete") or request["url"]
        for url in (start, request.get("verification_uri") or start):
            assert url.startswith(self.server.issuer + "/"), url  # under a path issuer's path

        def run() -> None:
            try:
                if "redirect_uri" in request:
                    approve_authorization(start, request["redirect_uri"], username, PASSWORD,
                                          verify)
                else:
                    approve_device_login(start, username, PASSWORD, verify)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, name=f"approve-{self.library}", daemon=True)
        self.thread.start()

    def join(self) -> None:
        assert self.thread is not None, "the library never showed a code"
        self.thread.join(60)
        if self.error is not None:
            raise self.error


# --- npm libraries -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    missing = [name for name in ("openid-client", "openid-client-5", "oauth4webapi")
               if not (HERE / "node_modules" / name).is_dir()]
    if found is None or missing:
        pytest.fail(f"node or {missing} missing: run `npm ci --prefix tests/interop`.",
                    pytrace=False)
    return found


def run_node_client(
    node: str, server: Server, library: str, approve: Callable[[dict[str, Any]], None]
) -> dict[str, dict[str, Any]]:
    """Run clients.mjs; hand the code event to ``approve``; return the events by name."""
    assert server.process.tls is not None
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(server.process.tls.ca_file)}
    events: dict[str, dict[str, Any]] = {}
    # stderr to a file: a pipe nobody reads while stdout is being read could fill and stall it.
    with tempfile.TemporaryFile("w+") as errors, subprocess.Popen(
        [node, str(HERE / "clients.mjs"), library, server.issuer, client_id_for(library), SCOPE],
        cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                event = json.loads(line)
                events[event["event"]] = event
                if event["event"] in ("code", "authorize"):
                    approve(event)
            code = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
        errors.seek(0)
        stderr = errors.read()
    assert "error" not in events, f"{library}: {events['error']}\n{stderr}"
    assert code == 0, stderr
    return events


@pytest.mark.parametrize("library", NODE_LIBRARIES)
def test_node_library_device_login(server: Server, node: str, library: str) -> None:
    approver = Approver(server, library)
    events = run_node_client(node, server, library, approver)
    approver.join()
    tokens, refreshed = events["tokens"], events["refreshed"]
    check_login(server, library, tokens["tokens"], refreshed["tokens"])
    # The library's own validated claims agree with ours.
    assert tokens["claims"]["iss"] == server.issuer
    assert tokens["claims"]["aud"] in (client_id_for(library), [client_id_for(library)])
    assert tokens["claims"]["sub"] == server.users[username_for(library)]


# --- PyPI libraries ------------------------------------------------------------------------------


def poll(fetch: Callable[[], dict[str, Any]], interval: float,
         error_of: Callable[[Exception], str | None]) -> dict[str, Any]:
    """The RFC 8628 §3.5 loop for libraries that leave it to the application: wait
    ``interval``, ask, go on while ``authorization_pending``, 5 s more on ``slow_down``."""
    while True:
        time.sleep(interval)
        try:
            return fetch()
        except Exception as exc:
            error = error_of(exc)
            if error == "authorization_pending":
                continue
            if error == "slow_down":
                interval += 5
                continue
            raise


def authlib_httpx_client() -> Any:
    """Authlib's httpx ``OAuth2Client``. Authlib 1.9 prefers the httpx2 package and warns on
    import when its httpx client runs on httpx, which is what deviceflow and its users have: the
    client is tested on httpx and that one warning is silenced. (``authlib.deprecate`` puts an
    "always" filter first when imported, so it is imported before the "ignore" goes in front.)"""
    import authlib.deprecate  # noqa: F401 - its filter first, ours in front of it

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The httpx module is deprecated", DeprecationWarning)
        from authlib.integrations.httpx_client import OAuth2Client
    return OAuth2Client


def authlib_login(server: Server, library: str, approve: Callable[[dict[str, Any]], None],
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Authlib's OAuth2Client (httpx) or OAuth2Session (requests): ``fetch_token`` with the
    device grant (Authlib has no device-authorization helper on the client side), then
    ``refresh_token``; the ID token validated with Authlib's ``CodeIDToken`` claims."""
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.oidc.core import CodeIDToken

    OAuth2Client = authlib_httpx_client()

    client_id = client_id_for(library)
    if library == "authlib-httpx":
        client: Any = OAuth2Client(client_id, token_endpoint_auth_method="none", scope=SCOPE,
                                   verify=server.process.verify)
    else:
        client = OAuth2Session(client_id, token_endpoint_auth_method="none", scope=SCOPE)
    with client:
        # withhold_token: these requests go out before there is a token to attach.
        meta = client.request("GET", server.issuer + "/.well-known/openid-configuration",
                              withhold_token=True).json()
        response = client.request("POST", meta["device_authorization_endpoint"],
                                  data={"client_id": client_id, "scope": SCOPE},
                                  withhold_token=True)
        assert response.status_code == 200, response.text
        authorization = response.json()
        approve(authorization)
        tokens = poll(
            lambda: dict(client.fetch_token(meta["token_endpoint"], grant_type=DEVICE_GRANT,
                                            device_code=authorization["device_code"])),
            authorization["interval"],
            lambda exc: exc.error if isinstance(exc, OAuthError) else None,
        )
        refreshed = dict(client.refresh_token(meta["token_endpoint"],
                                              refresh_token=tokens["refresh_token"]))
    decoded = jwt.decode(tokens["id_token"], server.jwks())
    claims = CodeIDToken(decoded.claims, decoded.header, {"iss": {"values": [server.issuer]}},
                         {"client_id": client_id, "access_token": tokens["access_token"]})
    claims.validate()
    return tokens, refreshed


def requests_oauthlib_login(
    server: Server, library: str, approve: Callable[[dict[str, Any]], None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """oauthlib's ``DeviceClient`` in a requests-oauthlib ``OAuth2Session``."""
    from oauthlib.oauth2 import DeviceClient, OAuth2Error
    from requests_oauthlib import OAuth2Session

    client_id = client_id_for(library)
    device = DeviceClient(client_id)
    with OAuth2Session(client=device, scope=SCOPE.split()) as session:
        meta = session.get(server.issuer + "/.well-known/openid-configuration").json()
        # DeviceClient prepares the device authorization request's parameters as a URI query;
        # RFC 8628 §3.1 sends them as a form body, so they go there.
        uri = device.prepare_request_uri(meta["device_authorization_endpoint"], scope=SCOPE)
        endpoint, _, query = uri.partition("?")
        response = session.post(
            endpoint, data=query,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200, response.text
        authorization = response.json()
        approve(authorization)
        tokens = poll(
            lambda: dict(session.fetch_token(meta["token_endpoint"],
                                             device_code=authorization["device_code"],
                                             include_client_id=True)),
            authorization["interval"],
            lambda exc: exc.error if isinstance(exc, OAuth2Error) else None,
        )
        refreshed = dict(session.refresh_token(meta["token_endpoint"],
                                               refresh_token=tokens["refresh_token"],
                                               client_id=client_id))
    return tokens, refreshed


def requests_oauth2client_login(
    server: Server, library: str, approve: Callable[[dict[str, Any]], None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """requests-oauth2client: discovery, ``authorize_device``, its own polling job,
    ``refresh_token``; the ID token validated by its ``IdToken`` (jwskate) against the JWKS
    the client fetched at discovery."""
    import requests
    from requests_oauth2client import DeviceAuthorizationPollingJob, OAuth2Client

    client_id = client_id_for(library)
    with requests.Session() as session:
        # requests-oauth2client 1.8 reads every endpoint from discovery except
        # device_authorization_endpoint (its from_discovery_document leaves it out): it is
        # handed over from the same document.
        device_endpoint = session.get(
            server.issuer + "/.well-known/openid-configuration").json()[
            "device_authorization_endpoint"]
        client = OAuth2Client.from_discovery_endpoint(
            issuer=server.issuer, client_id=client_id, session=session,
            device_authorization_endpoint=device_endpoint)
        authorization = client.authorize_device(scope=SCOPE)
        approve({"verification_uri_complete": authorization.verification_uri_complete,
                 "verification_uri": authorization.verification_uri})
        job = DeviceAuthorizationPollingJob(client, authorization)
        token = None
        while token is None:
            token = job()
        refreshed = client.refresh_token(token)
        jwks = client.authorization_server_jwks
        assert token.id_token is not None
        key = jwks.get_jwk_by_kid(token.id_token.kid)
        token.id_token.validate(key, issuer=server.issuer, audience=client_id)

    def as_dict(bearer: Any) -> dict[str, Any]:
        return {"token_type": bearer.token_type, "access_token": bearer.access_token,
                "refresh_token": bearer.refresh_token,
                "id_token": str(bearer.id_token) if bearer.id_token else None}

    return as_dict(token), as_dict(refreshed)


def msal_login(
    server: Server, library: str, approve: Callable[[dict[str, Any]], None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """MSAL Python with a generic OpenID Connect authority (``oidc_authority``): MSAL accepts
    only an https authority with a path segment and reads ``authorization_endpoint`` from
    discovery. It asks for ``openid profile offline_access`` by itself; the refresh is its
    ``acquire_token_silent(force_refresh=True)`` with the cached refresh token."""
    import msal

    assert server.process.tls is not None
    assert server.process.issuer_path  # the root issuer leg asserts MSAL refuses it
    app = msal.PublicClientApplication(
        client_id_for(library), oidc_authority=server.issuer,
        verify=str(server.process.tls.ca_file))
    flow = app.initiate_device_flow(scopes=[])
    assert "user_code" in flow, flow
    approve(flow)
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    [account] = app.get_accounts()
    assert account["local_account_id"] == server.users[username_for(library)]
    refreshed = app.acquire_token_silent_with_error([], account, force_refresh=True)
    assert refreshed is not None
    assert "access_token" in refreshed, refreshed
    return result, refreshed


PYTHON_FLOWS = {
    "authlib-httpx": authlib_login,
    "authlib-requests": authlib_login,
    "requests-oauthlib": requests_oauthlib_login,
    "requests-oauth2client": requests_oauth2client_login,
    "msal": msal_login,
}


@pytest.mark.parametrize("library", PYTHON_LIBRARIES)
def test_python_library_device_login(
    server: Server, library: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # How a requests user trusts a private CA (it also outranks a session's own ``verify``).
    assert server.process.tls is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.process.tls.ca_file))
    if library == "msal" and not server.process.issuer_path:
        # MSAL's own limit (msal/authority.py canonicalize), not the server's: it refuses an
        # issuer without a path segment before sending anything. The path issuer leg logs in.
        import msal

        with pytest.raises(ValueError, match="a minimum of one segment in a path"):
            msal.PublicClientApplication(client_id_for(library), oidc_authority=server.issuer)
        return
    approver = Approver(server, library)
    tokens, refreshed = PYTHON_FLOWS[library](server, library, approver)
    approver.join()
    check_login(server, library, tokens, refreshed)


# --- authorization code + PKCE -------------------------------------------------------------------


def test_openid_client_authorization_code_with_pkce(server: Server, node: str) -> None:
    """openid-client 6 as a native app: its own loopback listener, PKCE S256, state and nonce,
    and RFC 9207's ``iss`` checked by the library."""
    library = "openid-client-code"
    approver = Approver(server, library)
    events = run_node_client(node, server, library, approver)
    approver.join()
    assert events["authorize"]["redirect_uri"].startswith("http://127.0.0.1:")
    check_login(server, library, events["tokens"]["tokens"], events["refreshed"]["tokens"])
    assert events["tokens"]["claims"]["nonce"]


def test_authlib_authorization_code_with_pkce(server: Server) -> None:
    """Authlib's httpx client: ``create_authorization_url`` with PKCE S256 and a nonce, the
    redirect caught on a loopback listener, ``fetch_token(authorization_response=…)`` (which
    checks ``state``), the ``iss`` of the response checked as RFC 9207 §2.4 asks of the client,
    and the ID token validated by Authlib's ``CodeIDToken`` (nonce, at_hash)."""
    from urllib.parse import parse_qs, urlsplit

    from authlib.common.security import generate_token
    from authlib.oidc.core import CodeIDToken

    OAuth2Client = authlib_httpx_client()

    library = "authlib-code"
    client_id = client_id_for(library)
    verifier, nonce = generate_token(48), generate_token(20)
    with LoopbackRedirect() as loopback, OAuth2Client(
        client_id, token_endpoint_auth_method="none", scope=SCOPE,
        redirect_uri=loopback.redirect_uri, code_challenge_method="S256",
        verify=server.process.verify,
    ) as client:
        meta = client.request("GET", server.issuer + "/.well-known/openid-configuration",
                              withhold_token=True).json()
        assert meta["authorization_response_iss_parameter_supported"] is True
        url, state = client.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
        approve_authorization(url, loopback.redirect_uri, username_for(library), PASSWORD,
                              server.process.verify)
        callback = loopback.callback_url()
        assert parse_qs(urlsplit(callback).query)["iss"] == [server.issuer]
        tokens = dict(client.fetch_token(meta["token_endpoint"], authorization_response=callback,
                                         state=state, code_verifier=verifier))
        refreshed = dict(client.refresh_token(meta["token_endpoint"],
                                              refresh_token=tokens["refresh_token"]))
    decoded = jwt.decode(tokens["id_token"], server.jwks())
    CodeIDToken(decoded.claims, decoded.header, {"iss": {"values": [server.issuer]}},
                {"client_id": client_id, "nonce": nonce,
                 "access_token": tokens["access_token"]}).validate()
    assert decoded.claims["nonce"] == nonce
    check_login(server, library, tokens, refreshed)

"""The same protocol over HTTP on PostgreSQL as on SQLite (RFC 8628 §3.1–3.5, RFC 6749 §6,
RFC 9700 §4.14.2): one real server per database, approvals through the verification pages.

Each database gets a server of its own (uvicorn in a thread, the SQL store on a fresh database);
PostgreSQL is the machine's, on a database made for this module and dropped after it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.support.limits import generous_limits
from tests.support.servers import (
    PASSWORD,
    SCOPE,
    add_client,
    add_users,
    approve_via_http,
    authorize_device,
    browser,
    csrf_of,
    deny_via_http,
    migrated_database,
    poll_form,
    scalar,
)

from deviceflow.config.server import ServerSettings
from deviceflow.server.embedded import free_port, serve_in_thread

pytestmark = pytest.mark.slow


@dataclass
class Server:
    kind: str
    base_url: str
    db_url: str
    users: dict[str, str]

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ],
)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    kind: str = request.param
    with migrated_database(kind, tmp_path_factory.mktemp(f"protocol-{kind}")) as db_url:
        users = add_users(db_url, ["alice", "bob"])
        add_client(db_url, "tv")
        add_client(db_url, "short", lifetime=2)
        port = free_port()
        settings = ServerSettings(
            host="127.0.0.1", port=port, issuer=f"http://127.0.0.1:{port}", db=db_url,
            interval=1, log_format="text", **generous_limits(),
        )
        with serve_in_thread(settings) as base_url:
            yield Server(kind, base_url, db_url, users)


def poll(http: httpx.Client, client_id: str, device_code: str) -> httpx.Response:
    return http.post("/token", data=poll_form(client_id, device_code))


def error_of(response: httpx.Response) -> str:
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.headers["cache-control"] == "no-store"
    error: str = response.json()["error"]
    return error


def test_discovery_names_this_server(server: Server) -> None:
    with server.http() as http:
        metadata = http.get("/.well-known/openid-configuration").json()
    assert metadata["issuer"] == server.base_url
    assert metadata["device_authorization_endpoint"] == server.base_url + "/device_authorization"
    assert "urn:ietf:params:oauth:grant-type:device_code" in metadata["grant_types_supported"]


def test_full_device_flow_through_the_pages(server: Server) -> None:
    with server.http() as http:
        started = authorize_device(http, "tv", SCOPE)
        assert started["verification_uri"] == server.base_url + "/device"
        assert started["interval"] == 1
        assert error_of(poll(http, "tv", started["device_code"])) == "authorization_pending"

        assert approve_via_http(server.base_url, started["user_code"], "alice", PASSWORD)

        time.sleep(1.1)  # keep to the interval: an approved code is redeemed at any pace anyway
        issued = poll(http, "tv", started["device_code"])
        assert issued.status_code == 200, issued.text
        tokens: dict[str, Any] = issued.json()
        assert tokens["token_type"].lower() == "bearer"
        assert {"access_token", "id_token", "refresh_token", "expires_in"} <= tokens.keys()
        assert tokens["scope"].split() == SCOPE.split()

        info = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert info.status_code == 200, info.text
        assert info.json()["sub"] == server.users["alice"]

        # Single use: the code is redeemed, whatever comes next.
        assert error_of(poll(http, "tv", started["device_code"])) == "invalid_grant"
    status = scalar(server.db_url, "SELECT status FROM device_authorizations WHERE status = "
                    "'redeemed' AND user_id = :u", {"u": server.users["alice"]})
    assert status == "redeemed"


def test_denied_through_the_pages(server: Server) -> None:
    with server.http() as http:
        started = authorize_device(http, "tv")
        assert deny_via_http(server.base_url, started["user_code"], "bob", PASSWORD)
        assert error_of(poll(http, "tv", started["device_code"])) == "access_denied"
        # A decided code cannot be decided again on the pages.
        assert not approve_via_http(server.base_url, started["user_code"], "bob", PASSWORD)
        assert error_of(poll(http, "tv", started["device_code"])) == "access_denied"


def test_slow_down_grows_the_interval_for_later_polls(server: Server) -> None:
    with server.http() as http:
        device_code = authorize_device(http, "tv")["device_code"]
        assert error_of(poll(http, "tv", device_code)) == "authorization_pending"
        fast = poll(http, "tv", device_code)
        assert error_of(fast) == "slow_down"
        # The interval is now 1 + 5 s: a poll after the original 1 s is still too fast.
        time.sleep(1.2)
        assert error_of(poll(http, "tv", device_code)) == "slow_down"
    # Polling state lives outside the database (in process here, Redis when configured): a
    # pending poll never writes, so the stored record keeps its original interval.
    stored = scalar(server.db_url, "SELECT max(interval) FROM device_authorizations "
                    "WHERE status = 'pending'")
    assert stored == 1


def test_expired_code_answers_expired_token(server: Server) -> None:
    with server.http() as http:
        started = authorize_device(http, "short")  # this client's codes live 2 s
        assert started["expires_in"] == 2
        time.sleep(2.2)
        assert error_of(poll(http, "short", started["device_code"])) == "expired_token"
    # The pages refuse the expired code as they refuse any other (no oracle), with no 5xx.
    with browser(server.base_url) as page:
        form = page.get("/device")
        refused = page.post("/device", data={"csrf_token": csrf_of(form.text),
                                             "user_code": started["user_code"]})
        assert refused.status_code == 400
        assert 'role="alert"' in refused.text


def test_refresh_rotation_and_replay(server: Server) -> None:
    with server.http() as http:
        started = authorize_device(http, "tv")
        assert approve_via_http(server.base_url, started["user_code"], "bob", PASSWORD)
        first = poll(http, "tv", started["device_code"]).json()

        def refresh(token: str) -> httpx.Response:
            return http.post("/token", data={
                "grant_type": "refresh_token", "client_id": "tv", "refresh_token": token,
            })

        rotated = refresh(first["refresh_token"])
        assert rotated.status_code == 200, rotated.text
        second = rotated.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert second["access_token"] != first["access_token"]
        info = http.get("/userinfo", headers={"Authorization": f"Bearer {second['access_token']}"})
        assert info.json()["sub"] == server.users["bob"]

        # Once its successor was used, replaying the rotated token is refused and revokes the
        # whole family (RFC 9700 §4.14.2), so the newest token stops working too.
        third = refresh(second["refresh_token"])
        assert third.status_code == 200, third.text
        assert error_of(refresh(first["refresh_token"])) == "invalid_grant"
        assert error_of(refresh(third.json()["refresh_token"])) == "invalid_grant"

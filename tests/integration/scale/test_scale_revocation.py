"""Revocation across processes: two ``deviceflow serve`` processes, A and B, on one PostgreSQL
database and one Redis. A login revoked on A is refused by ``/userinfo`` on B within a second
(B's copy of the denylist reads what is new at most once a second, ``server/denylist.py``),
and introspection on B says ``active: false`` from then on."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from tests.support.servers import (
    PASSWORD,
    SCOPE,
    ServerProcess,
    add_client,
    add_users,
    approve_via_http,
    authorize_device,
    poll_form,
    run_sync,
    serve_subprocesses,
)

from deviceflow.protocol.models import ClientType
from deviceflow.server.service import AdminService
from deviceflow.storage.sql.engine import create_store

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

VISIBLE_WITHIN = 1.0
"""The denylist's refresh period; the check below allows HTTP round trips on top."""
SLACK = 0.25


@pytest.fixture(scope="module")
def pair(redis_db_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[ServerProcess, ServerProcess, str]]:
    add_users(pg_url, ["alice"])
    add_client(pg_url, "tv")

    async def resource_server() -> str:
        store = create_store(pg_url, pool_size=1)
        try:
            _, secret = await AdminService(store).add_client(
                "rs", "Resource server", ClientType.CONFIDENTIAL, [], [])
        finally:
            await store.close()
        assert secret is not None
        return secret

    secret = run_sync(resource_server)
    with serve_subprocesses(["A", "B"], pg_url, tmp_path_factory.mktemp("revocation-logs"),
                            redis_url=redis_db_url, interval=1,
                            # One issuer for both, as behind one load balancer: B accepts A's
                            # tokens (the later --issuer wins over the per-port default).
                            extra=["--issuer", "http://127.0.0.1:8999"]) as (a, b):
        yield a, b, secret


def login(a: ServerProcess, b: ServerProcess) -> dict[str, str]:
    started = authorize_device(a.base_url, "tv", SCOPE)
    assert approve_via_http(b.base_url, started["user_code"], "alice", PASSWORD)
    response = httpx.post(a.base_url + "/token", data=poll_form("tv", started["device_code"]))
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


def test_a_revocation_on_a_is_refused_on_b_within_a_second(
    pair: tuple[ServerProcess, ServerProcess, str],
) -> None:
    a, b, secret = pair
    tokens = login(a, b)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    with httpx.Client(base_url=b.base_url, timeout=10) as on_b:
        assert on_b.get("/userinfo", headers=bearer).status_code == 200  # B's copy is warm
        revoked = httpx.post(a.base_url + "/revoke",
                             data={"token": tokens["refresh_token"], "client_id": "tv"})
        assert revoked.status_code == 200
        start = time.monotonic()
        while (status := on_b.get("/userinfo", headers=bearer).status_code) == 200:
            assert time.monotonic() - start < VISIBLE_WITHIN + SLACK, "B still accepts it"
            time.sleep(0.02)
        elapsed = time.monotonic() - start
        assert status == 401
        assert elapsed < VISIBLE_WITHIN + SLACK
        introspected = on_b.post("/introspect", data={"token": tokens["access_token"]},
                                 auth=("rs", secret))
        assert introspected.json() == {"active": False}

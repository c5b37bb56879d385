"""Operations: ``/metrics`` (Prometheus text format, behind a bearer token) after a real flow,
``/readyz`` with its dependencies up and down, and an access log that keeps quiet about probes.

The flow runs on a real server (uvicorn in a thread, SQLite) through the pages; the scrape is
parsed with prometheus_client's own parser, so what is asserted is what Prometheus would read.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from tests.conftest import make_settings
from tests.support.databases import _execute, admin_postgres_url
from tests.support.servers import (
    PASSWORD,
    add_client,
    add_users,
    approve_via_http,
    authorize_device,
    browser,
    csrf_of,
    deny_via_http,
    poll_form,
    require_redis,
    shared_redis_url,
)
from tests.support.stores import open_backend

from deviceflow.config.server import ServerSettings
from deviceflow.server.embedded import serve_in_thread
from deviceflow.server.web.app import create_app
from deviceflow.storage.interface import Store
from deviceflow.storage.memory import MemoryStore

TOKEN = secrets.token_urlsafe(32)
ISSUER = "http://127.0.0.1:8000"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def scrape(base_url: str) -> Samples:
    response = httpx.get(base_url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- /metrics after a real flow --------------------------------------------------------------


def test_metrics_count_a_real_flow(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, enable_metrics=True, metrics_token=TOKEN,
                             limit_code_per_session="2/hour")
    with serve_in_thread(settings) as base:
        add_users(settings.db, ["alice"])
        add_client(settings.db, "tv")
        with httpx.Client(base_url=base, timeout=30) as device:
            def poll(code: str) -> str:
                body = device.post("/token", data=poll_form("tv", code)).json()
                return str(body.get("error", "success"))

            pending = authorize_device(device, "tv")
            assert poll(pending["device_code"]) == "authorization_pending"
            assert poll(pending["device_code"]) == "slow_down"
            approved = authorize_device(device, "tv")
            assert approve_via_http(base, approved["user_code"], "alice", PASSWORD)
            issued = device.post("/token", data=poll_form("tv", approved["device_code"]))
            assert issued.status_code == 200
            for token_value in (issued.json()["access_token"], "not-a-token-we-issued"):
                revoked = device.post("/revoke", data={"client_id": "tv", "token": token_value})
                assert revoked.status_code == 200  # the unknown one revokes nothing: not counted
            assert poll(approved["device_code"]) == "invalid_grant"  # redeemed already
            denied = authorize_device(device, "tv")
            assert deny_via_http(base, denied["user_code"], "alice", PASSWORD)
            assert poll(denied["device_code"]) == "access_denied"
            assert poll("x") == "invalid_grant"  # no such device code
            unknown = device.post("/token", data=poll_form("nobody", "x"))
            assert unknown.json()["error"] == "invalid_client"  # raised, not returned
        with browser(base) as attacker:  # two wrong codes spend the session's budget of two
            for code, status in (("BCDF-GHJK", 400), ("LMNP-QRST", 400), ("VWXZ-BCDF", 429)):
                page = attacker.get("/device")
                entered = attacker.post("/device", data={"csrf_token": csrf_of(page.text),
                                                         "user_code": code})
                assert entered.status_code == status
        assert httpx.get(base + "/no/such/page-4f1d").status_code == 404
        samples = scrape(base)

    polls = {answer: value(samples, "deviceflow_polls_total", answer=answer) for answer in (
        "authorization_pending", "slow_down", "success", "invalid_grant", "access_denied",
        "invalid_client", "expired_token")}
    assert polls == {"authorization_pending": 1, "slow_down": 1, "success": 1,
                     "invalid_grant": 2, "access_denied": 1, "invalid_client": 1,
                     "expired_token": 0}
    assert value(samples, "deviceflow_approvals_total") == 1
    assert value(samples, "deviceflow_denials_total") == 1
    assert value(samples, "deviceflow_tokens_issued_total", grant_type="urn:ietf:params:oauth:"
                 "grant-type:device_code") == 1
    assert value(samples, "deviceflow_throttles_total", budget="code_per_session") == 1
    assert value(samples, "deviceflow_revocations_total", token_type="access_token") == 1
    assert value(samples, "deviceflow_revocations_total", token_type="refresh_token") == 0
    assert value(samples, "deviceflow_workers") == 1

    token = {"endpoint": "/token", "method": "POST"}
    assert value(samples, "deviceflow_http_requests_total", status="200", **token) == 1
    assert value(samples, "deviceflow_http_requests_total", status="400", **token) == 6
    assert value(samples, "deviceflow_http_request_duration_seconds_count", **token) == 7
    assert value(samples, "deviceflow_http_request_duration_seconds_bucket", le="+Inf",
                 **token) == 7
    assert value(samples, "deviceflow_http_requests_total", endpoint="/device", method="POST",
                 status="429") == 1
    assert value(samples, "deviceflow_http_requests_total", endpoint="/device/consent",
                 method="POST", status="303") == 2
    # A path no route matches is one label value, never the path itself.
    assert value(samples, "deviceflow_http_requests_total", endpoint="unmatched", method="GET",
                 status="404") == 1
    assert not [key for key in samples if any("page-4f1d" in v for _, v in key[1])]


# --- the guard -------------------------------------------------------------------------------


@pytest.fixture
async def app_client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    app = create_app(ServerSettings(issuer=ISSUER, redis=None, **overrides), store=MemoryStore())
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=transport, base_url=ISSUER
    ) as http:
        yield http


METRICS_ON = {"enable_metrics": True, "metrics_token": TOKEN}


@pytest.mark.anyio
@pytest.mark.parametrize("app_client", [METRICS_ON], indirect=True)
@pytest.mark.parametrize("authorization", [
    None, "Bearer wrong-token-of-some-length-000000000000", f"Basic {TOKEN}", f"Bearer {TOKEN}x",
    "Bearer", f"bearer {TOKEN[:-1]}",
], ids=["none", "wrong", "basic", "longer", "empty", "shorter"])
async def test_metrics_refused_without_the_token(
    app_client: httpx.AsyncClient, authorization: str | None,
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await app_client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert response.content == b""
    ok = await app_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert "deviceflow_polls_total" in ok.text


@pytest.mark.anyio
async def test_metrics_off_by_default(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404


@pytest.mark.parametrize("token", [None, "short"], ids=["missing", "short"])
def test_metrics_need_a_long_token(token: str | None) -> None:
    with pytest.raises(ValidationError, match="DEVICEFLOW_METRICS_TOKEN of at least 32"):
        ServerSettings(enable_metrics=True, metrics_token=token)


# --- /readyz ---------------------------------------------------------------------------------


async def _readyz(store: Store, **overrides: Any) -> tuple[int, dict[str, Any], Any]:
    app = create_app(ServerSettings(issuer=ISSUER, **{"redis": None, **overrides}), store=store)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=transport, base_url=ISSUER
    ) as http:
        response = await http.get("/readyz")
        assert response.headers["cache-control"] == "no-store"
        return response.status_code, response.json(), app


@pytest.mark.anyio
async def test_readyz_ok_on_memory() -> None:
    status, body, _ = await _readyz(MemoryStore())
    assert (status, body) == (200, {"status": "ok", "database": "ok"})


@pytest.mark.anyio
async def test_readyz_redis_ok_and_unreachable() -> None:
    require_redis()
    status, body, _ = await _readyz(MemoryStore(), redis=shared_redis_url())
    assert (status, body) == (200, {"status": "ok", "database": "ok", "redis": "ok"})
    # A port nobody listens on: the app still starts (polling and limits fail open or closed
    # as designed), and readiness says why it should get no traffic.
    status, body, _ = await _readyz(MemoryStore(), redis="redis://127.0.0.1:1/0")
    assert (status, body) == (503, {"status": "unavailable", "database": "ok",
                                    "redis": "unavailable"})


@pytest.mark.anyio
@pytest.mark.postgres
async def test_readyz_503_when_the_database_is_gone(tmp_path: Path) -> None:
    async with open_backend("postgres", tmp_path) as backend:
        assert backend.url is not None
        name = backend.url.rsplit("/", 1)[1]
        app = create_app(ServerSettings(issuer=ISSUER, redis=None), store=backend.store)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url=ISSUER
        ) as http:
            assert (await http.get("/readyz")).status_code == 200
            await _execute(admin_postgres_url(), f'DROP DATABASE "{name}" WITH (FORCE)')
            with anyio.fail_after(10):
                response = await http.get("/readyz")
            assert response.status_code == 503
            assert response.json() == {"status": "unavailable", "database": "unavailable"}
            assert (await http.get("/healthz")).status_code == 200  # alive all the same


# --- the access log --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_probes_stay_out_of_the_access_log(
    app_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="deviceflow.access"):
        assert (await app_client.get("/healthz")).status_code == 200
        assert (await app_client.get("/readyz")).status_code == 200
        assert (await app_client.get("/.well-known/openid-configuration")).status_code == 200
    access = [r.getMessage() for r in caplog.records if r.name == "deviceflow.access"]
    assert access == ["GET /.well-known/openid-configuration 200"]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="deviceflow.access"):
        await app_client.get("/readyz")
    assert [r.getMessage() for r in caplog.records if r.name == "deviceflow.access"] == [
        "GET /readyz 200"]

"""Housekeeping under load: 100,000 expired device authorizations and 20,000 expired refresh
tokens, bulk-inserted through SQL, are purged in the background in small batches while requests
keep being answered, on SQLite and on PostgreSQL.

Two servers share the database, as every worker of a fleet purges: they run with
``purge_interval=0.2`` and ``expired_code_retention=0`` (an expired code is purgeable at once),
and their purges must not trip over each other (no "purge failed" in the logs). Live rows (a
pending code being polled, new codes, a live refresh token) must survive. No timing is asserted;
the latencies seen during the purge are printed and recorded as test properties.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

import httpx
import pytest
from tests.support.limits import generous_limits
from tests.support.servers import (
    add_client,
    authorize_device,
    migrated_database,
    poll_form,
    scalar,
    sql,
)

from deviceflow.config.server import ServerSettings
from deviceflow.server.embedded import free_port, serve_in_thread

pytestmark = pytest.mark.slow

EXPIRED_CODES = 100_000
EXPIRED_TOKENS = 20_000
PURGE_DEADLINE = 120.0
"""Seconds the purge may take before the test fails (it takes a few on this machine)."""

_SERIES = {
    # n(i) for i in 1..:count, as a subquery each dialect can select from.
    "sqlite": "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :count)"
              " SELECT i FROM s) AS n",
    "postgres": "(SELECT generate_series(1, :count) AS i) AS n",
}


def bulk_insert_expired(kind: str, url: str, now: float) -> None:
    series = _SERIES[kind]
    sql(url, f"""
        INSERT INTO device_authorizations (device_code_hash, user_code_hash, client_id, scope,
            status, created_at, expires_at, "interval", ip_address, user_agent, last_polled_at)
        SELECT 'bulk-device-' || n.i, 'bulk-user-' || n.i, 'tv', 'openid',
            CASE n.i % 4 WHEN 0 THEN 'pending' WHEN 1 THEN 'approved' WHEN 2 THEN 'denied'
                ELSE 'redeemed' END,
            :now - 7200 - n.i, :now - 3600 - n.i * 0.01, 5, '192.0.2.1', 'bulk', NULL
        FROM {series}
    """, {"count": EXPIRED_CODES, "now": now})
    sql(url, f"""
        INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scope, issued_at,
            expires_at, auth_time, status, family_expires_at, grant_type)
        SELECT 'bulk-token-' || n.i, 'bulk-family-' || (n.i / 3), 'tv', 'someone', 'openid',
            :now - 90000 - n.i, :now - 60 - n.i * 0.01, :now - 90000, 'active', :now + 86400,
            'urn:ietf:params:oauth:grant-type:device_code'
        FROM {series}
    """, {"count": EXPIRED_TOKENS, "now": now})
    # One refresh token that is still valid: the purge must keep it.
    sql(url, """
        INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scope, issued_at,
            expires_at, auth_time, status, family_expires_at, grant_type)
        VALUES ('live-token', 'live-family', 'tv', 'someone', 'openid', :now, :later, :now,
            'active', :later, 'urn:ietf:params:oauth:grant-type:device_code')
    """, {"now": now, "later": now + 86400})


def expired_rows(url: str, now: float) -> tuple[int, int]:
    codes = scalar(url, "SELECT count(*) FROM device_authorizations WHERE expires_at < :t",
                   {"t": now})
    tokens = scalar(url, "SELECT count(*) FROM refresh_tokens WHERE expires_at < :t", {"t": now})
    return int(codes), int(tokens)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@pytest.mark.parametrize(
    "kind",
    [pytest.param("sqlite", id="sqlite"),
     pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)],
)
def test_expired_rows_are_purged_while_requests_flow(
    kind: str, tmp_path: Path, record_property: pytest.RecordProperty,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="deviceflow")
    with migrated_database(kind, tmp_path) as db:
        add_client(db, "tv")
        now = time.time()
        started = time.perf_counter()
        bulk_insert_expired(kind, db, now)
        inserted_in = time.perf_counter() - started
        assert expired_rows(db, now) == (EXPIRED_CODES, EXPIRED_TOKENS)

        def settings() -> ServerSettings:
            port = free_port()
            return ServerSettings(
                host="127.0.0.1", port=port, issuer=f"http://127.0.0.1:{port}", db=db,
                interval=1, log_format="text", purge_interval=0.2, expired_code_retention=0,
                **generous_limits(),
            )

        latencies: list[float] = []
        answered_while_purging = 0
        with (
            serve_in_thread(settings()) as base,
            serve_in_thread(settings()),  # a second purger on the same tables
            httpx.Client(base_url=base, timeout=30) as http,
        ):

            def timed(method: str, path: str, **kwargs: object) -> httpx.Response:
                start = time.perf_counter()
                response = http.request(method, path, **kwargs)  # type: ignore[arg-type]
                latencies.append(time.perf_counter() - start)
                return response

            live = authorize_device(http, "tv")
            last_poll = 0.0
            deadline = time.monotonic() + PURGE_DEADLINE
            remaining = expired_rows(db, now)
            while remaining != (0, 0):
                assert time.monotonic() < deadline, f"still {remaining} expired rows"
                discovery = timed("GET", "/.well-known/openid-configuration")
                assert discovery.status_code == 200
                assert discovery.json()["issuer"] == base
                fresh = timed("POST", "/device_authorization", data={"client_id": "tv"})
                assert fresh.status_code == 200, fresh.text
                if time.monotonic() - last_poll > 1.1:
                    last_poll = time.monotonic()
                    answer = timed("POST", "/token", data=poll_form("tv", live["device_code"]))
                    assert answer.status_code == 400, answer.text
                    assert answer.json()["error"] == "authorization_pending"
                remaining = expired_rows(db, now)
                if remaining not in ((0, 0), (EXPIRED_CODES, EXPIRED_TOKENS)):
                    answered_while_purging += 1  # the purge had begun and was not done yet
            purged_in = time.perf_counter() - started - inserted_in

            # Live rows survive: the code being polled still answers, the new codes and the live
            # refresh token are still there.
            answer = http.post("/token", data=poll_form("tv", live["device_code"]))
            assert answer.json()["error"] in ("authorization_pending", "slow_down")
        assert scalar(db, "SELECT count(*) FROM refresh_tokens WHERE token_hash = 'live-token'") \
            == 1
        live_codes = scalar(db, "SELECT count(*) FROM device_authorizations WHERE expires_at > "
                            ":t", {"t": time.time()})
        assert live_codes >= 1 + answered_while_purging

    assert answered_while_purging > 0, "the purge ended before any request was answered"
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == [], caplog.text
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    summary = (f"{kind}: inserted {EXPIRED_CODES:,} codes + {EXPIRED_TOKENS:,} tokens in "
               f"{inserted_in:.1f} s; all purged {purged_in:.1f} s later (server start included); "
               f"{len(latencies)} "
               f"requests were answered (p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
               f"max {max(latencies) * 1000:.1f} ms, mean {statistics.mean(latencies) * 1000:.1f}"
               " ms)")
    print(summary)
    record_property("housekeeping", summary)

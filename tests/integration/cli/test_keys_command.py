"""``deviceflow keys rotate`` and ``deviceflow keys list`` as an operator runs them, on a SQLite
file beside a running ``deviceflow serve`` with two workers: the servers publish the new key
within the reload interval, sign with it after twice that, and keep the old one in JWKS."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet
from tests.integration.cli.test_operator_commands import (  # noqa: F401 - fixtures
    PASSWORD,
    Cli,
    assert_clean_failure,
    cli,
    db_path,
    env,
    serve,
)
from tests.support.servers import approve_via_http, authorize_device, poll_form

from deviceflow.server.embedded import free_port

RELOAD = 0.5  # seconds: DEVICEFLOW_SIGNING_KEY_RELOAD_INTERVAL for servers and command alike


def header_kid(token: str) -> str:
    head = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"])


def jwks_kids(base: str) -> list[str]:
    return [k["kid"] for k in httpx.get(base + "/jwks.json", timeout=10).json()["keys"]]


def sign_in(base: str) -> dict[str, Any]:
    codes = authorize_device(base, "tv", "openid profile")
    assert approve_via_http(base, codes["user_code"], "alice", PASSWORD)
    response = httpx.post(base + "/token", data=poll_form("tv", codes["device_code"]), timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def listed(run: Cli) -> dict[str, dict[str, Any]]:
    return {k["kid"]: k for k in json.loads(run.ok("keys", "list", "--output", "json").stdout)}


@pytest.mark.slow  # a server with two workers, a device login before and after the rotation
def test_keys_rotate_reaches_a_running_server_without_a_restart(cli: Cli) -> None:  # noqa: F811
    cli.env["DEVICEFLOW_SIGNING_KEY_RELOAD_INTERVAL"] = str(RELOAD)
    cli.ok("client", "add", "tv", "--name", "TV", "--grant", "device_code")
    cli.ok("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")

    with serve(cli, free_port(), "--workers", "2") as served:
        [old_kid] = jwks_kids(served.base)
        assert {k: v["state"] for k, v in listed(cli).items()} == {old_kid: "active"}
        before = sign_in(served.base)
        assert header_kid(before["access_token"]) == old_kid
        cached = KeySet.import_key_set(httpx.get(served.base + "/jwks.json", timeout=10).json())

        rotated = cli.ok("keys", "rotate")
        rotated_at = time.time()
        new_kid = rotated.stdout.strip()
        assert new_kid
        assert new_kid != old_kid
        assert "signs from" in rotated.stderr
        assert "stays in JWKS until" in rotated.stderr

        # Both workers publish it within the reload interval (a few requests reach each).
        deadline = time.monotonic() + 30
        while not all(jwks_kids(served.base) == [old_kid, new_kid] for _ in range(6)):
            assert time.monotonic() < deadline, served.logs()
            time.sleep(0.1)
        states = {k: v["state"] for k, v in listed(cli).items()}
        if time.time() < rotated_at + 2 * RELOAD:
            assert states == {old_kid: "active", new_kid: "published"}

        time.sleep(max(0.0, rotated_at + 2 * RELOAD - time.time()) + 0.2)
        after = sign_in(served.base)
        assert header_kid(after["access_token"]) == new_kid
        assert header_kid(after["id_token"]) == new_kid
        for token in (before["access_token"], after["access_token"]):
            response = httpx.get(served.base + "/userinfo", timeout=10,
                                 headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text

        # A resource server with the JWKS cached before: unknown kid, refetch, verified.
        with pytest.raises(InvalidKeyIdError):
            jwt.decode(after["access_token"], cached, algorithms=["RS256"])
        fresh = KeySet.import_key_set(httpx.get(served.base + "/jwks.json", timeout=10).json())
        assert jwt.decode(after["access_token"], fresh, algorithms=["RS256"]).claims["iss"]
        assert jwt.decode(before["access_token"], fresh, algorithms=["RS256"]).claims["iss"]

        keys = listed(cli)
        assert keys[old_kid]["state"] == "retiring"
        # Retired once every token the old key signed has expired (default lifetimes: 1 h).
        assert keys[old_kid]["retire_after"] == pytest.approx(keys[new_kid]["active_from"] + 3600)
        assert keys[new_kid]["state"] == "active"
        table = cli.ok("keys", "list").stdout
        [old_row] = [line for line in table.splitlines() if line.startswith(old_kid)]
        assert "retiring until" in old_row
        assert new_kid in table
    assert "signing key " + new_kid in served.logs()  # the reload said so, at INFO


def test_keys_rotate_refuses_an_unknown_algorithm_and_a_missing_key_file(cli: Cli) -> None:  # noqa: F811
    result = cli("keys", "rotate", "--alg", "HS256")
    assert result.returncode == 2
    assert "HS256" in result.stderr
    cli.ok("keys", "list")  # creates the database, its key file and its first key
    cli.db_path.with_name(cli.db_path.stem + ".key").unlink()
    assert_clean_failure(cli("keys", "rotate"), 1, "key file")

"""The CLI against deviceflow's own server (no browser: the pages are driven over HTTP).

The browser version of the same journeys is tests/e2e/test_cli_browser.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.cli.clikit import Cli
from tests.integration.cli.livekit import start_login, unique
from tests.support.servers import approve_via_http, deny_via_http

PASSWORD = "correct horse battery staple"


def setup_profile(live_server: Any, tmp_path: Path, **client: Any) -> tuple[Cli, str]:
    cli = Cli(tmp_path)
    client_id = unique("cli")
    username = unique("user")
    live_server.add_client(client_id, **client)
    live_server.add_user(username, PASSWORD)
    created = cli.run(
        "create-profile", "--name", "srv", "--issuer", live_server.issuer, "--client-id", client_id
    )
    assert created.returncode == 0, created.stderr
    return cli, username


@pytest.mark.slow
def test_login_cache_refresh_and_logout(live_server: Any, tmp_path: Path) -> None:
    cli, username = setup_profile(live_server, tmp_path)
    login = start_login(cli, "--profile", "srv", "--output", "json")
    user_code, _complete = login.wait_for_code()
    assert approve_via_http(live_server.issuer, user_code, username, PASSWORD)
    code, out, err = login.finish()
    assert code == 0, err
    body = json.loads(out)
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_at",
        "expires_in",
        "scope",
        "id_token",
        "profile",
    }
    assert body["token_type"] == "Bearer"
    assert body["profile"] == "srv"
    assert body["expires_at"].endswith("Z")
    assert 0 < body["expires_in"] <= 3600
    assert "offline_access" in body["scope"].split()
    assert "refresh_token" not in out
    assert "Only enter this code if you started this sign-in on" in err
    assert "Token saved to profile 'srv'" in err
    for secret in (body["access_token"], body["id_token"]):
        assert secret not in err

    # Cached: the same token at once, nothing on stderr.
    again = cli.run("get-token", "--profile", "srv")
    assert again.returncode == 0
    assert again.stdout.strip() == body["access_token"]
    assert again.stderr == ""

    # Expired access token: a silent refresh, the refresh token rotated.
    [token_file] = cli.token_files()
    record = json.loads(token_file.read_text())
    old_refresh = record["refresh_token"]
    for entry in record["tokens"]:
        entry["expires_at"] = time.time() + 30  # less than a minute left
    token_file.write_text(json.dumps(record))
    renewed = cli.run("--debug", "get-token", "--profile", "srv")
    assert renewed.returncode == 0, renewed.stderr
    assert renewed.stdout.strip() != body["access_token"]
    assert "enter the code" not in renewed.stderr
    assert "grant_type=refresh_token" in renewed.stderr
    assert "refresh_token=***" in renewed.stderr
    assert old_refresh not in renewed.stderr
    assert renewed.stdout.strip() not in renewed.stderr
    assert json.loads(token_file.read_text())["refresh_token"] != old_refresh

    status = cli.run("status")
    assert f"Signed in as {username}" in status.stdout
    assert str(token_file) in status.stdout

    inspected = cli.run("inspect", "--profile", "srv")
    assert inspected.returncode == 0
    assert '"iss": "' + live_server.issuer in inspected.stdout

    # Logout revokes at our own server (RFC 7009 /revoke): the refresh token and the access
    # token it cached stop working there, not only in this cache.
    current = json.loads(token_file.read_text())
    live_refresh, live_access = current["refresh_token"], renewed.stdout.strip()
    logout = cli.run("logout", "--profile", "srv")
    assert logout.returncode == 0, logout.stderr
    assert "revoked" in logout.stderr
    assert "forgotten locally" in logout.stderr
    for secret in (live_refresh, live_access):
        assert secret not in logout.stderr
        assert secret not in logout.stdout
    assert cli.token_files() == []
    assert "Not signed in." in cli.run("status").stdout
    client_id = json.loads(cli.run("show-profile", "srv", "--output", "json").stdout)["client_id"]
    with httpx.Client(base_url=live_server.issuer, timeout=10) as http:
        refreshed = http.post("/token", data={"grant_type": "refresh_token",
                                              "refresh_token": live_refresh,
                                              "client_id": client_id})
        assert refreshed.status_code == 400
        assert refreshed.json()["error"] == "invalid_grant"
        userinfo = http.get("/userinfo", headers={"Authorization": f"Bearer {live_access}"})
        assert userinfo.status_code == 401


def test_denied_sign_in_exits_4(live_server: Any, tmp_path: Path) -> None:
    cli, username = setup_profile(live_server, tmp_path)
    login = start_login(cli, "--profile", "srv")
    user_code, _ = login.wait_for_code()
    assert deny_via_http(live_server.issuer, user_code, username, PASSWORD)
    code, out, err = login.finish()
    assert code == 4
    assert out == ""
    assert err.strip().splitlines()[-1] == "The sign-in was declined on the other device."
    assert cli.token_files() == []


@pytest.mark.slow
def test_expired_code_exits_5(live_server: Any, tmp_path: Path) -> None:
    cli, _username = setup_profile(live_server, tmp_path, expires_in=3)
    login = start_login(cli, "--profile", "srv")
    login.wait_for_code()
    code, out, err = login.finish()
    assert code == 5
    assert out == ""
    assert err.strip().splitlines()[-1] == "Device code expired. Please try again."
    assert "The code expires in 3 seconds." in err


def test_timeout_option_exits_5(live_server: Any, tmp_path: Path) -> None:
    cli, _username = setup_profile(live_server, tmp_path)
    started = time.monotonic()
    result = cli.run("get-token", "--profile", "srv", "--timeout", "1.5")
    assert result.returncode == 5
    assert "Gave up waiting for the sign-in after 1.5 seconds." in result.stderr
    assert time.monotonic() - started < 15


def test_unknown_client_is_one_sentence(live_server: Any, tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.run(
        "create-profile",
        "--name",
        "x",
        "--issuer",
        live_server.issuer,
        "--client-id",
        unique("nobody"),
    )
    result = cli.run("get-token", "--profile", "x")
    assert result.returncode == 7
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_server_down_is_a_network_error(tmp_path: Path) -> None:
    from deviceflow.server.embedded import free_port

    cli = Cli(tmp_path)
    cli.run(
        "create-profile",
        "--name",
        "x",
        "--issuer",
        f"http://127.0.0.1:{free_port()}",
        "--client-id",
        "c",
    )
    result = cli.run("get-token", "--profile", "x")
    assert result.returncode == 6
    assert "Could not connect to" in result.stderr
    assert "(connection refused)" in result.stderr
    assert "in 0 seconds" not in result.stderr
    assert "Traceback" not in result.stderr


def test_run_in_process_for_the_demo(
    live_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`deviceflow demo` calls run([...]) in-process: it must return codes, not exit."""
    from deviceflow.cli.main import run

    monkeypatch.setenv("DEVICEFLOW_CONFIG_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("DEVICEFLOW_DATA_DIR", str(tmp_path / "d"))
    client_id = unique("demo")
    live_server.add_client(client_id)
    assert (
        run(
            [
                "create-profile",
                "--name",
                "demo",
                "--provider",
                "local",
                "--issuer",
                live_server.issuer,
                "--client-id",
                client_id,
            ]
        )
        == 0
    )
    assert run(["get-token", "--profile", "demo", "--timeout", "0.5"]) == 5

"""Interop with a real, widely deployed server: panva's node oidc-provider (npm), device flow
enabled, started from tests/interop/provider.mjs. Its device authorization response has no
"interval", so the CLI polls every 5 s (RFC 8628 §3.2) — one login keeps this test short.

Needs ``npm ci --prefix tests/interop`` (scripts/test runs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.integration.cli.clikit import Cli
from tests.integration.cli.livekit import start_login

from deviceflow.server.embedded import free_port

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(
            "oidc-provider is not installed: run `npm ci --prefix tests/interop`.", pytrace=False
        )
    port = free_port()
    log = (tmp_path_factory.mktemp("oidc-provider") / "provider.log").open("w+")
    proc = subprocess.Popen(
        [node, str(HERE / "provider.mjs"), str(port)],
        cwd=HERE,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            log.seek(0)
            if "READY" in log.read():
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"oidc-provider did not start:\n{log.read()}", pytrace=False)
            time.sleep(0.1)
        yield issuer
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def approve_in_oidc_provider(verification_uri_complete: str, username: str) -> None:
    """What a person does on oidc-provider's pages: confirm the code, sign in (dev interactions
    accept any login), and land on "Sign-in Success"."""
    with httpx.Client(follow_redirects=True, timeout=10) as http:
        page = http.get(verification_uri_complete)  # auto-submitting form with the code
        page = http.post(str(page.url).split("?")[0], data=hidden(page.text))  # "Confirm Device"
        assert "Confirm Device" in page.text
        page = http.post(str(page.url).split("?")[0], data=hidden(page.text))  # → login
        assert "Sign-in" in page.text, page.text[:500]
        page = http.post(
            str(page.url), data={"prompt": "login", "login": username, "password": "any"}
        )
        assert "Sign-in Success" in page.text, page.text[:500]


def test_cli_device_flow_against_oidc_provider(oidc_provider: str, tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    created = cli.run(
        "create-profile",
        "--name",
        "op",
        "--provider",
        "oidc",
        "--issuer",
        oidc_provider,
        "--client-id",
        "deviceflow-cli",
        "--scope",
        "openid",
        "--scope",
        "offline_access",
    )
    assert created.returncode == 0, created.stderr
    login = start_login(cli, "--profile", "op", "--output", "json")
    _user_code, complete = login.wait_for_code()
    approver = threading.Thread(target=approve_in_oidc_provider, args=(complete, "carol"))
    approver.start()
    started = time.monotonic()
    code, out, err = login.finish(timeout=60)
    approver.join(10)
    assert code == 0, err
    # No interval from the server: the first poll came after at least 5 s.
    assert time.monotonic() - started >= 4.5
    body = json.loads(out)
    assert body["token_type"] == "Bearer"
    assert body["access_token"]
    assert body["expires_in"] > 3000
    claims = json.loads(cli.run("inspect", "-", "-o", "json", input=body["id_token"]).stdout)
    assert claims["claims"]["sub"] == "carol"
    assert claims["claims"]["iss"] == oidc_provider

    # Opaque access token: inspect says so plainly.
    opaque = cli.run("inspect", "--profile", "op")
    assert opaque.returncode == 9
    assert "not a JWT" in opaque.stderr

    # A silent refresh with oidc-provider's rotating refresh tokens.
    [token_file] = cli.token_files()
    record = json.loads(token_file.read_text())
    assert record["refresh_token"]
    for entry in record["tokens"]:
        entry["expires_at"] = time.time()
    token_file.write_text(json.dumps(record))
    renewed = cli.run("get-token", "--profile", "op")
    assert renewed.returncode == 0, renewed.stderr
    assert renewed.stdout.strip() != body["access_token"]
    assert "enter the code" not in renewed.stderr

    # oidc-provider advertises RFC 7009 revocation: logout revokes, then forgets.
    refresh_token = json.loads(token_file.read_text())["refresh_token"]
    logout = cli.run("logout", "--profile", "op")
    assert logout.returncode == 0
    assert "Refresh token: revoked at the server." in logout.stderr
    assert refresh_token not in logout.stderr + logout.stdout
    assert cli.token_files() == []
    # The server agrees: the refresh token no longer works.
    dead = httpx.post(
        f"{oidc_provider}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": "deviceflow-cli",
        },
        timeout=10,
    )
    assert dead.status_code == 400
    assert dead.json()["error"] == "invalid_grant"


CONFIDENTIAL = ("deviceflow-confidential", "interop-only-confidential-secret")


def test_status_introspects_and_logout_revokes_at_oidc_provider(
    oidc_provider: str, tmp_path: Path
) -> None:
    """A confidential profile: status asks oidc-provider's RFC 7662 endpoint, logout revokes with
    RFC 7009, and the server confirms both."""
    cli = Cli(tmp_path)
    client_id, secret = CONFIDENTIAL
    created = cli.run(
        "create-profile", "--name", "conf", "--provider", "oidc", "--issuer", oidc_provider,
        "--client-id", client_id, "--scope", "openid", "--scope", "offline_access",
        "--client-secret-stdin", input=secret + "\n",
    )
    assert created.returncode == 0, created.stderr
    login = start_login(cli, "--profile", "conf", "--output", "json")
    _user_code, complete = login.wait_for_code()
    approver = threading.Thread(target=approve_in_oidc_provider, args=(complete, "dave"))
    approver.start()
    code, out, err = login.finish(timeout=60)
    approver.join(10)
    assert code == 0, err
    access_token = json.loads(out)["access_token"]
    # The client secret is kept beside the tokens (and stays there after logout).
    [token_file] = [f for f in cli.token_files() if "client-secret" not in f.name]
    refresh_token = json.loads(token_file.read_text())["refresh_token"]
    metadata = httpx.get(f"{oidc_provider}/.well-known/openid-configuration", timeout=10).json()

    def status() -> dict[str, object]:
        result = cli.run("status", "--profile", "conf", "--output", "json")
        assert result.returncode == 0, result.stderr
        [entry] = json.loads(result.stdout)
        assert isinstance(entry, dict)
        return entry

    entry = status()
    assert entry["access_token_source"] == entry["refresh_token_source"] == "introspection"
    assert entry["access_token_active"] is True
    assert entry["refresh_token_active"] is True
    text = cli.run("status", "--profile", "conf").stdout
    assert "Access token: active at the server" in text
    assert "[source: the server (introspection)]" in text

    saved = token_file.read_text()
    logout = cli.run("logout", "--profile", "conf")
    assert logout.returncode == 0, logout.stderr
    assert "Refresh token: revoked at the server." in logout.stderr
    for token in (access_token, refresh_token, secret):
        assert token not in logout.stdout + logout.stderr
    assert not token_file.exists()
    # The server agrees: neither token is active any more.
    for token, hint in ((refresh_token, "refresh_token"), (access_token, "access_token")):
        found = httpx.post(
            metadata["introspection_endpoint"],
            data={"token": token, "token_type_hint": hint},
            auth=CONFIDENTIAL,
            timeout=10,
        )
        assert found.json() == {"active": False}

    # Tokens revoked behind the cache's back (here: the old cache put back) are seen as such by
    # status, though their local expiry is an hour away.
    token_file.write_text(saved)
    entry = status()
    assert entry["access_token_active"] is False
    assert entry["refresh_token_active"] is False
    assert entry["access_token_source"] == entry["refresh_token_source"] == "introspection"
    assert entry["signed_in"] is False
    assert "Signed out at the server" in cli.run("status", "--profile", "conf").stdout

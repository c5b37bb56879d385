"""The examples in examples/ run, against a device-flow server, with the sign-in approved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.cli.clikit import Cli, deviceflow_argv
from tests.integration.cli.fake_oauth import FakeOAuthServer, running

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
pytestmark = pytest.mark.slow


@pytest.fixture
def server() -> Iterator[FakeOAuthServer]:
    with running(FakeOAuthServer(interval=0.2)) as fake:
        yield fake


def approve_when_asked(server: FakeOAuthServer, times: int = 1) -> threading.Thread:
    def work() -> None:
        for _ in range(times):
            code = server.last_user_code(timeout=30)
            server.approve(code)
            server.code_issued.clear()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def script_env(cli: Cli, **extra: str) -> dict[str, str]:
    bin_dir = str(Path(deviceflow_argv()[0]).parent)
    env = cli.env(**extra)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONWARNINGS", None)
    return env


def run_script(path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(path), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # no controlling terminal: the sign-in lines stay on stderr
    )


def test_iot_device_example(tmp_path: Path, server: FakeOAuthServer) -> None:
    cli = Cli(tmp_path)
    assert (
        cli.run(
            "create-profile",
            "--name",
            "sensor",
            "--issuer",
            server.issuer,
            "--client-id",
            "sensor-01",
        ).returncode
        == 0
    )
    approve_when_asked(server)
    env = cli.env(
        DEVICEFLOW_PROFILE="sensor",
        TELEMETRY_URL=f"{server.issuer}/api/telemetry",
        TELEMETRY_PERIOD="0.1",
        TELEMETRY_ROUNDS="3",
    )
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "iot_device.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "enter the code" in result.stdout
    assert "telemetry 3 sent (200)" in result.stdout
    assert [call[1] for call in server.api_calls] == ["/api/telemetry"] * 3
    assert all("temperature_c" in call[2] for call in server.api_calls)  # type: ignore[operator]


def test_in_scripts_example(tmp_path: Path, server: FakeOAuthServer) -> None:
    cli = Cli(tmp_path)
    assert (
        cli.run(
            "create-profile",
            "--name",
            "default",
            "--issuer",
            server.issuer,
            "--client-id",
            "script",
        ).returncode
        == 0
    )
    approve_when_asked(server)
    result = run_script(
        EXAMPLES / "scripts" / "in-scripts.sh", script_env(cli, API_URL=f"{server.issuer}/api/me")
    )
    assert result.returncode == 0, result.stderr
    assert "Authentication successful!" in result.stdout
    profile = json.loads(result.stdout.split("Fetching user profile...\n", 1)[1])
    assert profile["displayName"] == "alice"
    assert "enter the code" in result.stderr  # the sign-in went to stderr, not into $TOKEN


def test_raspberry_pi_example(tmp_path: Path, server: FakeOAuthServer) -> None:
    cli = Cli(tmp_path)
    token_file = tmp_path / "token.json"
    approve_when_asked(server)
    env = script_env(cli, ISSUER=server.issuer, CLIENT_ID="pi", TOKEN_FILE=str(token_file))
    result = run_script(EXAMPLES / "scripts" / "raspberry-pi-auth.sh", env)
    assert result.returncode == 0, result.stderr
    assert "Creating profile for Raspberry Pi..." in result.stdout
    assert "Authentication complete!" in result.stdout
    assert json.loads(token_file.read_text())["profile"] == "raspberry-pi"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    # Second run: the profile exists and the token is cached; nothing to sign in.
    again = run_script(EXAMPLES / "scripts" / "raspberry-pi-auth.sh", env)
    assert again.returncode == 0
    assert "Creating profile" not in again.stdout
    assert "enter the code" not in again.stderr


def test_retry_example(tmp_path: Path, server: FakeOAuthServer) -> None:
    cli = Cli(tmp_path)
    assert (
        cli.run(
            "create-profile", "--name", "myapp", "--issuer", server.issuer, "--client-id", "retry"
        ).returncode
        == 0
    )

    # First attempt denied, second approved.
    def deny_then_approve() -> None:
        server.deny(server.last_user_code(timeout=30))
        server.code_issued.clear()
        server.approve(server.last_user_code(timeout=30))

    thread = threading.Thread(target=deny_then_approve, daemon=True)
    thread.start()
    result = run_script(
        EXAMPLES / "scripts" / "retry.sh", script_env(cli, RETRY_DELAY="0"), "myapp"
    )
    thread.join(30)
    assert result.returncode == 0, result.stderr
    assert "Authentication attempt 2 of 3..." in result.stdout
    assert "✓ Authentication successful" in result.stdout
    assert "The sign-in was declined on the other device." in result.stderr


def test_docker_entrypoint(tmp_path: Path, server: FakeOAuthServer) -> None:
    cli = Cli(tmp_path)
    assert (
        cli.run(
            "create-profile", "--name", "container", "--issuer", server.issuer, "--client-id", "box"
        ).returncode
        == 0
    )
    approve_when_asked(server)
    env = script_env(cli, API_URL=f"{server.issuer}/api/me")
    result = run_script(
        EXAMPLES / "docker" / "entrypoint.sh",
        env,
        # The Dockerfile's CMD.
        "deviceflow",
        "exec",
        "--profile",
        "container",
        "--",
        "sh",
        "-c",
        "printf 'Authorization: Bearer %s\\n' \"$ACCESS_TOKEN\" | curl -s -H @- \"$API_URL\"",
    )
    assert result.returncode == 0, result.stderr
    assert "Authenticating container..." in result.stdout
    assert json.loads(result.stdout.splitlines()[-1])["ok"] is True
    assert "ACCESS_TOKEN" not in env

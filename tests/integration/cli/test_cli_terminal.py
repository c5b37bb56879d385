"""The sign-in box in a real terminal (tmux): box, QR code, countdown, Ctrl+C.

tmux renders what a person would see (capture-pane), and send-keys C-c delivers a real SIGINT
through the terminal, as a keyboard would.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.cli.clikit import Cli, deviceflow_argv
from tests.integration.cli.fake_oauth import FakeOAuthServer, running

pytestmark = pytest.mark.slow


@pytest.fixture
def tmux() -> Iterator[str]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing: apt-get install -y tmux (scripts/test does).", pytrace=False)
    session = f"df-{uuid.uuid4().hex[:8]}"
    yield session
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def screen(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=True
    ).stdout


def wait_for(session: str, predicate: object, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen(session)
        if predicate(text):  # type: ignore[operator]
            return text
        time.sleep(0.2)
    raise AssertionError(f"screen never matched; last screen:\n{text}")


def start(cli: Cli, session: str, args: str, status_file: Path, height: int = 50) -> None:
    env = " ".join(
        f"{k}={shlex.quote(v)}"
        for k, v in cli.env().items()
        if k.startswith(("DEVICEFLOW_", "PATH", "HOME"))
    )
    command = " ".join(shlex.quote(a) for a in deviceflow_argv())
    # COLUMNS/LINES inherited from the test runner would override the pane size for rich.
    script = (
        f"env -u COLUMNS -u LINES {env} TERM=xterm-256color {command} {args}"
        f" > {cli.home}/stdout; echo $? > {status_file}; sleep 30"
    )
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "100",
            "-y",
            str(height),
            "bash",
            "-c",
            script,
        ],
        check=True,
    )


def test_box_qr_countdown_and_ctrl_c(tmp_path: Path, tmux: str) -> None:
    with running(FakeOAuthServer(interval=0.5, expires_in=900)) as server:
        cli = Cli(tmp_path)
        assert (
            cli.run(
                "create-profile", "--name", "p", "--issuer", server.issuer, "--client-id", "cli"
            ).returncode
            == 0
        )
        # A first login fills the cache, so we can check Ctrl+C leaves it byte-identical.
        proc = cli.popen("get-token", "--profile", "p")
        server.approve(server.last_user_code())
        proc.communicate(timeout=30)
        assert proc.returncode == 0
        server.code_issued.clear()
        [token_file] = cli.token_files()
        before = token_file.read_bytes()

        status = tmp_path / "status"
        start(cli, tmux, "get-token --profile p --force", status)
        first = wait_for(tmux, lambda s: "Press Ctrl+C to cancel" in s and "expires in" in s)
        user_code = server.last_user_code()
        assert "Device Code Authentication" in first
        assert f"1. Visit: {server.issuer}/device" in first
        assert f"2. Enter code: {user_code}" in first
        assert "3. Sign in with your credentials" in first
        assert "Only enter this code if you started this sign-in on" in first
        assert "▀" in first or "▄" in first, first  # the QR code half blocks
        assert "expires in 14:5" in first  # counted from the server's expires_in (900 s)
        for line in first.splitlines():
            assert len(line) <= 100

        # The countdown moves on: wait for a later, complete frame (a capture can land in the
        # middle of a redraw when the machine is busy).
        time.sleep(1.2)
        later = wait_for(
            tmux, lambda s: "expires in 14:5" in s and "Press Ctrl+C" in s and s != first
        )
        assert later != first

        subprocess.run(["tmux", "send-keys", "-t", tmux, "C-c"], check=True)
        final = wait_for(tmux, lambda s: status.exists() and "cancelled" in s)
        assert "Authentication cancelled by user" in final
        assert "Press Ctrl+C" not in final  # the live box is cleared
        assert "Traceback" not in final
        assert status.read_text().strip() == "130"
        assert (tmp_path / "stdout").read_text() == ""
        assert token_file.read_bytes() == before


def test_success_in_a_terminal_and_no_qr(tmp_path: Path, tmux: str) -> None:
    with running(FakeOAuthServer(interval=0.3)) as server:
        cli = Cli(tmp_path)
        assert (
            cli.run(
                "create-profile", "--name", "p", "--issuer", server.issuer, "--client-id", "cli"
            ).returncode
            == 0
        )
        status = tmp_path / "status"
        start(cli, tmux, "get-token --profile p --no-qr", status, height=30)
        shown = wait_for(tmux, lambda s: "Press Ctrl+C to cancel" in s)
        assert "▀" not in shown
        assert "▄" not in shown
        server.approve(server.last_user_code())
        final = wait_for(tmux, lambda s: status.exists() and "Token saved" in s)
        assert "✓ Authentication successful!" in final
        assert "Token saved to profile 'p'" in final
        assert status.read_text().strip() == "0"
        assert (tmp_path / "stdout").read_text().count(".") == 2  # the JWT, on stdout only


def test_small_terminal_drops_the_qr_rather_than_cutting_it(tmp_path: Path, tmux: str) -> None:
    with running(FakeOAuthServer(interval=0.3)) as server:
        cli = Cli(tmp_path)
        assert (
            cli.run(
                "create-profile", "--name", "p", "--issuer", server.issuer, "--client-id", "cli"
            ).returncode
            == 0
        )
        status = tmp_path / "status"
        start(cli, tmux, "get-token --profile p", status, height=20)
        shown = wait_for(tmux, lambda s: "Press Ctrl+C to cancel" in s)
        assert "2. Enter code:" in shown
        assert "▀" not in shown
        server.approve(server.last_user_code())
        wait_for(tmux, lambda s: status.exists())


def send(session: str, text: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", session, text, "Enter"], check=True)


def test_create_profile_asks_for_what_is_missing(tmp_path: Path, tmux: str) -> None:
    cli = Cli(tmp_path)
    status = tmp_path / "status"
    start(cli, tmux, "create-profile", status, height=30)
    wait_for(tmux, lambda s: "Profile name [default]:" in s)
    send(tmux, "kiosk")
    wait_for(tmux, lambda s: "Provider (local|entra|google|github|okta|auth0|keycloak|oidc)" in s)
    send(tmux, "oidc")
    wait_for(tmux, lambda s: "Issuer URL (e.g. https://id.example.com):" in s)
    send(tmux, "https://id.example.com")
    wait_for(tmux, lambda s: "Client ID:" in s)
    send(tmux, "kiosk-app")
    final = wait_for(tmux, lambda s: status.exists())
    assert "Profile 'kiosk' created" in final
    assert status.read_text().strip() == "0"
    shown = cli.run("show-profile", "kiosk", "-o", "json")
    assert '"issuer": "https://id.example.com"' in shown.stdout


def test_corrupt_cache_offers_a_fresh_sign_in(tmp_path: Path, tmux: str) -> None:
    with running(FakeOAuthServer(interval=0.3)) as server:
        cli = Cli(tmp_path)
        assert cli.run("create-profile", "--name", "p", "--issuer", server.issuer,
                       "--client-id", "cli").returncode == 0
        proc = cli.popen("get-token", "--profile", "p")
        server.approve(server.last_user_code())
        proc.communicate(timeout=30)
        server.code_issued.clear()
        [token_file] = cli.token_files()
        token_file.write_text("not json")
        status = tmp_path / "status"
        start(cli, tmux, "get-token --profile p", status, height=40)
        asked = wait_for(tmux, lambda s: "Sign in again and replace it?" in s)
        assert str(token_file.name) in asked.replace("\n", "")
        assert token_file.read_text() == "not json"  # untouched while asking
        send(tmux, "y")
        wait_for(tmux, lambda s: "Press Ctrl+C to cancel" in s)
        server.approve(server.last_user_code())
        wait_for(tmux, lambda s: status.exists())
        assert status.read_text().strip() == "0"
        assert token_file.read_text().startswith("{")

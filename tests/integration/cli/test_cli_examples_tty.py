"""The CLI page's IoT example, Raspberry Pi script and Docker entrypoint, run as written against
deviceflow's own server (``live_server``), approved through its pages over HTTP, with a person at
a real pseudo-terminal: the code must reach that terminal even when the program captures the
CLI's stderr, and the tokens must arrive where the example uses them."""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.integration.cli.clikit import Cli, deviceflow_argv
from tests.integration.cli.livekit import unique
from tests.integration.cli.ptykit import Terminal, spawn, terminal, wait_and_read
from tests.support.servers import approve_via_http

from deviceflow.client.tokens import decode_jwt_unverified

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
PASSWORD = "correct horse battery staple"
BOX_CODE = r"Enter code: ([B-Z]{4}-[B-Z]{4})"


@dataclass
class Api:
    """An API that records the bearer tokens it is called with."""

    url: str = ""
    bearers: list[str] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)


@pytest.fixture
def api() -> Iterator[Api]:
    seen = Api()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            auth = self.headers.get("Authorization", "")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.bearers.append(auth.removeprefix("Bearer "))
            seen.bodies.append(json.loads(body) if body else None)
            status = 200 if auth.startswith("Bearer ") else 401
            payload = json.dumps({"ok": status == 200}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    seen.url = f"http://127.0.0.1:{server.server_port}/api"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Person:
    """A user of the live server who approves the code they see on the terminal."""

    live_server: Any
    username: str
    client_id: str

    def approve_from(self, term: Terminal) -> str:
        code = term.wait_for(BOX_CODE).group(1)
        assert approve_via_http(self.live_server.issuer, code, self.username, PASSWORD)
        return code


@pytest.fixture
def person(live_server: Any) -> Person:
    client_id, username = unique("example"), unique("user")
    live_server.add_client(client_id)
    live_server.add_user(username, PASSWORD)
    return Person(live_server, username, client_id)


def script_env(cli: Cli, **extra: str) -> dict[str, str]:
    env = cli.env(**extra)
    bin_dir = str(Path(deviceflow_argv()[0]).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONWARNINGS", None)
    return env


def create_profile(cli: Cli, name: str, person: Person) -> None:
    made = cli.run(
        "create-profile", "--name", name, "--issuer", person.live_server.issuer,
        "--client-id", person.client_id,
    )
    assert made.returncode == 0, made.stderr


def assert_issued_by(token: str, person: Person) -> None:
    claims = decode_jwt_unverified(token).claims
    assert claims["iss"] == person.live_server.issuer
    assert claims["client_id"] == person.client_id


def test_iot_example_as_on_the_page_shows_the_code_on_the_terminal(
    tmp_path: Path, person: Person, api: Api
) -> None:
    """iot_device_cli.py runs the CLI with capture_output=True: the code goes to /dev/tty."""
    cli = Cli(tmp_path)
    create_profile(cli, "sensor", person)
    env = script_env(
        cli, DEVICEFLOW_PROFILE="sensor", TELEMETRY_URL=api.url, TELEMETRY_PERIOD="0",
        TELEMETRY_ROUNDS="2",
    )
    with terminal() as term:
        proc = spawn([sys.executable, str(EXAMPLES / "iot_device_cli.py")], env, term)
        shown = person.approve_from(term)
        code, out, err = wait_and_read(proc)
        seen = term.text()
    assert code == 0, err
    assert "Starting device authentication..." in out
    assert "telemetry 2 sent" in out
    assert f"{person.live_server.issuer}/device" in seen
    assert shown in seen
    assert len(api.bearers) == 2
    assert_issued_by(api.bearers[0], person)
    assert all("temperature_c" in body for body in api.bodies)
    assert api.bearers[0] not in seen  # the token never reached the screen


def test_iot_library_example_shows_the_code_through_its_callback(
    tmp_path: Path, person: Person, api: Api
) -> None:
    cli = Cli(tmp_path)
    create_profile(cli, "sensor", person)
    env = script_env(
        cli, DEVICEFLOW_PROFILE="sensor", TELEMETRY_URL=api.url, TELEMETRY_PERIOD="0",
        TELEMETRY_ROUNDS="2",
    )
    with terminal() as term:
        proc = spawn(
            [sys.executable, str(EXAMPLES / "iot_device.py")], env, term, stdout=term.slave
        )
        code_line = term.wait_for(r"and enter the code ([B-Z]{4}-[B-Z]{4})")
        assert approve_via_http(
            person.live_server.issuer, code_line.group(1), person.username, PASSWORD
        )
        code, _out, err = wait_and_read(proc)
        term.wait_for("telemetry 2 sent")
    assert code == 0, err
    assert len(api.bearers) == 2
    assert_issued_by(api.bearers[0], person)


@pytest.mark.parametrize("stderr_captured", [False, True], ids=["terminal", "captured"])
def test_raspberry_pi_script(
    tmp_path: Path, person: Person, stderr_captured: bool
) -> None:
    cli = Cli(tmp_path)
    token_file = tmp_path / "token.json"
    env = script_env(
        cli, ISSUER=person.live_server.issuer, CLIENT_ID=person.client_id,
        TOKEN_FILE=str(token_file),
    )
    script = ["bash", str(EXAMPLES / "scripts" / "raspberry-pi-auth.sh")]
    with terminal() as term:
        if stderr_captured:
            proc = spawn(script, env, term)
        else:  # a person at the Pi's console: stdout and stderr on the terminal
            proc = spawn(script, env, term, stdout=term.slave, stderr=term.slave)
        shown = person.approve_from(term)
        code, out, err = wait_and_read(proc)
        term.wait_for("Authentication complete!" if not stderr_captured else "successful")
        seen = term.text()
    assert code == 0, err
    assert shown in seen
    assert "Device Code Authentication" in seen
    if stderr_captured:
        assert "Creating profile for Raspberry Pi..." in out
        assert "Authentication complete!" in out
        # stderr, read by a program: the events, one JSON object a line.
        kinds = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
        assert kinds[0] == "code_issued"
        assert "succeeded" in kinds
    body = json.loads(token_file.read_text())
    assert body["profile"] == "raspberry-pi"
    assert_issued_by(body["access_token"], person)
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert body["access_token"] not in seen


@pytest.mark.parametrize("tty", [True, False], ids=["docker-run-t", "no-tty"])
def test_docker_entrypoint(tmp_path: Path, person: Person, api: Api, tty: bool) -> None:
    """entrypoint.sh with the Dockerfile's CMD, run directly (not in a container): with -t the
    container's stdout/stderr are its terminal; without, docker logs gets the plain lines."""
    cli = Cli(tmp_path)
    create_profile(cli, "container", person)
    env = script_env(cli, API_URL=api.url)
    argv = [
        "bash", str(EXAMPLES / "docker" / "entrypoint.sh"),
        # The Dockerfile's CMD.
        "deviceflow", "exec", "--profile", "container", "--", "sh", "-c",
        "printf 'Authorization: Bearer %s\\n' \"$ACCESS_TOKEN\" | curl -s -H @- \"$API_URL\"",
    ]
    if tty:
        with terminal() as term:
            proc = spawn(argv, env, term, stdout=term.slave, stderr=term.slave)
            shown = person.approve_from(term)
            code, _out, err = wait_and_read(proc)
            term.wait_for(r'\{"ok": true\}')
            seen = term.text()
        assert code == 0, err
        assert "Authenticating container..." in seen
        assert shown in seen
    else:
        import subprocess

        from tests.integration.cli.livekit import CODE_LINE

        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        assert proc.stderr is not None
        lines: list[str] = []
        for line in proc.stderr:
            lines.append(line)
            if (match := CODE_LINE.search(line)) is not None:
                assert approve_via_http(
                    person.live_server.issuer, match.group(1), person.username, PASSWORD
                )
                break
        out, rest = proc.communicate(timeout=60)
        assert proc.returncode == 0, "".join(lines) + rest
        assert "Authenticating container..." in out
        assert json.loads(out.splitlines()[-1]) == {"ok": True}
    assert len(api.bearers) == 1
    assert_issued_by(api.bearers[0], person)

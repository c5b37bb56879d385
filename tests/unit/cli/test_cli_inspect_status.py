"""inspect, status, exit codes, help and the lazy command map."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.unit.cli.clienv import invoke

from deviceflow.cli.exit_codes import ExitCode
from deviceflow.cli.main import COMMANDS

DOCS = Path(__file__).resolve().parents[3] / "docs" / "cli.md"


def jwt(claims: dict[str, object], header: dict[str, object] | None = None) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part(header or {'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


def test_inspect_from_stdin_says_it_does_not_verify(tmp_path: Path) -> None:
    token = jwt({"sub": "alice", "exp": int(time.time()) + 3600, "iss": "https://id"})
    result = invoke(tmp_path, "inspect", "-", stdin=token + "\n")
    assert result.code == 0, result.err
    assert '"sub": "alice"' in result.out
    assert "Expiry: expires in 60 minutes" in result.out
    assert "Signature NOT verified" in result.out


def test_inspect_expired_and_json(tmp_path: Path) -> None:
    token = jwt({"sub": "bob", "exp": int(time.time()) - 7200})
    text = invoke(tmp_path, "inspect", "-", stdin=token).out
    assert "expired 2 hours ago" in text or "expired 120 minutes ago" in text
    data = json.loads(invoke(tmp_path, "inspect", "-", "-o", "json", stdin=token).out)
    assert data["expired"] is True
    assert data["signature_verified"] is False
    assert data["claims"]["sub"] == "bob"


def test_inspect_argument_warns_about_the_process_list(tmp_path: Path) -> None:
    result = invoke(tmp_path, "inspect", jwt({"sub": "x"}))
    assert result.code == 0
    assert "process list" in result.err
    assert "no expiry" in result.out


def test_inspect_strips_terminal_escapes_from_claims(tmp_path: Path) -> None:
    token = jwt({"name": "\x1b]0;owned\x07Mallory\x1b[2J"})
    out = invoke(tmp_path, "inspect", "-", stdin=token).out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "Mallory" in out


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("gho_16C7e42F292c6912E7710c838347Ae178B4a", "not a JWT"),
        ("a.b.c.d.e", "encrypted"),
        ("!!!.???.sig", "base64url"),
    ],
    ids=["opaque", "jwe", "garbage"],
)
def test_inspect_refuses_what_is_not_a_jwt(tmp_path: Path, token: str, reason: str) -> None:
    result = invoke(tmp_path, "inspect", "-", stdin=token)
    assert result.code == ExitCode.NOT_A_JWT
    assert reason in result.err
    assert token not in result.err  # the token itself is never echoed


def test_inspect_profile_without_token(tmp_path: Path) -> None:
    invoke(tmp_path, "create-profile", "--name", "p", "--client-id", "c")
    result = invoke(tmp_path, "inspect", "--profile", "p")
    assert result.code == ExitCode.NOT_SIGNED_IN


def test_status_not_signed_in(tmp_path: Path) -> None:
    invoke(tmp_path, "create-profile", "--name", "p", "--client-id", "c")
    result = invoke(tmp_path, "status")
    assert result.out.splitlines() == ["p (default): http://127.0.0.1:8000", "  Not signed in."]
    data = json.loads(invoke(tmp_path, "status", "-o", "json").out)
    assert data[0]["signed_in"] is False


def test_logout_when_not_signed_in(tmp_path: Path) -> None:
    invoke(tmp_path, "create-profile", "--name", "p", "--client-id", "c")
    result = invoke(tmp_path, "logout", "--profile", "p")
    assert result.code == 0
    assert "not signed in" in result.err
    assert invoke(tmp_path, "logout", "--profile", "p", "--all").code == 2


def test_version_and_usage_errors(tmp_path: Path) -> None:
    assert invoke(tmp_path, "--version").out.strip() == "deviceflow 0.1.0"
    result = invoke(tmp_path, "get-token", "--output", "yaml")
    assert result.code == 2
    assert "Invalid value" in result.err
    assert invoke(tmp_path, "no-such-command").code == 2


def test_every_command_has_complete_help(tmp_path: Path) -> None:
    for name in COMMANDS:
        if name in {"serve", "demo", "user", "client", "db"}:
            continue  # the operators' commands are documented by their own module's tests
        result = invoke(tmp_path, name, "--help")
        assert result.code == 0, (name, result.err)
        assert f"Usage: deviceflow {name}" in result.out


def test_help_lists_every_command_without_importing_them() -> None:
    code = (
        "import sys; from deviceflow.cli.main import run; run(['--help']);"
        "print(sorted(m for m in sys.modules if m.startswith('deviceflow.cli.commands.')"
        " or m in ('httpx', 'keyring', 'rich', 'segno')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *help_lines, imported = out.stdout.strip().splitlines()
    assert imported == "[]"
    listed = "\n".join(help_lines)
    for name in COMMANDS:
        assert re.search(rf"^\s+{re.escape(name)}\s", listed, re.M), name


def test_every_exit_code_is_documented() -> None:
    text = DOCS.read_text()
    for code in ExitCode:
        assert re.search(rf"^\|\s*{int(code)}\s*\|\s*`{code.name}`", text, re.M), code

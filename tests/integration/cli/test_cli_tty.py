"""The code reaches the person (issue 12 §2), in real pseudo-terminals:

- stderr captured, a controlling terminal: the box on /dev/tty, JSON events on stderr;
- no controlling terminal at all: today's plain lines on stderr;
- ``--output events`` and ``--events-fd``: the documented JSON lines, in order, no token;
- stdout a terminal: the token withheld unless ``--show-token`` (full CLI and fast path);
- a terminal too small for the QR code: one line and ``verification_uri_complete``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.cli.clikit import Cli, deviceflow_argv
from tests.integration.cli.fake_oauth import FakeOAuthServer, running
from tests.integration.cli.ptykit import run_in_thread, spawn, terminal, wait_and_read

pytestmark = pytest.mark.slow

BOX_CODE = r"Enter code: ([B-Z]{4}-[B-Z]{4})"
WITHHELD = "The token is not printed on a terminal; pass --show-token"


@pytest.fixture
def server() -> Iterator[FakeOAuthServer]:
    with running(FakeOAuthServer(interval=0.2)) as fake:
        yield fake


@pytest.fixture
def cli(tmp_path: Path, server: FakeOAuthServer) -> Cli:
    cli = Cli(tmp_path)
    made = cli.run("create-profile", "--name", "p", "--issuer", server.issuer, "--client-id", "c")
    assert made.returncode == 0, made.stderr
    return cli


def approve_next(server: FakeOAuthServer, *, deny: bool = False) -> None:
    def work() -> None:
        code = server.last_user_code(timeout=30)
        (server.deny if deny else server.approve)(code)
        server.code_issued.clear()

    run_in_thread(work)


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def after_choice(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events after the leading notice that names the flow picked for this machine (the
    profiles here name no default flow)."""
    if lines and lines[0]["event"] == "notice":
        assert lines[0]["message"].startswith("Signing in with the device-code flow")
        return lines[1:]
    return lines


def assert_no_token(server: FakeOAuthServer, text: str) -> None:
    for token in server.access_tokens | server.refresh_tokens:
        assert token not in text


def test_captured_stderr_shows_the_box_on_the_controlling_terminal(
    cli: Cli, server: FakeOAuthServer
) -> None:
    approve_next(server)
    with terminal() as term:
        proc = spawn([*deviceflow_argv(), "get-token", "p"], cli.env(), term)
        shown = term.wait_for(BOX_CODE).group(1)
        code, out, err = wait_and_read(proc)
        term.wait_for("Authentication successful")
        seen = term.text()
    assert code == 0, err
    # The person saw the box (URL, code, QR caption) on /dev/tty …
    assert "Device Code Authentication" in seen
    assert f"{server.issuer}/device" in seen
    assert "Token saved to profile 'p'" in seen
    # … and the program reading stderr got the machine-readable events, nothing else.
    lines = after_choice(events(err))
    assert lines[0]["event"] == "code_issued"
    assert lines[0]["user_code"] == shown
    assert lines[-1] == {"event": "succeeded", "profile": "p", "signed_in": True}
    # stdout is a pipe: the token is printed as always, and only there.
    assert out.strip() in server.access_tokens
    assert_no_token(server, seen + err)


def test_no_controlling_terminal_keeps_the_plain_lines_on_stderr(
    cli: Cli, server: FakeOAuthServer
) -> None:
    approve_next(server)
    proc = subprocess.run(
        [*deviceflow_argv(), "get-token", "p"],
        env=cli.env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # setsid: no controlling terminal, /dev/tty cannot be opened
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"And enter the code: [B-Z]{4}-[B-Z]{4}", proc.stderr)
    assert "Token saved to profile 'p'." in proc.stderr
    assert "{" not in proc.stderr
    assert proc.stdout.strip() in server.access_tokens


def check_schema(lines: list[dict[str, Any]], server: FakeOAuthServer) -> None:
    # The one line saying which flow was picked for this machine comes first, as a notice.
    notices = [e for e in lines if e["event"] == "notice"]
    assert len(notices) <= 1
    assert all(e["message"].startswith("Signing in with the device-code flow") for e in notices)
    assert lines[:len(notices)] == notices
    lines = lines[len(notices):]
    kinds = [e["event"] for e in lines]
    assert kinds[0] == "code_issued"
    assert kinds[-1] == "succeeded"
    assert set(kinds[1:-1]) == {"polling"}
    issued = lines[0]
    assert set(issued) == {
        "event",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "expires_at",
        "interval",
        "message",
    }
    assert issued["verification_uri"] == f"{server.issuer}/device"
    assert issued["verification_uri_complete"] == (
        f"{server.issuer}/device?user_code={issued['user_code']}"
    )
    assert 590 <= issued["expires_in"] <= 600
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", issued["expires_at"])
    assert issued["interval"] == 0.2
    for polling in lines[1:-1]:
        assert set(polling) == {"event", "interval", "next_poll_in", "expires_in"}
        assert polling["interval"] == 0.2
    assert lines[-1] == {"event": "succeeded", "profile": "p", "signed_in": True}


def test_output_events_on_stderr(cli: Cli, server: FakeOAuthServer) -> None:
    approve_next(server)
    result = cli.run("get-token", "p", "--output", "events")
    assert result.returncode == 0, result.stderr
    lines = events(result.stderr)  # every line is JSON: no plain sentence mixed in
    check_schema(lines, server)
    assert json.loads(result.stdout)["access_token"] in server.access_tokens
    assert_no_token(server, result.stderr)
    assert "device_code" not in result.stderr


def test_events_fd_keeps_stderr_for_the_person(
    cli: Cli, server: FakeOAuthServer, tmp_path: Path
) -> None:
    approve_next(server)
    path = tmp_path / "events.jsonl"
    with path.open("w") as sink:
        fd = os.dup(sink.fileno())
        try:
            proc = subprocess.run(
                [*deviceflow_argv(), "get-token", "p", "--events-fd", str(fd)],
                env=cli.env(),
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=(fd,),
            )
        finally:
            os.close(fd)
    assert proc.returncode == 0, proc.stderr
    check_schema(events(path.read_text()), server)
    assert "And enter the code:" in proc.stderr  # the plain lines, as without --events-fd
    assert proc.stdout.strip() in server.access_tokens


def test_events_fd_that_is_not_open_is_a_usage_error(cli: Cli) -> None:
    result = cli.run("get-token", "p", "--events-fd", "97")
    assert result.returncode == 2
    assert "--events-fd 97: no such open file descriptor" in result.stderr


def test_failed_event_carries_the_exit_code_and_the_sentence(
    cli: Cli, server: FakeOAuthServer
) -> None:
    approve_next(server, deny=True)
    result = cli.run("get-token", "p", "--output", "events")
    assert result.returncode == 4
    lines = after_choice(events(result.stderr))
    assert lines[0]["event"] == "code_issued"
    assert lines[-1]["event"] == "failed"
    assert lines[-1]["exit_code"] == 4
    assert "declined" in lines[-1]["reason"]
    assert result.stdout == ""


def test_a_terminal_never_gets_the_token_unless_asked(cli: Cli, server: FakeOAuthServer) -> None:
    approve_next(server)
    with terminal() as term:
        proc = spawn(
            [*deviceflow_argv(), "get-token", "p"],
            cli.env(),
            term,
            stdout=term.slave,
            stderr=term.slave,
        )
        term.wait_for(BOX_CODE)
        code, _out, _err = wait_and_read(proc)
        term.wait_for(WITHHELD)
        seen = term.text()
    assert code == 0
    assert "Authentication successful!" in seen
    assert "Token saved to profile 'p'" in seen
    assert_no_token(server, seen)

    # Cached now: the fast path must not print it on a terminal either …
    with terminal() as term:
        proc = spawn(
            [*deviceflow_argv(), "get-token", "p"], cli.env(), term, stdout=term.slave
        )
        code, _out, err = wait_and_read(proc)
        assert code == 0
        shown = term.text()
    # stderr is a pipe here: the person is told on /dev/tty, the program gets a notice event.
    assert WITHHELD in " ".join(shown.split())
    assert events(err) == [
        {"event": "notice", "message": events(err)[0]["message"]},
        {"event": "succeeded", "profile": "p", "signed_in": False},
    ]
    assert events(err)[0]["message"].startswith(WITHHELD)
    assert_no_token(server, shown + err)

    # … and --show-token prints it.
    with terminal() as term:
        proc = spawn(
            [*deviceflow_argv(), "get-token", "p", "--show-token"],
            cli.env(),
            term,
            stdout=term.slave,
        )
        code, _out, _err = wait_and_read(proc)
        token = next(iter(server.access_tokens))
        term.wait_for(re.escape(token))
    assert code == 0


@pytest.mark.parametrize(
    ("argv", "stdin"),
    [
        (["kube-credential", "--profile", "p"], ""),
        (["docker-credential", "get"], "registry.example.com\n"),
        (["git-credential", "--profile", "p", "get"], "protocol=https\nhost=git.example.com\n\n"),
    ],
    ids=["kube", "docker", "git"],
)
def test_helpers_withhold_the_token_from_a_terminal(
    cli: Cli, server: FakeOAuthServer, argv: list[str], stdin: str
) -> None:
    approve_next(server)
    assert cli.run("get-token", "p").returncode == 0
    mapped = cli.run("update-profile", "--name", "p", "--docker-registry", "registry.example.com")
    assert mapped.returncode == 0, mapped.stderr
    [token] = server.access_tokens
    # What each helper answers through a pipe (its protocol) carries the token …
    piped = cli.run(*argv, input=stdin)
    assert piped.returncode == 0, piped.stderr
    assert token in piped.stdout
    # … and nothing of it reaches a terminal, unless --show-token.
    for show in (False, True):
        with terminal() as term:
            proc = spawn(
                [*deviceflow_argv(), *argv, *(["--show-token"] if show else [])],
                cli.env(),
                term,
                stdin=subprocess.PIPE,
                stdout=term.slave,
            )
            code, _out, err = wait_and_read_input(proc, stdin)
            assert code == 0, err
            if show:
                term.wait_for(re.escape(token))
            else:
                assert WITHHELD in err
                assert token not in term.text()


def wait_and_read_input(proc: subprocess.Popen[str], stdin: str) -> tuple[int, str, str]:
    out, err = proc.communicate(stdin, timeout=60)
    return proc.returncode, out or "", err or ""


def test_small_terminal_names_the_complete_uri_instead_of_the_qr_code(
    cli: Cli, server: FakeOAuthServer
) -> None:
    approve_next(server)
    with terminal(rows=24, columns=80) as term:
        proc = spawn(
            [*deviceflow_argv(), "get-token", "p"], cli.env(), term, stderr=term.slave
        )
        shown = term.wait_for(BOX_CODE).group(1)
        code, out, _err = wait_and_read(proc)
        term.wait_for("Authentication successful")
        seen = term.text()
    assert code == 0
    complete = f"{server.issuer}/device?user_code={shown}"
    line = f"This terminal is too small for the QR code; open {complete} instead."
    assert line in " ".join(seen.split())  # the line kept after the box (rich wraps at 80)
    assert "Or scan this" not in seen
    assert out.strip() in server.access_tokens

"""``deviceflow exec`` for real: the token reaches the command in its environment only, never in
any argv or on our output; exit statuses and signals are the command's own; the documented curl
patterns send the header without the token in curl's arguments."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.cli.clikit import Cli, deviceflow_argv
from tests.integration.cli.fake_oauth import FakeOAuthServer, running
from tests.integration.cli.tokenseed import cached_record, seed

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


@pytest.fixture
def server() -> Iterator[FakeOAuthServer]:
    with running(FakeOAuthServer(interval=0.1)) as fake:
        yield fake


def wait_for(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path.name} was not written")


PROBE = textwrap.dedent(
    """\
    import os, sys, time
    out = sys.argv[1]
    with open(out + ".tmp", "w") as f:
        f.write(os.environ.get("ACCESS_TOKEN", "<unset>") + "\\n")
    os.rename(out + ".tmp", out)
    time.sleep(float(sys.argv[2]))
    """
)


def test_token_is_in_the_environment_and_in_no_argv(
    tmp_path: Path, server: FakeOAuthServer
) -> None:
    cli = Cli(tmp_path)
    seed(cli, server, access_token="at-secret-123")
    probe, out = tmp_path / "probe.py", tmp_path / "seen"
    probe.write_text(PROBE)
    proc = subprocess.Popen(
        [*deviceflow_argv(), "exec", "--", sys.executable, str(probe), str(out), "2"],
        env=cli.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert wait_for(out) == "at-secret-123\n"
    # The command replaced deviceflow: same pid, its own argv, and no token in it.
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[:2] == [sys.executable.encode(), str(probe).encode()]
    assert b"at-secret-123" not in b"\0".join(cmdline)
    assert b"at-secret-123" in Path(f"/proc/{proc.pid}/environ").read_bytes()
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "at-secret-123" not in stdout + stderr


def test_exit_status_is_the_commands(tmp_path: Path, server: FakeOAuthServer) -> None:
    cli = Cli(tmp_path)
    seed(cli, server)
    assert cli.run("exec", "--", "sh", "-c", "exit 7").returncode == 7
    # Killed by a signal: the parent sees the signal death itself, and a shell says 128+N.
    assert cli.run("exec", "--", "sh", "-c", "kill -TERM $$").returncode == -signal.SIGTERM
    line = " ".join([*deviceflow_argv(), "exec", "--", "sh", "-c", "'kill -TERM $$'"])
    shell = subprocess.run(
        ["sh", "-c", f"{line}; echo $?"], env=cli.env(), capture_output=True, text=True, timeout=30
    )
    assert shell.stdout.strip() == str(128 + signal.SIGTERM)


TRAP = textwrap.dedent(
    """\
    import os, signal, sys, time
    out = sys.argv[1]
    def got(signum, frame):
        with open(out + ".tmp", "w") as f:
            f.write(signal.Signals(signum).name + "\\n")
        os.rename(out + ".tmp", out)
        sys.exit(0)
    for name in sys.argv[2:]:
        signal.signal(getattr(signal, name), got)
    with open(out + ".ready", "w") as f:
        f.write("ready\\n")
    time.sleep(30)
    sys.exit(3)
    """
)

FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH")


@pytest.mark.parametrize("name", FORWARDED)
def test_signals_reach_the_command(tmp_path: Path, server: FakeOAuthServer, name: str) -> None:
    cli = Cli(tmp_path)
    seed(cli, server)
    trap, out = tmp_path / "trap.py", tmp_path / "got"
    trap.write_text(TRAP)
    proc = subprocess.Popen(
        [*deviceflow_argv(), "exec", "--", sys.executable, str(trap), str(out), *FORWARDED],
        env=cli.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(Path(str(out) + ".ready"))
    proc.send_signal(getattr(signal, name))
    assert wait_for(out) == name + "\n"
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr


def test_expired_token_is_refreshed_silently(tmp_path: Path, server: FakeOAuthServer) -> None:
    cli = Cli(tmp_path)
    seed(cli, server, access_token="at-old", expires_in=-10)
    done = cli.run("exec", "--", "sh", "-c", 'test -n "$ACCESS_TOKEN" && echo "$ACCESS_TOKEN"')
    assert done.returncode == 0, done.stderr
    assert server.refresh_calls == 1
    fresh = done.stdout.strip()
    assert fresh != "at-old"
    assert fresh in server.access_tokens
    assert fresh not in done.stderr
    record = cached_record(cli)
    assert record is not None
    assert record.tokens[0].token.access_token == fresh


def test_sign_in_is_shown_on_stderr_before_the_command_runs(
    tmp_path: Path, server: FakeOAuthServer
) -> None:
    cli = Cli(tmp_path)
    created = cli.run(
        "create-profile", "--name", "p", "--issuer", server.issuer, "--client-id", "cli"
    )
    assert created.returncode == 0, created.stderr
    proc = cli.popen("exec", "--env-var", "MY_TOKEN", "--", "sh", "-c", 'echo "ran ${#MY_TOKEN}"')
    user_code = server.last_user_code()
    server.approve(user_code)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert stdout.startswith("ran ")
    assert int(stdout.split()[1]) > 20
    assert user_code in stderr
    assert not any(token in stdout + stderr for token in server.access_tokens)


def test_missing_or_unrunnable_command(tmp_path: Path, server: FakeOAuthServer) -> None:
    cli = Cli(tmp_path)
    seed(cli, server)
    missing = cli.run("exec")
    assert missing.returncode == 2
    assert "Missing the command" in missing.stderr
    assert cli.run("exec", "--", "no-such-command-here").returncode == 127
    assert cli.run("exec", "--", str(tmp_path)).returncode == 126
    bad = cli.run("exec", "--env-var", "1BAD", "--", "true")
    assert bad.returncode == 2
    assert "POSIX" in bad.stderr
    misspelt = cli.run("exec", "--profle", "p", "--", "true")
    assert misspelt.returncode == 2
    assert "No such option: --profle" in misspelt.stderr
    # The command's own options after its name pass through untouched.
    assert cli.run("exec", "--", "sh", "-c", "exit 3").returncode == 3


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
@pytest.mark.parametrize(
    "script",
    [
        # docs/cli.md, "deviceflow exec": the header from a here-document.
        'curl -sSf -H @- "$API" <<EOF\nAuthorization: Bearer $ACCESS_TOKEN\nEOF\n',
        # bash: the header from a pipe (process substitution).
        "curl -sSf -H @<(printf 'Authorization: Bearer %s' \"$ACCESS_TOKEN\") \"$API\"",
    ],
    ids=["here-document", "process-substitution"],
)
def test_documented_curl_patterns(tmp_path: Path, server: FakeOAuthServer, script: str) -> None:
    cli = Cli(tmp_path)
    seed(cli, server, access_token="at-curl-456")
    done = cli.run("exec", "--", "bash", "-c", script, API=f"{server.issuer}/api/me")
    assert done.returncode == 0, done.stderr
    assert '"ok": true' in done.stdout
    assert server.api_calls
    assert server.api_calls[-1][1] == "/api/me"

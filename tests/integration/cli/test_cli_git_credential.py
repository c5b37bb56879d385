"""The git credential helper against the real ``git``: ``git credential fill`` with both ways of
configuring the helper, a silent refresh, no prompt without a terminal, and ``git ls-remote``
over HTTP against a server that wants Basic ``oauth2:<token>`` (and rejects, so git erases)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tests.integration.cli.clikit import Cli, deviceflow_argv
from tests.integration.cli.fake_oauth import FakeOAuthServer, running
from tests.integration.cli.tokenseed import cached_record, seed

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


@pytest.fixture
def server() -> Iterator[FakeOAuthServer]:
    with running(FakeOAuthServer(interval=0.1)) as fake:
        yield fake


def git_env(cli: Cli, helper: str, **extra: str) -> dict[str, str]:
    """A git that reads only our temporary global config and never prompts."""
    gitconfig = cli.home / "gitconfig"
    gitconfig.write_text(f"[credential]\n\thelper = {helper}\n")
    bin_dir = cli.home / "bin"
    bin_dir.mkdir(exist_ok=True)
    # What `pip install` generates for the git-credential-deviceflow console script.
    script = bin_dir / "git-credential-deviceflow"
    script.write_text(
        f"#!{sys.executable}\n"
        "from deviceflow.cli.main import git_credential_main\n"
        "git_credential_main()\n"
    )
    script.chmod(0o755)
    deviceflow_dir = str(Path(deviceflow_argv()[0]).parent)
    return cli.env(
        HOME=str(cli.home),
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="",
        SSH_ASKPASS="",
        PATH=os.pathsep.join([str(bin_dir), deviceflow_dir, os.environ.get("PATH", "")]),
        **extra,
    )


def fill(env: dict[str, str], url: str) -> subprocess.CompletedProcess[str]:
    # A new session: no controlling terminal, like git under an IDE or CI.
    return subprocess.run(
        ["git", "credential", "fill"],
        input=f"url={url}\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )


def answer(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.mark.parametrize(
    "helper", ["!deviceflow git-credential --profile p", "deviceflow --profile p"]
)
def test_git_credential_fill_gets_the_cached_token(
    tmp_path: Path, server: FakeOAuthServer, helper: str
) -> None:
    cli = Cli(tmp_path)
    seed(cli, server, access_token="at-git-789")
    done = fill(git_env(cli, helper), "https://git.example.com/team/repo.git")
    assert done.returncode == 0, done.stderr
    got = answer(done.stdout)
    assert got["username"] == "oauth2"
    assert got["password"] == "at-git-789"
    assert got["host"] == "git.example.com"
    assert "at-git-789" not in done.stderr
    assert server.refresh_calls == 0


def test_expired_token_is_refreshed(tmp_path: Path, server: FakeOAuthServer) -> None:
    cli = Cli(tmp_path)
    seed(cli, server, access_token="at-expired", expires_in=-30)
    helper = "!deviceflow git-credential --profile p --username x-access-token"
    done = fill(git_env(cli, helper), "https://git.example.com/repo.git")
    assert done.returncode == 0, done.stderr
    got = answer(done.stdout)
    assert got["username"] == "x-access-token"
    assert got["password"] != "at-expired"
    assert got["password"] in server.access_tokens
    assert server.refresh_calls == 1


def test_no_sign_in_and_no_prompt_without_a_terminal(
    tmp_path: Path, server: FakeOAuthServer
) -> None:
    cli = Cli(tmp_path)
    created = cli.run(
        "create-profile", "--name", "p", "--issuer", server.issuer, "--client-id", "cli"
    )
    assert created.returncode == 0, created.stderr
    done = fill(git_env(cli, "deviceflow --profile p"), "https://git.example.com/repo.git")
    # No helper answered and git may not prompt: git gives up; nobody was asked for a code.
    assert done.returncode != 0
    assert "password=" not in done.stdout
    assert "needs a sign-in" in done.stderr
    assert not server.code_issued.is_set()


@dataclass
class GitHttp:
    """info/refs of a one-ref repository, behind HTTP Basic; records what it was sent."""

    accepted: set[str] = field(default_factory=set)  # "user:password" pairs
    seen: list[str] = field(default_factory=list)
    url: str = ""


SHA = "1" * 40


def pkt(line: str) -> bytes:
    data = line.encode()
    return f"{len(data) + 4:04x}".encode() + data


@contextmanager
def git_server(state: GitHttp) -> Iterator[GitHttp]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            auth = self.headers.get("Authorization") or ""
            state.seen.append(auth)
            scheme, _, encoded = auth.partition(" ")
            pair = base64.b64decode(encoded).decode() if scheme == "Basic" else ""
            if pair not in state.accepted:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = (
                pkt("# service=git-upload-pack\n")
                + b"0000"
                + pkt(f"{SHA} HEAD\0symref=HEAD:refs/heads/main\n")
                + pkt(f"{SHA} refs/heads/main\n")
                + b"0000"
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/x-git-upload-pack-advertisement")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/repo.git"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def ls_remote(env: dict[str, str], url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "ls-remote", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )


def test_git_ls_remote_over_http_with_the_token(tmp_path: Path, server: FakeOAuthServer) -> None:
    cli = Cli(tmp_path)
    seed(cli, server, access_token="at-remote-1")
    with git_server(GitHttp(accepted={"oauth2:at-remote-1"})) as remote:
        done = ls_remote(git_env(cli, "deviceflow --profile p"), remote.url)
    assert done.returncode == 0, done.stderr
    assert f"{SHA}\trefs/heads/main" in done.stdout
    assert remote.seen[0] == ""  # git asks for credentials only after the 401
    assert "at-remote-1" not in done.stdout + done.stderr


def test_rejected_token_is_erased_and_the_refresh_token_kept(
    tmp_path: Path, server: FakeOAuthServer
) -> None:
    cli = Cli(tmp_path)
    seed(cli, server, access_token="at-revoked", refresh_token="rt-keep")
    with git_server(GitHttp(accepted=set())) as remote:
        done = ls_remote(git_env(cli, "deviceflow --profile p"), remote.url)
    assert done.returncode != 0
    assert any(a.startswith("Basic ") for a in remote.seen)  # our token was tried, then rejected
    record = cached_record(cli)
    assert record is not None
    assert record.tokens == ()
    assert record.refresh_token == "rt-keep"


# Become a session leader, take the pty as controlling terminal (opening it without O_NOCTTY),
# then run the helper with stdin/stdout still git's pipes.
CTTY_WRAPPER = (
    "import os, sys; os.setsid(); os.close(os.open(sys.argv[1], os.O_RDWR)); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def test_sign_in_is_drawn_on_the_terminal_never_on_stdout(
    tmp_path: Path, server: FakeOAuthServer
) -> None:
    import pty
    import select

    cli = Cli(tmp_path)
    created = cli.run(
        "create-profile", "--name", "p", "--issuer", server.issuer, "--client-id", "cli"
    )
    assert created.returncode == 0, created.stderr
    master, slave = pty.openpty()
    try:
        with subprocess.Popen(
            [sys.executable, "-c", CTTY_WRAPPER, os.ttyname(slave), *deviceflow_argv(),
             "git-credential", "--profile", "p", "get"],
            env=cli.env(TERM="dumb"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdin is not None
            proc.stdin.write("protocol=https\nhost=git.example.com\n\n")
            proc.stdin.close()
            user_code = server.last_user_code()
            server.approve(user_code)
            assert proc.stdout is not None
            assert proc.stderr is not None
            stdout, stderr = proc.stdout.read(), proc.stderr.read()
            assert proc.wait(timeout=30) == 0, stderr
        terminal = b""
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            terminal += chunk
    finally:
        os.close(master)
        os.close(slave)
    got = answer(stdout)
    assert got["password"] in server.access_tokens
    assert user_code in terminal.decode()  # the instructions went to the terminal
    assert user_code not in stdout + stderr
    assert got["password"] not in terminal.decode()

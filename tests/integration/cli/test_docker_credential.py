"""``docker-credential-deviceflow`` against the docker-credential-helpers protocol: the action
in argv, its input on stdin, the answer (or a fixed protocol message with exit 1) on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.cli.clikit import Cli
from tests.integration.cli.credkit import cached_record, fill_cache, make_profile, no_traceback
from tests.integration.cli.fake_oauth import FakeOAuthServer, running

from deviceflow.cli.commands import docker_credential

ROOT = Path(__file__).resolve().parents[3]
ACR_USERNAME = "00000000-0000-0000-0000-000000000000"


def helper_argv() -> list[str]:
    """The installed console script, else the same entry point through ``python -m``."""
    script = Path(sys.executable).parent / docker_credential.PROGRAM
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "deviceflow.cli.commands.docker_credential"]


def helper(cli: Cli, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*helper_argv(), *argv],
        env=cli.env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def server() -> Iterator[FakeOAuthServer]:
    with running(FakeOAuthServer(interval=0.1)) as fake:
        yield fake


@pytest.fixture
def cli(tmp_path: Path, server: FakeOAuthServer) -> Cli:
    cli = Cli(tmp_path)
    make_profile(cli, server, "gh", "--docker-registry", "ghcr.io")
    make_profile(
        cli, server, "acr", "--docker-registry", "https://Example.azurecr.io/v2/",
        "--docker-username", ACR_USERNAME,
    )
    return cli


def test_the_console_script_is_declared() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    target = scripts[docker_credential.PROGRAM]
    module, _, name = target.partition(":")
    assert (module, name) == (docker_credential.__name__, "main")
    assert callable(docker_credential.main)


@pytest.mark.parametrize(
    ("server_url", "profile", "username"),
    [
        ("ghcr.io", "gh", "oauth2accesstoken"),
        ("https://ghcr.io\n", "gh", "oauth2accesstoken"),
        ("example.azurecr.io", "acr", ACR_USERNAME),
    ],
    ids=["host", "url-with-newline", "acr-username"],
)
def test_get_answers_the_mapped_profile_token(
    cli: Cli, server: FakeOAuthServer, server_url: str, profile: str, username: str
) -> None:
    fill_cache(cli, server, profile, access_token=f"at-{profile}", expires_in=1800,
               refresh_token=None)
    done = helper(cli, "get", stdin=server_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1
    assert json.loads(done.stdout) == {
        "ServerURL": server_url.strip(),
        "Username": username,
        "Secret": f"at-{profile}",
    }
    assert f"at-{profile}" not in done.stderr


def test_get_refreshes_an_expired_token(cli: Cli, server: FakeOAuthServer) -> None:
    fill_cache(cli, server, "gh", access_token="at-old", expires_in=-10, refresh_token="rt-1")
    done = helper(cli, "get", stdin="ghcr.io")
    assert done.returncode == 0, done.stderr
    secret = json.loads(done.stdout)["Secret"]
    assert secret in server.access_tokens
    assert server.refresh_calls == 1


def test_get_signs_in_on_stderr_when_nothing_is_cached(cli: Cli, server: FakeOAuthServer) -> None:
    proc = subprocess.Popen(
        [*helper_argv(), "get"],
        env=cli.env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    codes: list[str] = []

    def approve() -> None:
        codes.append(server.last_user_code())
        server.approve(codes[0])

    approver = threading.Thread(target=approve)
    approver.start()
    # docker writes the server URL and closes stdin; nothing is asked on it.
    out, err = proc.communicate(input="ghcr.io", timeout=30)
    approver.join()
    [user_code] = codes
    assert proc.returncode == 0, err
    assert user_code in err
    secret = json.loads(out)["Secret"]
    assert secret in server.access_tokens
    assert secret not in err


def test_the_same_entry_runs_as_deviceflow_docker_credential(
    cli: Cli, server: FakeOAuthServer
) -> None:
    fill_cache(cli, server, "gh", access_token="at-gh", expires_in=1800, refresh_token=None)
    done = cli.run("docker-credential", "get", input="ghcr.io")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Secret"] == "at-gh"


@pytest.mark.parametrize(
    ("action", "stdin", "message"),
    [
        ("get", "registry.example.com", "credentials not found in native keychain"),
        ("get", "", "no credentials server URL"),
        ("get", "not a host", "credentials not found in native keychain"),
        ("erase", "registry.example.com", "credentials not found in native keychain"),
        ("erase", "  \n", "no credentials server URL"),
    ],
    ids=["get-unmapped", "get-empty", "get-garbage", "erase-unmapped", "erase-empty"],
)
def test_protocol_messages_on_stdout_with_exit_1(
    cli: Cli, action: str, stdin: str, message: str
) -> None:
    done = helper(cli, action, stdin=stdin)
    assert done.returncode == 1
    assert done.stdout == message + "\n"
    assert "Traceback" not in done.stderr


def test_store_consumes_stdin_stores_nothing_and_succeeds(
    cli: Cli, server: FakeOAuthServer
) -> None:
    body = {"ServerURL": "ghcr.io", "Username": "someone", "Secret": "docker-login-password"}
    done = helper(cli, "store", stdin=json.dumps(body))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "docker-login-password" not in done.stderr
    assert cli.token_files() == []  # nothing written anywhere
    assert "docker-login-password" not in (cli.config_dir / "profiles.toml").read_text()


@pytest.mark.parametrize(
    ("argv", "stdin"),
    [
        (("store",), "{not json"),
        (("store",), json.dumps(["ServerURL"])),
        (("store",), json.dumps({"ServerURL": 7})),
        (("rotate",), ""),
    ],
    ids=["store-not-json", "store-not-object", "store-url-not-string", "unknown-action"],
)
def test_malformed_input_is_one_sentence_on_stderr(
    cli: Cli, argv: tuple[str, ...], stdin: str
) -> None:
    done = helper(cli, *argv, stdin=stdin)
    assert done.returncode != 0
    assert done.stdout == ""
    assert no_traceback(done.stderr), done.stderr


def test_erase_drops_the_access_token_and_keeps_the_refresh_token(
    cli: Cli, server: FakeOAuthServer
) -> None:
    fill_cache(cli, server, "gh", access_token="at-gh", expires_in=1800, refresh_token="rt-1")
    done = helper(cli, "erase", stdin="ghcr.io")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    record = cached_record(cli, "gh")
    assert record is not None
    assert record.tokens == ()
    assert record.refresh_token == "rt-1"
    # The next get renews silently.
    again = helper(cli, "get", stdin="ghcr.io")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["Secret"] != "at-gh"
    assert server.refresh_calls == 1


def test_list_names_each_mapped_registry_and_its_username(cli: Cli) -> None:
    done = helper(cli, "list", stdin="unused")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "ghcr.io": "oauth2accesstoken",
        "example.azurecr.io": ACR_USERNAME,
    }


def test_version(cli: Cli) -> None:
    done = helper(cli, "version")
    assert done.returncode == 0
    assert done.stdout.startswith(docker_credential.PROGRAM + " (deviceflow) ")

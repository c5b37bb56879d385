"""``deviceflow exec`` and ``git-credential`` in-process: the environment handed to the command,
option checks, and git's credential protocol (parsing, answers, hosts, erase)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from tests.unit.cli.clienv import invoke

from deviceflow.cli.commands import exec_token
from deviceflow.cli.commands.git_credential import (
    CredentialRequest,
    answer_lines,
    host_allowed,
    parse_request,
)
from deviceflow.cli.exit_codes import CliError, ExitCode
from deviceflow.client.cache import CacheRecord, StoreKind, TokenCache
from deviceflow.client.profiles import ProfileStore
from deviceflow.client.tokens import TokenSet


def seed(home: Path, access_token: str = "at-unit", refresh_token: str | None = "rt-unit") -> None:
    assert invoke(home, "create-profile", "--name", "p", "--client-id", "c").code == 0
    profile = ProfileStore(home / "config").load().get("p")
    now = time.time()
    token = TokenSet(access_token=access_token, expires_at=now + 3600, refresh_token=refresh_token)
    record = CacheRecord(profile.cache_key).with_token(profile.scopes_for(()), None, token, now=now)
    TokenCache(home / "data", StoreKind.FILE).save(record)


def load(home: Path) -> CacheRecord | None:
    profile = ProfileStore(home / "config").load().get("p")
    return TokenCache(home / "data", StoreKind.FILE).load(profile.cache_key)


# --- exec ------------------------------------------------------------------------------------


def test_exec_hands_the_token_in_one_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(tmp_path)
    calls: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(exec_token, "execvpe", lambda f, a, e: calls.append((f, a, e)))
    result = invoke(tmp_path, "exec", "--env-var", "GH_TOKEN", "--", "gh", "api", "-X", "GET")
    assert result.code == 0, result.err
    [(file, argv, environ)] = calls
    assert (file, argv) == ("gh", ["gh", "api", "-X", "GET"])
    assert environ["GH_TOKEN"] == "at-unit"
    assert "ACCESS_TOKEN" not in environ
    assert environ["DEVICEFLOW_TOKEN_STORE"] == "file"  # the rest of the environment is kept
    assert "at-unit" not in result.out + result.err


@pytest.mark.parametrize("name", ["ACCESS_TOKEN", "_x", "a1_B"])
def test_valid_env_names(name: str) -> None:
    assert exec_token.valid_env_name(name)


@pytest.mark.parametrize("name", ["", "1A", "A-B", "A B", "A=B", "Ä", "A\n"])
def test_invalid_env_names(tmp_path: Path, name: str) -> None:
    assert not exec_token.valid_env_name(name)
    assert invoke(tmp_path, "exec", "--env-var", name, "--", "true").code == ExitCode.USAGE


def test_exec_without_a_command_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke(tmp_path, "exec", "--profile", "p")
    assert result.code == ExitCode.USAGE
    assert "Missing the command" in result.err


# --- git's credential protocol ----------------------------------------------------------------


def test_parse_stops_at_the_blank_line_and_keeps_repeats() -> None:
    stream = io.StringIO(
        "protocol=https\nhost=h\nwwwauth[]=Basic realm=x\nwwwauth[]=Bearer\n\nignored\n"
    )
    request = parse_request(stream)
    assert request.get("host") == "h"
    assert request.values("wwwauth[]") == ("Basic realm=x", "Bearer")
    assert stream.read() == "ignored\n"


@pytest.mark.parametrize("text", ["protocol\n\n", "=x\n\n", "a=b\0c\n\n", "k=" + "v" * 70000])
def test_malformed_input_is_one_sentence(text: str) -> None:
    with pytest.raises(CliError) as info:
        parse_request(io.StringIO(text))
    assert info.value.code == ExitCode.USAGE
    assert str(info.value).startswith("git-credential: malformed input")


def test_malformed_input_exits_non_zero_without_traceback(tmp_path: Path) -> None:
    result = invoke(tmp_path, "git-credential", "get", stdin="no equals sign\n\n")
    assert result.code == ExitCode.USAGE
    assert result.out == ""
    assert "Traceback" not in result.err
    assert result.err.count("\n") == 1


def request(**attrs: str | tuple[str, ...]) -> CredentialRequest:
    pairs: list[tuple[str, str]] = []
    for key, value in attrs.items():
        key = key.replace("_list", "[]")
        for v in value if isinstance(value, tuple) else (value,):
            pairs.append((key, v))
    return CredentialRequest(tuple(pairs))


@pytest.mark.parametrize(
    ("protocol", "host", "allowed"),
    [
        ("https", "git.example.com", True),
        ("http", "127.0.0.1:8080", True),
        ("http", "localhost", True),
        ("http", "[::1]:80", True),
        ("http", "git.example.com", False),
        ("http", "127.0.0.1.evil.example", False),
        ("ssh", "git.example.com", False),
    ],
)
def test_hosts(protocol: str, host: str, allowed: bool) -> None:
    assert host_allowed(request(protocol=protocol, host=host)) is allowed


TOKEN = TokenSet(access_token="at-1", expires_at=1_900_000_000.5)


def test_basic_answer_with_expiry_and_username_choice() -> None:
    assert answer_lines(request(protocol="https"), TOKEN, None) == [
        "username=oauth2",
        "password=at-1",
        "password_expiry_utc=1900000000",
    ]
    assert answer_lines(request(username="bob"), TOKEN, None)[0] == "username=bob"
    assert answer_lines(request(username="bob"), TOKEN, "x-access-token")[0] == (
        "username=x-access-token"
    )


def test_bearer_answer_when_git_and_the_server_take_it() -> None:
    bearer = request(capability_list="authtype", wwwauth_list=("Basic realm=x", "Bearer"))
    assert answer_lines(bearer, TOKEN, None)[:4] == [
        "capability[]=authtype",
        "authtype=Bearer",
        "credential=at-1",
        "ephemeral=1",
    ]
    basic_only = request(capability_list="authtype", wwwauth_list="Basic realm=x")
    assert answer_lines(basic_only, TOKEN, None)[1] == "password=at-1"
    old_git = request(wwwauth_list="Bearer")
    assert answer_lines(old_git, TOKEN, None)[1] == "password=at-1"


def test_a_line_break_cannot_inject_attributes() -> None:
    with pytest.raises(CliError):
        answer_lines(request(), TokenSet(access_token="at\nusername=evil"), None)


def test_store_and_unknown_actions_are_ignored(tmp_path: Path) -> None:
    seed(tmp_path)
    before = load(tmp_path)
    for action in ("store", "frobnicate"):
        result = invoke(
            tmp_path, "git-credential", action, stdin="protocol=https\nhost=h\npassword=x\n\n"
        )
        assert (result.code, result.out, result.err) == (0, "", "")
    assert load(tmp_path) == before


def test_get_answers_from_the_cache(tmp_path: Path) -> None:
    seed(tmp_path)
    result = invoke(tmp_path, "git-credential", "get", stdin="protocol=https\nhost=h\nfoo=bar\n\n")
    assert result.code == 0, result.err
    assert "username=oauth2\npassword=at-unit\n" in result.out


def test_get_refuses_plain_http_to_another_host(tmp_path: Path) -> None:
    seed(tmp_path)
    result = invoke(tmp_path, "git-credential", "get", stdin="protocol=http\nhost=h\n\n")
    assert result.code == 0
    assert result.out == ""
    assert "HTTPS" in result.err
    assert "at-unit" not in result.err


def test_erase_drops_the_rejected_access_token_only(tmp_path: Path) -> None:
    seed(tmp_path)
    other = invoke(
        tmp_path, "git-credential", "erase", stdin="protocol=https\nhost=h\npassword=other\n\n"
    )
    assert other.code == 0
    record = load(tmp_path)
    assert record is not None
    assert len(record.tokens) == 1
    ours = invoke(
        tmp_path, "git-credential", "erase", stdin="protocol=https\nhost=h\npassword=at-unit\n\n"
    )
    assert ours.code == 0
    record = load(tmp_path)
    assert record is not None
    assert record.tokens == ()
    assert record.refresh_token == "rt-unit"

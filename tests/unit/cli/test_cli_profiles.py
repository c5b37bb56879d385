"""Profile commands, in-process with no terminal: what they write, say, and exit with."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from tests.unit.cli.clienv import invoke


def create(home: Path, name: str = "myapp", *extra: str) -> None:
    result = invoke(home, "create-profile", "--name", name, "--client-id", "cli-app", *extra)
    assert result.code == 0, result.err


def test_create_profile_writes_toml_and_says_what_next(tmp_path: Path) -> None:
    result = invoke(
        tmp_path,
        "create-profile",
        "--name",
        "myapp",
        "--client-id",
        "cli-app",
        "--scope",
        "openid",
        "--scope",
        "offline_access api:read",
    )
    assert result.code == 0
    assert result.out == ""  # messages go to stderr
    assert "Profile 'myapp' created" in result.err
    assert "deviceflow get-token --profile myapp" in result.err
    data = tomllib.loads((tmp_path / "config" / "profiles.toml").read_text())
    assert data["default_profile"] == "myapp"
    assert data["profiles"]["myapp"] == {
        "provider": "local",
        "client_id": "cli-app",
        "scopes": ["openid", "offline_access", "api:read"],
    }


def test_seed_raspberry_pi_example_infers_entra_from_tenant(tmp_path: Path) -> None:
    result = invoke(
        tmp_path,
        "create-profile",
        "--name",
        "raspberry-pi",
        "--tenant-id",
        "contoso.onmicrosoft.com",
        "--client-id",
        "00000000-0000-0000-0000-000000000001",
        "--scope",
        "https://graph.microsoft.com/User.Read",
    )
    assert result.code == 0, result.err
    listing = invoke(tmp_path, "list-profiles")
    assert "raspberry-pi" in listing.out  # the seed greps list-profiles for the name
    shown = json.loads(invoke(tmp_path, "show-profile", "raspberry-pi", "--output", "json").out)
    assert shown["provider"] == "entra"
    assert shown["issuer"] == "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
    assert shown["scopes"] == ["https://graph.microsoft.com/User.Read", "offline_access"]


@pytest.mark.parametrize(
    ("argv", "missing"),
    [
        (["create-profile", "--client-id", "x"], "--name"),
        (["create-profile", "--name", "a"], "--client-id"),
        (["create-profile", "--name", "a", "--provider", "oidc", "--client-id", "x"], "--issuer"),
        (
            ["create-profile", "--name", "a", "--provider", "entra", "--client-id", "x"],
            "--tenant-id",
        ),
    ],
    ids=["name", "client-id", "issuer-for-oidc", "tenant-for-entra"],
)
def test_create_profile_refuses_cleanly_without_a_terminal(
    tmp_path: Path, argv: list[str], missing: str
) -> None:
    result = invoke(tmp_path, *argv)
    assert result.code == 2
    assert result.err.strip() == f"Missing {missing} (there is no terminal to ask on)."
    assert not (tmp_path / "config" / "profiles.toml").exists()


def test_insecure_issuer_is_refused(tmp_path: Path) -> None:
    result = invoke(
        tmp_path,
        "create-profile",
        "--name",
        "a",
        "--client-id",
        "x",
        "--issuer",
        "http://id.example.com",
    )
    assert result.code == 3
    assert "must use https" in result.err


@pytest.mark.parametrize(
    ("issuer", "said"),
    [
        (
            "127.0.0.1:8765",
            "The issuer 127.0.0.1:8765 has no scheme: use http://127.0.0.1:8765 (loopback) "
            "or https://127.0.0.1:8765.",
        ),
        (
            "localhost:8000/realms/x",
            "The issuer localhost:8000/realms/x has no scheme: use "
            "http://localhost:8000/realms/x (loopback) or https://localhost:8000/realms/x.",
        ),
        (
            "id.example.com",
            "The issuer id.example.com has no scheme: use https://id.example.com.",
        ),
        ("htp://host", "The issuer htp://host has an unknown scheme 'htp': use https://host."),
        (
            "htps://127.0.0.1:9",
            "The issuer htps://127.0.0.1:9 has an unknown scheme 'htps': use "
            "http://127.0.0.1:9 (loopback) or https://127.0.0.1:9.",
        ),
        ("https://", "The issuer https:// has no host name."),
        ("https://id.example.com:https", "The issuer https://id.example.com:https has an "
         "invalid port."),
    ],
    ids=["loopback-no-scheme", "localhost-no-scheme", "remote-no-scheme", "typo", "typo-loopback",
         "no-host", "bad-port"],
)
@pytest.mark.parametrize("command", ["create-profile", "update-profile"])
def test_malformed_issuer_says_what_is_wrong(
    tmp_path: Path, command: str, issuer: str, said: str
) -> None:
    if command == "update-profile":
        assert invoke(tmp_path, "create-profile", "--name", "a", "--client-id", "x").code == 0
    result = invoke(
        tmp_path, command, "--name", "a", "--client-id", "x", "--provider", "oidc",
        "--issuer", issuer,
    )
    assert result.code == 3
    assert result.err == said + "\n"
    assert "must use https" not in result.err


def test_duplicate_and_bad_names(tmp_path: Path) -> None:
    create(tmp_path)
    again = invoke(tmp_path, "create-profile", "--name", "myapp", "--client-id", "y")
    assert again.code == 3
    assert "already exists" in again.err
    bad = invoke(tmp_path, "create-profile", "--name", "../etc", "--client-id", "y")
    assert bad.code == 3
    assert "not a valid profile name" in bad.err


def test_list_profiles_text_and_json(tmp_path: Path) -> None:
    assert "No profiles yet" in invoke(tmp_path, "list-profiles").err
    create(tmp_path, "one")
    create(tmp_path, "two", "--issuer", "https://id.example.com", "--provider", "oidc")
    text = invoke(tmp_path, "list-profiles").out.splitlines()
    assert text[0].split() == ["NAME", "PROVIDER", "ISSUER", "CLIENT", "ID"]
    assert text[1].split() == ["*", "one", "local", "http://127.0.0.1:8000", "cli-app"]
    assert text[2].split() == ["two", "oidc", "https://id.example.com", "cli-app"]
    data = json.loads(invoke(tmp_path, "list-profiles", "-o", "json").out)
    assert [p["name"] for p in data] == ["one", "two"]
    assert [p["default"] for p in data] == [True, False]


def test_env_profile_picks_the_default(tmp_path: Path) -> None:
    create(tmp_path, "one")
    create(tmp_path, "two")
    shown = invoke(tmp_path, "show-profile", "-o", "json", DEVICEFLOW_PROFILE="two")
    assert json.loads(shown.out)["name"] == "two"
    shown = invoke(tmp_path, "show-profile", "-o", "json")
    assert json.loads(shown.out)["name"] == "one"


def test_update_profile(tmp_path: Path) -> None:
    create(tmp_path)
    result = invoke(
        tmp_path,
        "update-profile",
        "--name",
        "myapp",
        "--scope",
        "openid",
        "--rename",
        "prod",
        "--set-default",
    )
    assert result.code == 0, result.err
    shown = json.loads(invoke(tmp_path, "show-profile", "prod", "-o", "json").out)
    assert shown["scopes"] == ["openid"]
    assert shown["default"] is True
    assert invoke(tmp_path, "show-profile", "myapp").code == 3
    nothing = invoke(tmp_path, "update-profile", "--name", "prod")
    assert nothing.code == 2
    assert "Nothing to change" in nothing.err


def test_delete_profile_asks_or_needs_yes_and_removes_tokens(tmp_path: Path) -> None:
    create(tmp_path)
    tokens = tmp_path / "data" / "tokens"
    tokens.mkdir(parents=True)
    stale = tokens / "myapp.0000000000000000.json"
    stale.write_text("{}")
    other = tokens / "myapp2.0000000000000000.json"
    other.write_text("{}")
    refused = invoke(tmp_path, "delete-profile", "--name", "myapp")
    assert refused.code == 2
    assert "pass --yes" in refused.err
    done = invoke(tmp_path, "delete-profile", "--name", "myapp", "--yes")
    assert done.code == 0, done.err
    assert not stale.exists()
    assert other.exists()  # another profile's file is never touched
    assert invoke(tmp_path, "list-profiles", "-o", "json").out.strip() == "[]"


def test_client_secret_is_read_from_stdin_and_never_stored_in_toml(tmp_path: Path) -> None:
    result = invoke(
        tmp_path,
        "create-profile",
        "--name",
        "g",
        "--provider",
        "google",
        "--client-id",
        "123.apps.googleusercontent.com",
        "--client-secret-stdin",
        stdin="GOCSPX-very-secret\n",
    )
    assert result.code == 0, result.err
    toml = (tmp_path / "config" / "profiles.toml").read_text()
    assert "GOCSPX" not in toml
    assert 'client_secret = "stored"' in toml
    secret_file = tmp_path / "data" / "tokens" / "g.client-secret.json"
    assert secret_file.read_text() == "GOCSPX-very-secret"
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
    shown = invoke(tmp_path, "show-profile", "g")
    assert "GOCSPX" not in shown.out
    assert "stored" in shown.out


def test_get_token_without_profiles_explains(tmp_path: Path) -> None:
    result = invoke(tmp_path, "get-token")
    assert result.code == 3
    assert "create-profile" in result.err


def test_bad_token_store_setting(tmp_path: Path) -> None:
    result = invoke(tmp_path, "list-profiles", DEVICEFLOW_TOKEN_STORE="cloud")
    assert result.code == 3
    assert "DEVICEFLOW_TOKEN_STORE" in result.err


def test_keyring_mandatory_without_a_keyring_fails_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    create(tmp_path)
    result = invoke(tmp_path, "get-token", DEVICEFLOW_TOKEN_STORE="keyring")
    assert result.code == 8
    assert "no system keyring answered" in result.err

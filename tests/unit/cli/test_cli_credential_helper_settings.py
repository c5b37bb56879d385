"""The settings behind the credential helpers: a profile's docker registries and username (stored,
validated, one profile per registry, old files still loading) and KUBERNETES_EXEC_INFO parsing."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from tests.unit.cli.clienv import invoke

from deviceflow.cli.commands.kube_credential import ExecInfo, exec_info
from deviceflow.cli.exit_codes import CliError
from deviceflow.client.profiles import ProfileStore, normalize_registry

ACR = "00000000-0000-0000-0000-000000000000"


def toml_of(home: Path) -> dict[str, object]:
    return tomllib.loads((home / "config" / "profiles.toml").read_text())


def profile_table(home: Path, name: str) -> dict[str, object]:
    profiles = toml_of(home)["profiles"]
    assert isinstance(profiles, dict)
    table = profiles[name]
    assert isinstance(table, dict)
    return table


def create(home: Path, name: str, *extra: str) -> int:
    return invoke(home, "create-profile", "--name", name, "--client-id", "cli", *extra).code


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("ghcr.io", "ghcr.io"),
        ("GHCR.IO", "ghcr.io"),
        ("https://index.docker.io/v1/", "index.docker.io"),
        ("registry.example.com:5000/v2", "registry.example.com:5000"),
        ("  myacr.azurecr.io \n", "myacr.azurecr.io"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("", None),
        ("not a host", None),
        ("https://", None),
        ("-bad.example.com", None),
        ("host:port", None),
    ],
    ids=lambda v: repr(v),
)
def test_normalize_registry(value: str, host: str | None) -> None:
    assert normalize_registry(value) == host


def test_registries_and_username_are_stored_and_shown(tmp_path: Path) -> None:
    code = create(
        tmp_path, "acr", "--docker-registry", "https://MyAcr.azurecr.io/v2/",
        "--docker-registry", "other.azurecr.io", "--docker-username", ACR,
    )
    assert code == 0
    table = profile_table(tmp_path, "acr")
    assert table["docker_registries"] == ["myacr.azurecr.io", "other.azurecr.io"]
    assert table["docker_username"] == ACR
    shown = invoke(tmp_path, "show-profile", "acr", "--output", "json")
    summary = json.loads(shown.out)
    assert summary["docker_registries"] == ["myacr.azurecr.io", "other.azurecr.io"]
    assert summary["docker_username"] == ACR


def test_a_profile_file_from_before_the_docker_helper_still_loads(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir(mode=0o700)
    (config / "profiles.toml").write_text(
        'default_profile = "old"\n[profiles.old]\nprovider = "local"\nclient_id = "cli"\n'
        'default_flow = "device-code"\n'
    )
    [profile] = ProfileStore(config).load().profiles
    assert (profile.docker_registries, profile.docker_username) == ((), None)
    assert profile.effective_docker_username == "oauth2accesstoken"
    listed = invoke(tmp_path, "list-profiles", "--output", "json")
    assert listed.code == 0, listed.err
    assert json.loads(listed.out)[0]["docker_registries"] is None
    # Saving it again writes no docker keys.
    assert invoke(tmp_path, "update-profile", "--name", "old", "--scope", "openid").code == 0
    assert "docker_registries" not in profile_table(tmp_path, "old")


@pytest.mark.parametrize(
    "line",
    ['docker_registries = "ghcr.io"', 'docker_registries = ["not a host"]',
     "docker_registries = [1]", "docker_username = 5"],
    ids=["not-a-list", "bad-host", "not-strings", "username-not-string"],
)
def test_a_hand_edited_bad_mapping_is_one_sentence_and_exit_3(tmp_path: Path, line: str) -> None:
    config = tmp_path / "config"
    config.mkdir(mode=0o700)
    (config / "profiles.toml").write_text(f'[profiles.p]\nclient_id = "cli"\n{line}\n')
    result = invoke(tmp_path, "docker-credential", "list")
    assert result.code == 3
    assert result.out == ""
    assert len(result.err.strip().splitlines()) == 1


def test_a_registry_maps_to_one_profile(tmp_path: Path) -> None:
    assert create(tmp_path, "a", "--docker-registry", "ghcr.io") == 0
    again = invoke(
        tmp_path, "create-profile", "--name", "b", "--client-id", "cli",
        "--docker-registry", "GHCR.io",
    )
    assert again.code == 3
    assert "already mapped to profile 'a'" in again.err
    assert create(tmp_path, "b") == 0
    moved = invoke(tmp_path, "update-profile", "--name", "b", "--docker-registry", "ghcr.io")
    assert moved.code == 3
    assert "docker_registries" not in profile_table(tmp_path, "b")


def test_a_hand_edited_file_mapping_one_registry_twice_is_refused_by_get(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir(mode=0o700)
    (config / "profiles.toml").write_text(
        '[profiles.a]\nclient_id = "cli"\ndocker_registries = ["ghcr.io"]\n'
        '[profiles.b]\nclient_id = "cli"\ndocker_registries = ["GHCR.io"]\n'
    )
    result = invoke(tmp_path, "docker-credential", "get", stdin="ghcr.io\n")
    assert result.code == 3
    assert result.out == ""
    assert "mapped by several profiles ('a', 'b')" in result.err


def test_update_replaces_clears_and_resets(tmp_path: Path) -> None:
    assert create(tmp_path, "p", "--docker-registry", "a.example.com",
                  "--docker-username", "<token>") == 0
    assert invoke(tmp_path, "update-profile", "--name", "p",
                  "--docker-registry", "b.example.com").code == 0
    assert profile_table(tmp_path, "p")["docker_registries"] == ["b.example.com"]
    assert invoke(tmp_path, "update-profile", "--name", "p", "--docker-username", "").code == 0
    assert "docker_username" not in profile_table(tmp_path, "p")
    assert invoke(tmp_path, "update-profile", "--name", "p", "--no-docker-registries").code == 0
    assert "docker_registries" not in profile_table(tmp_path, "p")
    bad = invoke(tmp_path, "update-profile", "--name", "p", "--docker-registry", "a b")
    assert bad.code == 3
    assert "is not a registry host" in bad.err


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ExecInfo("client.authentication.k8s.io/v1", True)),
        ({"KUBERNETES_EXEC_INFO": "  "}, ExecInfo("client.authentication.k8s.io/v1", True)),
        (
            {"KUBERNETES_EXEC_INFO": json.dumps(
                {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                 "spec": {"interactive": True, "cluster": {"server": "https://k8s"}}})},
            ExecInfo("client.authentication.k8s.io/v1", True),
        ),
        (
            {"KUBERNETES_EXEC_INFO": json.dumps(
                {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                 "spec": {}})},
            ExecInfo("client.authentication.k8s.io/v1", False),
        ),
    ],
    ids=["unset-by-hand", "blank", "interactive", "interactive-missing-means-no"],
)
def test_exec_info(environ: dict[str, str], expected: ExecInfo) -> None:
    assert exec_info(environ) == expected


def test_exec_info_never_echoes_its_input() -> None:
    with pytest.raises(CliError) as caught:
        exec_info({"KUBERNETES_EXEC_INFO": '{"apiVersion": "secret-ish-value"}'})
    assert "secret-ish-value" not in str(caught.value)

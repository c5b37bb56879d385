"""get-token --flow client-credentials against deviceflow's own server (a real ``deviceflow``
subprocess, the live server): the secret from the token store, the environment or stdin,
never argv; the client's own token (``sub`` in the client namespace), cached and asked for
again, never mixed with a person's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.cli.clikit import Cli
from tests.integration.cli.livekit import unique


def confidential(live_server: Any, tmp_path: Path, *extra: str) -> tuple[Cli, str, str]:
    cli = Cli(tmp_path)
    client_id = unique("nightly")
    secret = live_server.add_client(
        client_id, name="Nightly job", public=False, grants=("client_credentials",),
        scopes=("reports.read", "reports.write"),
    )
    assert secret
    created = cli.run("create-profile", "--name", "job", "--issuer", live_server.issuer,
                      "--client-id", client_id, *extra, input=secret + "\n")
    assert created.returncode == 0, created.stderr
    return cli, client_id, secret


def claims(cli: Cli, token: str) -> dict[str, Any]:
    inspected = cli.run("inspect", "-", "-o", "json", input=token)
    assert inspected.returncode == 0, inspected.stderr
    return dict(json.loads(inspected.stdout)["claims"])


def test_stored_secret_and_the_cache(live_server: Any, tmp_path: Path) -> None:
    cli, client_id, _secret = confidential(
        live_server, tmp_path, "--default-flow", "client-credentials", "--client-secret-stdin",
        "--scope", "reports.read",
    )
    first = cli.run("get-token", "job", "--output", "json")
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    body = json.loads(first.stdout)
    assert "id_token" not in body
    assert body["scope"] == "reports.read"
    token_claims = claims(cli, body["access_token"])
    assert token_claims["sub"] == f"client:{client_id}"
    assert token_claims["client_id"] == client_id
    again = cli.run("get-token", "job")
    assert again.stdout.strip() == body["access_token"]
    # Nothing of a person's: no refresh token was kept.
    (record_file,) = [f for f in cli.token_files() if "client-secret" not in f.name]
    record = json.loads(record_file.read_text())
    assert record["refresh_token"] is None
    assert record["subject"] == "client"
    # status reads the profile's own flow's tokens: the client's, active at the server.
    status = cli.run("status", "job", "--output", "json")
    assert status.returncode == 0, status.stderr
    [entry] = json.loads(status.stdout)
    assert entry["signed_in"] is True
    assert entry["refresh_token_source"] is None


def test_secret_from_the_environment_or_stdin(live_server: Any, tmp_path: Path) -> None:
    cli, client_id, secret = confidential(live_server, tmp_path)
    from_env = cli.run("get-token", "--flow", "client-credentials", "job",
                       DEVICEFLOW_CLIENT_SECRET=secret)
    assert from_env.returncode == 0, from_env.stderr
    assert claims(cli, from_env.stdout.strip())["sub"] == f"client:{client_id}"
    forced = cli.run("get-token", "--flow", "client-credentials", "--force",
                     "--client-secret-stdin", "job", input=secret + "\n")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.strip() != from_env.stdout.strip()


def test_a_wrong_secret_is_the_servers_refusal(live_server: Any, tmp_path: Path) -> None:
    cli, _client_id, _secret = confidential(live_server, tmp_path)
    wrong = cli.run("get-token", "--flow", "client-credentials", "job",
                    DEVICEFLOW_CLIENT_SECRET="not-the-secret")
    assert wrong.returncode == 7
    assert "not-the-secret" not in wrong.stderr
    assert wrong.stdout == ""


def test_no_secret_is_refused_before_any_request(live_server: Any, tmp_path: Path) -> None:
    cli, _client_id, _secret = confidential(live_server, tmp_path)
    refused = cli.run("get-token", "--flow", "client-credentials", "job")
    assert refused.returncode == 3
    assert "DEVICEFLOW_CLIENT_SECRET" in refused.stderr

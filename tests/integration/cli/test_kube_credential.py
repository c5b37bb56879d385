"""``deviceflow kube-credential`` against the client-go exec credential plugin contract: an
ExecCredential on stdout (checked with a JSON schema written from the documented v1 fields),
KUBERNETES_EXEC_INFO's spec.interactive obeyed, the sign-in on stderr only."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from tests.integration.cli.clikit import Cli
from tests.integration.cli.credkit import fill_cache, make_profile, no_traceback
from tests.integration.cli.fake_oauth import FakeOAuthServer, running

RFC3339_UTC = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$"


def exec_credential_schema(api_version: str) -> dict[str, object]:
    """ExecCredential as documented in "Client Authentication (v1)": apiVersion, kind, spec
    (interactive [required], cluster) and status (expirationTimestamp as meta/v1.Time, token,
    clientCertificateData, clientKeyData). Nothing else may appear."""
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "status"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": "ExecCredential"},
            "spec": {
                "type": "object",
                "required": ["interactive"],
                "additionalProperties": False,
                "properties": {"interactive": {"type": "boolean"}, "cluster": {"type": "object"}},
            },
            "status": {
                "type": "object",
                "required": ["token"],
                "additionalProperties": False,
                "properties": {
                    "expirationTimestamp": {"type": "string", "pattern": RFC3339_UTC},
                    "token": {"type": "string", "minLength": 1},
                    "clientCertificateData": {"type": "string"},
                    "clientKeyData": {"type": "string"},
                },
            },
        },
    }


V1 = "client.authentication.k8s.io/v1"


def exec_info(interactive: bool, api_version: str = V1) -> str:
    return json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": interactive}}
    )


def credential(stdout: str, api_version: str = V1) -> dict[str, object]:
    body = json.loads(stdout)
    jsonschema.validate(body, exec_credential_schema(api_version))
    assert isinstance(body, dict)
    return body


def status_of(body: dict[str, object]) -> dict[str, str]:
    status = body["status"]
    assert isinstance(status, dict)
    return status


def expiry(status: dict[str, str]) -> float:
    return datetime.strptime(status["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    ).timestamp()


@pytest.fixture
def server() -> Iterator[FakeOAuthServer]:
    with running(FakeOAuthServer(interval=0.1)) as fake:
        yield fake


@pytest.fixture
def cli(tmp_path: Path, server: FakeOAuthServer) -> Cli:
    cli = Cli(tmp_path)
    make_profile(cli, server, "k8s")
    return cli


def test_cached_token_is_answered_as_an_exec_credential(
    cli: Cli, server: FakeOAuthServer
) -> None:
    expires_at = fill_cache(
        cli, server, "k8s", access_token="at-cached", expires_in=1800, refresh_token="rt-1"
    )
    done = cli.run(
        "kube-credential", "--profile", "k8s", KUBERNETES_EXEC_INFO=exec_info(interactive=False)
    )
    assert done.returncode == 0, done.stderr
    status = status_of(credential(done.stdout))
    assert status["token"] == "at-cached"
    assert abs(expiry(status) - expires_at) < 1
    assert "at-cached" not in done.stderr
    assert server.refresh_calls == 0


def test_expired_token_is_refreshed_silently_even_when_not_interactive(
    cli: Cli, server: FakeOAuthServer
) -> None:
    fill_cache(cli, server, "k8s", access_token="at-old", expires_in=-10, refresh_token="rt-1")
    done = cli.run(
        "kube-credential", "--profile", "k8s", KUBERNETES_EXEC_INFO=exec_info(interactive=False)
    )
    assert done.returncode == 0, done.stderr
    status = status_of(credential(done.stdout))
    assert status["token"] in server.access_tokens
    assert server.refresh_calls == 1
    assert expiry(status) > time.time() + server.access_token_lifetime - 120
    assert status["token"] not in done.stderr


@pytest.mark.parametrize(
    "refresh_token", [None, "rt-unknown-to-the-server"], ids=["no-tokens", "refresh-refused"]
)
def test_not_interactive_and_a_sign_in_needed_fails_at_once(
    cli: Cli, server: FakeOAuthServer, refresh_token: str | None
) -> None:
    if refresh_token is not None:
        fill_cache(
            cli, server, "k8s", access_token="at-old", expires_in=-10,
            refresh_token=refresh_token, server_knows_it=False,
        )
    started = time.monotonic()
    done = cli.run(
        "kube-credential", "--profile", "k8s", KUBERNETES_EXEC_INFO=exec_info(interactive=False)
    )
    assert done.returncode == 10
    assert done.stdout == ""
    assert no_traceback(done.stderr), done.stderr
    assert "needs a new sign-in" in done.stderr
    assert not server.code_issued.is_set()  # no device code was even requested
    assert time.monotonic() - started < 20


def test_interactive_sign_in_shows_the_code_on_stderr_and_answers_on_stdout(
    cli: Cli, server: FakeOAuthServer
) -> None:
    proc = cli.popen(
        "kube-credential", "--profile", "k8s", KUBERNETES_EXEC_INFO=exec_info(interactive=True)
    )
    user_code = server.last_user_code()
    server.approve(user_code)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert user_code in err
    status = status_of(credential(out))
    assert status["token"] in server.access_tokens
    assert user_code not in out


def test_answers_in_the_version_kubectl_asked_for(cli: Cli, server: FakeOAuthServer) -> None:
    fill_cache(cli, server, "k8s", access_token="at-cached", expires_in=1800, refresh_token=None)
    beta = "client.authentication.k8s.io/v1beta1"
    done = cli.run(
        "kube-credential", "-p", "k8s", KUBERNETES_EXEC_INFO=exec_info(False, api_version=beta)
    )
    assert done.returncode == 0, done.stderr
    assert status_of(credential(done.stdout, beta))["token"] == "at-cached"


@pytest.mark.parametrize(
    "value",
    [
        "{not json",
        "[]",
        json.dumps({"apiVersion": V1, "kind": "Pod", "spec": {"interactive": False}}),
        json.dumps({"apiVersion": "client.authentication.k8s.io/v1alpha1",
                    "kind": "ExecCredential", "spec": {}}),
        json.dumps({"apiVersion": V1, "kind": "ExecCredential", "spec": []}),
        json.dumps({"apiVersion": V1, "kind": "ExecCredential", "spec": {"interactive": "no"}}),
    ],
    ids=["not-json", "not-an-object", "wrong-kind", "v1alpha1", "spec-not-object",
         "interactive-not-bool"],
)
def test_malformed_exec_info_is_one_sentence_and_exit_2(
    cli: Cli, server: FakeOAuthServer, value: str
) -> None:
    fill_cache(cli, server, "k8s", access_token="at-cached", expires_in=1800, refresh_token=None)
    done = cli.run("kube-credential", "-p", "k8s", KUBERNETES_EXEC_INFO=value)
    assert done.returncode == 2
    assert done.stdout == ""
    assert no_traceback(done.stderr), done.stderr
    assert re.search(r"KUBERNETES_EXEC_INFO|apiVersion", done.stderr)
    assert "at-cached" not in done.stderr


def test_id_token_for_an_oidc_cluster_expires_with_the_shorter_of_the_two(
    cli: Cli, server: FakeOAuthServer
) -> None:
    """``--id-token``: Kubernetes' OpenID Connect authenticator takes the ID token as the bearer;
    the expiry told to client-go is the earlier of the ID token's ``exp`` and the access
    token's."""
    fill_cache(cli, server, "k8s", access_token="at-old", expires_in=-10, refresh_token="rt-1")
    done = cli.run("kube-credential", "--profile", "k8s", "--id-token",
                   KUBERNETES_EXEC_INFO=exec_info(interactive=False))
    assert done.returncode == 0, done.stderr
    status = status_of(credential(done.stdout))
    _header, payload, _signature = status["token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert "jti" not in claims  # the fake server's ID token, not its access token
    assert status["token"] not in server.access_tokens
    assert abs(expiry(status) - claims["exp"]) < 1
    assert status["token"] not in done.stderr


def test_id_token_without_one_cached_says_to_ask_for_openid(
    cli: Cli, server: FakeOAuthServer
) -> None:
    fill_cache(cli, server, "k8s", access_token="at-cached", expires_in=1800, refresh_token="rt")
    done = cli.run("kube-credential", "--profile", "k8s", "--id-token",
                   KUBERNETES_EXEC_INFO=exec_info(interactive=False))
    assert done.returncode == 2
    assert done.stdout == ""
    assert "no ID token" in done.stderr
    assert "openid" in done.stderr
    assert no_traceback(done.stderr)

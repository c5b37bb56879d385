"""``deviceflow user add/update --email`` as a person runs it: the address is checked for
syntax (no DNS lookup) before the password prompt, stored normalized, shown by ``user list``,
and removed with ``--email ""``; a bad address is one plain sentence and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.integration.cli.test_operator_commands import (  # noqa: F401 - fixtures
    PASSWORD,
    Cli,
    assert_clean_failure,
    cli,
    db_path,
    env,
)

from deviceflow.server.embedded import free_port
from deviceflow.server.notifications.webhooks import generate_secret


@pytest.mark.slow  # several commands, each a Python start
def test_user_email_is_added_updated_listed_and_removed(cli: Cli) -> None:  # noqa: F811
    cli.ok("user", "add", "alice", "--email", "Alice@Example.COM", "--password-stdin",
           stdin=PASSWORD + "\n")
    assert cli.rows("SELECT email FROM users WHERE username = 'alice'") == [
        ("Alice@example.com",)]
    [row] = [line for line in cli.ok("user", "list").stdout.splitlines()
             if line.startswith("alice")]
    assert row.endswith("Alice@example.com")

    updated = cli.ok("user", "update", "alice", "--email", "a.liddell@example.org")
    assert "a.liddell@example.org" in updated.stderr
    assert cli.rows("SELECT email FROM users WHERE username = 'alice'") == [
        ("a.liddell@example.org",)]
    cli.ok("user", "update", "alice", "--email", "")
    assert cli.rows("SELECT email FROM users WHERE username = 'alice'") == [(None,)]

    refused = cli("user", "update", "alice", "--email", "Alice <alice@example.com>")
    assert_clean_failure(refused, 2, "not a valid e-mail address")
    refused = cli("user", "add", "bob", "--email", "bob@", "--password-stdin",
                  stdin=PASSWORD + "\n")
    assert_clean_failure(refused, 2, "not a valid e-mail address")
    assert cli.rows("SELECT username FROM users WHERE username = 'bob'") == []
    assert_clean_failure(cli("user", "update", "nobody", "--email", "n@example.com"), 1,
                         "no user named 'nobody'")


def test_serve_refuses_an_exposed_or_malformed_webhook_secret(
    cli: Cli, tmp_path: Path,  # noqa: F811
) -> None:
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_text(generate_secret() + "\n")
    secret_file.chmod(0o644)
    hook = ["--webhook-urls", "http://127.0.0.1:9/hooks", "--webhook-secret-file",
            str(secret_file)]
    result = cli("serve", "--port", str(free_port()), *hook)
    assert_clean_failure(result, 3, f"{secret_file} is readable by other users")
    secret_file.write_text("not-a-secret\n")
    secret_file.chmod(0o600)
    result = cli("serve", "--port", str(free_port()), *hook)
    assert_clean_failure(result, 3, "must start with whsec_")
    assert "not-a-secret" not in result.stderr
    result = cli("serve", "--port", str(free_port()), "--webhook-urls",
                 "http://127.0.0.1:9/hooks")
    assert_clean_failure(result, 2, "DEVICEFLOW_WEBHOOK_SECRET")

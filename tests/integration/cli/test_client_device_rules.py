"""``deviceflow client add/update`` with the per-client device-flow rules (docs/operator.md):
stored as given, shown back, removable, and bad input refused with one sentence and exit 2."""

from __future__ import annotations

import pytest
from tests.integration.cli import test_operator_commands as operator
from tests.integration.cli.test_operator_commands import Cli, assert_clean_failure

# The operator commands' fixtures: a clean environment and a SQLite file of the test's own.
env, db_path, cli = operator.env, operator.db_path, operator.cli

RULES = "SELECT proximity_policy, device_networks, device_countries, device_scopes, " \
    "device_access_token_lifetime, device_refresh_token_lifetime FROM clients"


def test_rules_are_stored_shown_and_removed(cli: Cli) -> None:
    added = cli.ok("client", "add", "tv", "--name", "TV", "--grant", "device_code",
                   "--scope", "openid", "--scope", "offline_access",
                   "--proximity-policy", "enforce", "--device-network", "192.0.2.7/24",
                   "--device-network", "2001:db8::/32", "--device-country", "de",
                   "--device-scope", "openid", "--device-access-token-lifetime", "300",
                   "--device-refresh-token-lifetime", "86400")
    assert "Device-flow rules: proximity enforce; device networks 192.0.2.0/24 " \
        "2001:db8::/32; device countries DE; device scopes openid; device access tokens " \
        "300 s; device logins 86400 s." in added.stderr
    assert cli.rows(RULES) == [("enforce", "192.0.2.0/24 2001:db8::/32", "DE", "openid",
                                300, 86400)]

    # Only what is given changes; `any`, `default` and 0 remove a rule.
    cli.ok("client", "update", "tv", "--device-country", "any", "--proximity-policy", "default")
    assert cli.rows(RULES) == [(None, "192.0.2.0/24 2001:db8::/32", None, "openid", 300, 86400)]
    done = cli.ok("client", "update", "tv", "--device-network", "any", "--device-scope", "any",
                  "--device-access-token-lifetime", "0", "--device-refresh-token-lifetime", "0")
    assert "Device-flow rules" not in done.stderr
    assert cli.rows(RULES) == [(None, None, None, None, None, None)]


@pytest.mark.parametrize(("args", "words"), [
    (["--device-network", "10.0.0.300/8"], "is not a network in CIDR form"),
    (["--device-country", "Germany"], "is not a two-letter country code"),
    (["--device-access-token-lifetime", "5"], "is too short: give at least 60 seconds"),
    (["--device-refresh-token-lifetime", "-1"], "is too short"),
    (["--proximity-policy", "strict"], "'strict' is not one of"),
], ids=["cidr", "country", "access-lifetime", "refresh-lifetime", "policy"])
def test_bad_rules_are_one_sentence_and_exit_2(cli: Cli, args: list[str], words: str) -> None:
    cli.ok("client", "add", "tv", "--name", "TV", "--grant", "device_code")
    assert_clean_failure(cli("client", "update", "tv", *args), 2, words)
    assert_clean_failure(cli("client", "add", "tv2", "--name", "TV", *args), 2, words)


def test_a_device_scope_the_client_may_not_ask_is_refused(cli: Cli) -> None:
    refused = cli("client", "add", "tv", "--name", "TV", "--scope", "openid",
                  "--device-scope", "profile")
    assert_clean_failure(refused, 1, "--device-scope profile is not among the client's scopes")

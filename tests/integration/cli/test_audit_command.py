"""``deviceflow audit`` as an operator runs it, on a SQLite file: the table, every filter, --json
(JSON Lines), usernames resolved, an operator's sign-out recorded by the real command, and
refusals of bad input."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from tests.conftest import run_async
from tests.integration.cli.test_operator_commands import Cli

from deviceflow.protocol.audit import AuditActor, AuditEvent, AuditEventType
from deviceflow.protocol.models import BrowserSession
from deviceflow.server.bootstrap import open_store

E = AuditEventType
PASSWORD = "correct horse battery staple"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVICEFLOW_")}
    env.update(HOME=str(tmp_path), PYTHONUNBUFFERED="1")
    return Cli(env, tmp_path / "deviceflow.sqlite3")


def seed(cli: Cli) -> tuple[str, float]:
    """alice, and five records over the last two hours (one naming a removed user)."""
    cli.ok("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    [(alice,)] = cli.rows("SELECT user_id FROM users WHERE username = 'alice'")
    now = time.time()
    records = [
        AuditEvent(E.SIGN_IN_SUCCEEDED, now - 7200, user_id=str(alice), ip_address="192.0.2.1",
                   user_agent="Firefox", request_id="r1"),
        AuditEvent(E.TOKENS_ISSUED, now - 1800, user_id=str(alice), client_id="tv",
                   ip_address="192.0.2.44", family_id="fam0123456789", request_id="r2",
                   grant_type="urn:ietf:params:oauth:grant-type:device_code"),
        AuditEvent(E.APPROVED, now - 600, user_id="sub-removed", client_id="cli",
                   family_id="fam-other"),
        AuditEvent(E.KEY_ROTATED, now - 300, actor=AuditActor.OPERATOR, detail="RS256"),
        AuditEvent(E.REVOKED, now - 60, user_id=str(alice), client_id="tv",
                   actor=AuditActor.CLIENT, family_id="fam0123456789"),
    ]

    async def append() -> None:
        store = await open_store(cli.db, migrate=False)
        try:
            async with store.unit_of_work() as uow:
                for record in records:
                    await uow.audit_log.append(record)
                await uow.commit()
        finally:
            await store.close()

    run_async(append)
    return str(alice), now


def json_lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.mark.slow  # thirteen commands, each a Python start
def test_audit_table_filters_and_json_lines(cli: Cli) -> None:
    alice, now = seed(cli)
    table = cli.ok("audit").stdout.splitlines()
    assert table[0].split()[:4] == ["TIME", "(UTC)", "EVENT", "USER"]
    assert [row.split()[1] for row in table[1:]] == [
        "revoked", "key_rotated", "approved", "tokens_issued", "sign_in_succeeded"]
    assert "alice" in table[1]
    assert "by client" in table[1]
    assert "sub-removed" in table[3]  # a removed user's id, as stored
    assert "fam01234 " in table[4]

    everything = json_lines(cli.ok("audit", "--json").stdout)
    assert [r["event"] for r in everything] == [
        "revoked", "key_rotated", "approved", "tokens_issued", "sign_in_succeeded"]
    issued = everything[3]
    assert issued == {
        "time": issued["time"], "occurred_at": pytest.approx(now - 1800),
        "event": "tokens_issued", "user_id": alice, "username": "alice", "client_id": "tv",
        "ip_address": "192.0.2.44", "user_agent": None, "family_id": "fam0123456789",
        "request_id": "r2", "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "actor": None, "detail": None,
    }
    assert str(issued["time"]).endswith("Z")

    def events(*args: str) -> list[object]:
        return [r["event"] for r in json_lines(cli.ok("audit", "--json", *args).stdout)]

    assert events("--user", "alice") == ["revoked", "tokens_issued", "sign_in_succeeded"]
    assert events("--user", "sub-removed") == ["approved"]
    assert events("--client", "tv") == ["revoked", "tokens_issued"]
    assert events("--since", "1h") == ["revoked", "key_rotated", "approved", "tokens_issued"]
    assert events("--since", "15m", "--client", "cli") == ["approved"]
    assert events("--event", "approved", "--event", "key_rotated") == [
        "key_rotated", "approved"]
    assert events("--limit", "2") == ["revoked", "key_rotated"]
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 900))
    assert events("--since", since) == ["revoked", "key_rotated", "approved"]

    nothing = cli.ok("audit", "--user", "nobody")
    assert nothing.stdout == ""
    assert "No audit records match." in nothing.stderr
    assert cli.ok("audit", "--json", "--user", "nobody").stdout == ""


def test_an_operator_signout_is_recorded_as_revoked_by_the_operator(cli: Cli) -> None:
    alice, _ = seed(cli)

    async def sign_in() -> None:
        store = await open_store(cli.db, migrate=False)
        try:
            async with store.unit_of_work() as uow:
                await uow.browser_sessions.add(BrowserSession(
                    "hash-0", alice, time.time(), time.time() + 3600))
                await uow.commit()
        finally:
            await store.close()

    run_async(sign_in)
    cli.ok("user", "signout", "alice")
    [revoked] = json_lines(cli.ok("audit", "--json", "--event", "revoked", "--since", "30s").stdout)
    assert (revoked["actor"], revoked["user_id"], revoked["detail"]) == (
        "operator", alice, "1 browser sign-ins")


@pytest.mark.parametrize(("args", "words"), [
    (["--since", "yesterday"], "neither a duration"),
    (["--event", "bogus"], "bogus"),
    (["--limit", "0"], "0"),
], ids=["since", "event", "limit"])
def test_bad_options_are_usage_errors(cli: Cli, args: list[str], words: str) -> None:
    result = cli("audit", *args)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_audit_command_on_a_fresh_database_says_there_is_nothing(cli: Cli) -> None:
    result = cli.ok("audit")
    assert result.stdout == ""
    assert "No audit records match." in result.stderr

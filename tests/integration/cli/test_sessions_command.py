"""``deviceflow sessions list|revoke`` and the devices ``user passwd`` / ``user remove`` sign out,
as an operator runs them: subprocesses on a SQLite file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from tests.conftest import run_async
from tests.integration.cli.test_operator_commands import (
    NEW_PASSWORD,
    PASSWORD,
    Cli,
    assert_clean_failure,
)

from deviceflow.protocol.models import (
    DEVICE_CODE_GRANT,
    GrantRecord,
    RefreshStatus,
    RefreshToken,
    RequestOrigin,
)
from deviceflow.server.bootstrap import open_store

NOW = time.time()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """As in test_operator_commands: no DEVICEFLOW_* from the developer's shell, user
    directories inside the test's folder, a SQLite file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVICEFLOW_")}
    home = tmp_path / "home"
    home.mkdir()
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"),
               XDG_CONFIG_HOME=str(home / "config"), PYTHONUNBUFFERED="1")
    return Cli(env, tmp_path / "deviceflow.sqlite3")


def seed(cli: Cli) -> dict[str, str]:
    """alice and bob; alice signed in on a TV (origin recorded) and a CLI, bob on the TV; one
    more of alice's families already revoked. Returns user ids by name."""
    for name in ("alice", "bob"):
        cli.ok("user", "add", name, "--password-stdin", stdin=PASSWORD + "\n")
    ids = {str(name): str(uid) for name, uid in cli.rows("SELECT username, user_id FROM users")}
    families = [("fam-a-tv", "alice", "tv", True, "active"), ("fam-a-cli", "alice", "cli", False,
                "active"), ("fam-b-tv", "bob", "tv", True, "active"),
                ("fam-a-old", "alice", "tv", True, "revoked")]

    async def write() -> None:
        store = await open_store(cli.db, migrate=False)
        try:
            async with store.unit_of_work() as uow:
                for n, (family, user, client, recorded, status) in enumerate(families):
                    user_id = ids[user]
                    await uow.refresh_tokens.add(RefreshToken(
                        token_hash=f"hash-{n}", family_id=family, client_id=client,
                        user_id=user_id, scope=("openid", "offline_access"),
                        issued_at=NOW - 60, expires_at=NOW + 3600, auth_time=NOW - 120,
                        family_expires_at=NOW + 86400, grant_type=DEVICE_CODE_GRANT,
                        status=RefreshStatus(status),
                    ))
                    if recorded:
                        await uow.grants.add(GrantRecord(
                            family_id=family, user_id=user_id, client_id=client,
                            approved_at=NOW - 120,
                            origin=RequestOrigin(f"192.0.2.{n + 1}", "SmartTV/1.0"),
                            expires_at=NOW + 86400))
                await uow.commit()
        finally:
            await store.close()

    run_async(write)
    return ids


def statuses(cli: Cli) -> dict[str, str]:
    return {str(f): str(s) for f, s in cli.rows(
        "SELECT family_id, status FROM refresh_tokens")}


def test_sessions_list_shows_each_signed_in_device(cli: Cli) -> None:
    ids = seed(cli)
    table = cli.ok("sessions", "list").stdout.splitlines()
    assert table[0].split()[:4] == ["FAMILY", "USER", "CLIENT", "APPROVED"]
    rows = {line.split()[0]: line for line in table[1:]}
    assert set(rows) == {"fam-a-tv", "fam-a-cli", "fam-b-tv"}  # not the revoked one
    assert rows["fam-a-tv"].split()[1:3] == ["alice", "tv"]
    assert rows["fam-a-tv"].endswith("192.0.2.1")
    assert "unknown" in rows["fam-a-cli"]  # begun before origins were recorded

    mine = json.loads(cli.ok("sessions", "list", "--user", "alice", "--json").stdout)
    assert {d["family_id"] for d in mine} == {"fam-a-tv", "fam-a-cli"}
    tv = next(d for d in mine if d["family_id"] == "fam-a-tv")
    assert tv | {"approved_at": None, "last_used_at": None} == {
        "family_id": "fam-a-tv", "user_id": ids["alice"], "username": "alice",
        "client_id": "tv", "scope": "openid offline_access", "approved_at": None,
        "last_used_at": None, "ip_address": "192.0.2.1", "user_agent": "SmartTV/1.0",
    }
    assert tv["approved_at"].endswith("+00:00")
    both = json.loads(cli.ok("sessions", "list", "--user", "alice", "--client", "tv",
                             "--json").stdout)
    assert [d["family_id"] for d in both] == ["fam-a-tv"]
    assert_clean_failure(cli("sessions", "list", "--user", "nobody"), 1, "no user named")


def test_sessions_revoke_takes_exactly_one_selector_and_says_how_many(cli: Cli) -> None:
    seed(cli)
    for args in ([], ["--user", "alice", "--client", "tv"]):
        refused = cli("sessions", "revoke", *args)
        assert refused.returncode == 2
        assert "exactly one of" in refused.stderr
    assert statuses(cli)["fam-a-tv"] == "active"

    one = cli.ok("sessions", "revoke", "--family", "fam-a-tv")
    assert "Signed out 1 device" in one.stderr
    assert one.stdout == ""
    assert "Signed out 0 devices" in cli.ok("sessions", "revoke", "--family", "fam-a-tv").stderr
    assert "Signed out 1 device" in cli.ok("sessions", "revoke", "--client", "tv").stderr
    assert statuses(cli) == {"fam-a-tv": "revoked", "fam-b-tv": "revoked",
                             "fam-a-cli": "active", "fam-a-old": "revoked"}
    assert "Signed out 1 device" in cli.ok("sessions", "revoke", "--user", "alice").stderr
    assert_clean_failure(cli("sessions", "revoke", "--user", "nobody"), 1, "no user named")
    assert "No signed-in devices" in cli.ok("sessions", "list").stderr


def test_passwd_and_remove_sign_the_users_devices_out(cli: Cli) -> None:
    seed(cli)
    changed = cli.ok("user", "passwd", "alice", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert "0 browser sessions ended, 2 devices signed out" in changed.stderr
    removed = cli.ok("user", "remove", "bob")
    assert "1 device signed out" in removed.stderr
    assert set(statuses(cli).values()) == {"revoked"}

"""``deviceflow db upgrade`` and ``deviceflow db current`` on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.support.databases import sqlite_url

from deviceflow.cli.commands.db import command
from deviceflow.storage.sql.engine import head_revision


def test_upgrade_then_current(empty_db_url: str) -> None:
    runner = CliRunner()
    before = runner.invoke(command, ["current", "--db", empty_db_url])
    assert (before.exit_code, before.stdout) == (0, "none\n")

    first = runner.invoke(command, ["upgrade", "--db", empty_db_url])
    assert first.exit_code == 0, first.output
    assert f"from empty to {head_revision()} (head)" in first.stderr
    assert first.stdout == ""

    again = runner.invoke(command, ["upgrade", "--db", empty_db_url])
    assert again.exit_code == 0, again.output
    assert "already at revision" in again.stderr

    after = runner.invoke(command, ["current", "--db", empty_db_url, "--check"])
    assert (after.exit_code, after.stdout) == (0, f"{head_revision()} (head)\n")


def test_current_check_fails_before_upgrade(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "db.sqlite3")
    result = CliRunner().invoke(command, ["current", "--db", url, "--check"])
    assert result.exit_code == 1
    assert "deviceflow db upgrade" in result.stderr


def test_the_database_comes_from_the_environment(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "env.sqlite3")
    result = CliRunner().invoke(command, ["upgrade"], env={"DEVICEFLOW_DB": url})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.sqlite3").exists()


def test_a_bad_url_is_one_sentence_without_the_password() -> None:
    result = CliRunner().invoke(command, ["upgrade", "--db", "mysql://admin:hunter2@db/x"])
    assert result.exit_code == 1
    assert "unsupported database" in result.stderr
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.timeout(120)
def test_through_the_real_entry_point(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "db.sqlite3")
    env = {**os.environ, "DEVICEFLOW_DB": url}
    for args in (["upgrade"], ["current"]):
        done = subprocess.run(
            [sys.executable, "-m", "deviceflow", "db", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert done.stdout == f"{head_revision()} (head)\n"

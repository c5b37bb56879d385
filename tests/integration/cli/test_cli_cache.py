"""The token cache on disk: permissions under umask 000, corruption, concurrent refresh, and a
kill in the middle of a write."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.cli.clikit import Cli
from tests.integration.cli.fake_oauth import FakeOAuthServer, running


@pytest.fixture
def server() -> Iterator[FakeOAuthServer]:
    with running(FakeOAuthServer(interval=0.1)) as fake:
        yield fake


def login(cli: Cli, server: FakeOAuthServer, profile: str = "p") -> str:
    """create-profile + a device login approved by the fake server; returns the token."""
    created = cli.run(
        "create-profile", "--name", profile, "--issuer", server.issuer, "--client-id", "cli"
    )
    assert created.returncode == 0, created.stderr
    proc = cli.popen("get-token", "--profile", profile)
    server.approve(server.last_user_code())
    out, err = proc.communicate(timeout=30)
    server.code_issued.clear()
    assert proc.returncode == 0, err
    return out.strip()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private_even_with_umask_000(tmp_path: Path, server: FakeOAuthServer) -> None:
    cli = Cli(tmp_path)
    old = os.umask(0)
    try:
        login(cli, server)
    finally:
        os.umask(old)
    # The subprocess inherited umask 000; everything it created is still private.
    [token_file] = cli.token_files()
    assert mode(token_file) == 0o600
    assert mode(token_file.parent) == 0o700
    assert mode(cli.data_dir) == 0o700
    assert mode(cli.data_dir / "locks") == 0o700
    assert mode(cli.config_dir / "profiles.toml") == 0o600
    assert mode(cli.config_dir) == 0o700
    assert not [p for p in token_file.parent.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_cache_is_named_left_untouched_and_harms_no_other_profile(
    tmp_path: Path, server: FakeOAuthServer
) -> None:
    cli = Cli(tmp_path)
    login(cli, server, "good")
    good_token = cli.run("get-token", "--profile", "good").stdout
    login(cli, server, "bad")
    bad_file = next(p for p in cli.token_files() if p.name.startswith("bad."))
    bad_file.write_bytes(b'{"version": 1, "tokens": [trunc')
    before = bad_file.read_bytes()

    result = cli.run("get-token", "--profile", "bad")
    assert result.returncode == 8
    assert str(bad_file) in result.stderr
    assert "left untouched" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert bad_file.read_bytes() == before

    other = cli.run("get-token", "--profile", "good")
    assert other.returncode == 0
    assert other.stdout == good_token

    # --force signs in afresh and replaces the unusable file.
    proc = cli.popen("get-token", "--profile", "bad", "--force")
    server.approve(server.last_user_code())
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(bad_file.read_text())["profile"] == "bad"


def test_unreadable_cache_file(tmp_path: Path, server: FakeOAuthServer) -> None:
    if os.geteuid() == 0:
        # root reads anything: make the path a directory instead, which nobody can read as a file
        cli = Cli(tmp_path)
        login(cli, server)
        [token_file] = cli.token_files()
        token_file.unlink()
        token_file.mkdir()
    else:
        cli = Cli(tmp_path)
        login(cli, server)
        [token_file] = cli.token_files()
        token_file.chmod(0)
    result = cli.run("get-token", "--profile", "p")
    assert result.returncode == 8
    assert str(token_file) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_twenty_processes_make_one_refresh_call(tmp_path: Path, server: FakeOAuthServer) -> None:
    cli = Cli(tmp_path)
    login(cli, server)
    [token_file] = cli.token_files()
    record = json.loads(token_file.read_text())
    for entry in record["tokens"]:
        entry["expires_at"] = time.time() - 10  # expired: every process must renew
    token_file.write_text(json.dumps(record))
    server.refresh_delay = 0.5  # keep the first refresh in flight while the others arrive
    procs = [cli.popen("get-token", "--profile", "p") for _ in range(20)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 20, [err for _out, err in results]
    assert server.refresh_calls == 1
    tokens = {out.strip() for out, _err in results}
    assert len(tokens) == 1  # everyone got the one refreshed token
    assert tokens != {record["tokens"][0]["access_token"]}


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from deviceflow.client.cache import atomic_write
    target = Path(sys.argv[1])
    big = [b"A" * 2_000_000, b"B" * 2_000_000]
    i = 0
    print("ready", flush=True)
    while True:
        atomic_write(target, big[i % 2])
        i += 1
    """
)


@pytest.mark.slow
def test_a_kill_at_any_moment_leaves_old_or_new_never_half(tmp_path: Path) -> None:
    target = tmp_path / "data" / "tokens" / "p.0123456789abcdef.json"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"A" * 2_000_000)
    rng = random.Random(8628)
    for _ in range(15):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        content = target.read_bytes()
        assert content in (b"A" * 2_000_000, b"B" * 2_000_000)
    # Leftover temp files are private and removed by the next write under the lock.
    leftovers = list(target.parent.glob(".*.tmp"))
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in leftovers)
    from deviceflow.client.cache import FileStore

    FileStore(target.parent).write("p.0123456789abcdef", "{}")
    assert not list(target.parent.glob(".*.tmp"))

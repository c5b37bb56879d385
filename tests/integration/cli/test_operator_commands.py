"""The operator commands as a person runs them: ``deviceflow user …``, ``deviceflow client …`` on a
SQLite file, and ``deviceflow serve`` as a real process (discovery, keys and secrets kept across
restarts, the HTTPS issuer rule, several workers)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.conftest import run_async

from deviceflow.protocol.codes import hash_client_secret
from deviceflow.protocol.models import DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT, BrowserSession
from deviceflow.server.bootstrap import open_store
from deviceflow.server.embedded import free_port
from deviceflow.storage.interface import TotpFactor

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "tr0ub4dor&3 but longer"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of every command: no DEVICEFLOW_* from the developer's shell, and user
    directories inside the test's own folder."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DEVICEFLOW_")}
    home = tmp_path / "home"
    home.mkdir()
    clean.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        PYTHONUNBUFFERED="1",
    )
    return clean


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "deviceflow.sqlite3"


@dataclass
class Cli:
    env: dict[str, str]
    db_path: Path

    @property
    def db(self) -> str:
        return f"sqlite:///{self.db_path}"

    def __call__(
        self, *args: str, stdin: str | None = None, db: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m deviceflow ARGS --db URL``; stdin is never a terminal."""
        command = [sys.executable, "-m", "deviceflow", *args, *(["--db", self.db] if db else [])]
        return subprocess.run(
            command,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return result

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        with contextlib.closing(sqlite3.connect(self.db_path)) as conn:
            return conn.execute(sql).fetchall()

    def stored_bytes(self) -> bytes:
        """Everything the database keeps on disk (main file, WAL, shared memory)."""
        return b"".join(p.read_bytes() for p in self.db_path.parent.glob(self.db_path.name + "*"))


@pytest.fixture
def cli(env: dict[str, str], db_path: Path) -> Cli:
    return Cli(env, db_path)


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    """A refusal a person can read: the expected exit code, one ``Error:`` line that says why,
    and no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert words in errors[0], errors[0]
    assert result.stdout == ""


# --- deviceflow user ------------------------------------------------------------------------------


@pytest.mark.slow  # eleven commands, each a Python start and most an argon2id hash
def test_user_add_list_passwd_remove(cli: Cli) -> None:
    added = cli.ok(
        "user", "add", "alice", "--name", "Alice Liddell", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert "alice" in added.stderr
    assert added.stdout == ""

    listing = cli.ok("user", "list")
    [row] = [line for line in listing.stdout.splitlines() if line.startswith("alice")]
    assert "Alice Liddell" in row

    [(stored,)] = cli.rows("SELECT password_hash FROM users WHERE username = 'alice'")
    assert isinstance(stored, str)
    assert stored.startswith("$argon2id$")
    assert PASSWORD.encode() not in cli.stored_bytes()

    cli.ok("user", "passwd", "alice", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    [(changed,)] = cli.rows("SELECT password_hash FROM users WHERE username = 'alice'")
    assert isinstance(changed, str)
    assert changed.startswith("$argon2id$")
    assert changed != stored
    assert NEW_PASSWORD.encode() not in cli.stored_bytes()

    assert_clean_failure(
        cli("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n"), 1, "already exists"
    )

    cli.ok("user", "remove", "alice")
    assert "alice" not in cli.ok("user", "list").stdout
    assert_clean_failure(cli("user", "remove", "alice"), 1, "no user named 'alice'")
    assert_clean_failure(
        cli("user", "passwd", "alice", "--password-stdin", stdin=NEW_PASSWORD + "\n"),
        1,
        "no user named 'alice'",
    )


def test_user_signout_ends_every_browser_session_of_that_user(cli: Cli) -> None:
    cli.ok("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    cli.ok("user", "add", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    [(alice,)] = cli.rows("SELECT user_id FROM users WHERE username = 'alice'")
    [(bob,)] = cli.rows("SELECT user_id FROM users WHERE username = 'bob'")

    async def sign_ins() -> None:
        store = await open_store(cli.db, migrate=False)
        try:
            async with store.unit_of_work() as uow:
                for n, user_id in enumerate([alice, alice, bob]):
                    await uow.browser_sessions.add(BrowserSession(
                        f"hash-{n}", str(user_id), time.time(), time.time() + 3600))
                await uow.commit()
        finally:
            await store.close()

    run_async(sign_ins)
    ended = cli.ok("user", "signout", "alice")
    assert "2 browser sessions ended" in ended.stderr
    assert ended.stdout == ""
    assert cli.rows("SELECT session_hash, status FROM browser_sessions ORDER BY session_hash") == [
        ("hash-0", "revoked"), ("hash-1", "revoked"), ("hash-2", "active"),
    ]
    assert "0 browser sessions ended" in cli.ok("user", "signout", "alice").stderr
    assert_clean_failure(cli("user", "signout", "nobody"), 1, "no user named 'nobody'")


def test_user_mfa_status_and_reset_audited(cli: Cli) -> None:
    cli.ok("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    [(alice,)] = cli.rows("SELECT user_id FROM users WHERE username = 'alice'")
    assert cli.ok("user", "mfa", "alice", "--status").stdout == "alice: no second factor\n"

    async def enrolled() -> None:
        store = await open_store(cli.db, migrate=False)
        try:
            async with store.unit_of_work() as uow:
                assert await uow.factors.set_pending_totp(TotpFactor(
                    str(alice), b"aesgcm1:sealed", active=False, created_at=time.time()))
                assert await uow.factors.activate_totp(str(alice), 1, ["r1", "r2", "r3"])
                await uow.commit()
        finally:
            await store.close()

    run_async(enrolled)
    status = cli.ok("user", "mfa", "alice", "--status")
    assert status.stdout == "alice: authenticator app on, 3 recovery codes left\n"
    reset = cli.ok("user", "mfa", "alice", "--reset")
    assert "second factor removed" in reset.stderr
    assert cli.rows("SELECT COUNT(*) FROM totp_factors") == [(0,)]
    assert cli.rows("SELECT COUNT(*) FROM recovery_codes") == [(0,)]
    assert cli.rows("SELECT actor, detail FROM audit_log WHERE event = 'factor_reset'") == [
        ("operator", "totp")]
    assert "had no second factor" in cli.ok("user", "mfa", "alice", "--reset").stderr
    assert_clean_failure(cli("user", "mfa", "nobody", "--status"), 1, "no user named 'nobody'")
    assert_clean_failure(cli("user", "mfa", "alice"), 2, "exactly one of --status and --reset")


@pytest.mark.parametrize("command", ["add", "passwd"])
def test_password_without_a_terminal_or_stdin_is_a_usage_error(cli: Cli, command: str) -> None:
    result = cli("user", command, "bob")
    assert_clean_failure(result, 2, "--password-stdin")
    assert "Usage:" in result.stderr


def test_short_password_is_a_usage_error(cli: Cli) -> None:
    assert_clean_failure(
        cli("user", "add", "bob", "--password-stdin", stdin="short\n"), 2, "at least 8 characters"
    )
    assert not cli.db_path.exists(), "refused before touching the database"


# --- deviceflow client ----------------------------------------------------------------------------


@pytest.mark.slow  # seven commands, each a Python start
def test_client_add_list_remove(cli: Cli) -> None:
    public = cli.ok(
        "client",
        "add",
        "tv",
        "--name",
        "Living room TV",
        "--public",
        "--grant",
        "device_code",
        "--expires-in",
        "120",
    )
    assert public.stdout == ""  # a public client has no secret to print

    confidential = cli.ok(
        "client",
        "add",
        "svc",
        "--name",
        "Build service",
        "--confidential",
        "--grant",
        "device_code",
        "--grant",
        "refresh_token",
        "--scope",
        "openid",
        "--scope",
        "offline_access",
    )
    # The secret is the only thing on stdout, printed once.
    [secret] = confidential.stdout.split()
    assert confidential.stdout == secret + "\n"
    assert len(secret) >= 43
    assert secret not in confidential.stderr

    rows = {
        r[0]: r[1:]
        for r in cli.rows(
            "SELECT client_id, client_type, grant_types, scopes, secret_hash, device_code_lifetime "
            "FROM clients"
        )
    }
    assert rows["tv"] == ("public", DEVICE_CODE_GRANT, "openid profile", None, 120)
    assert rows["svc"][:3] == (
        "confidential",
        f"{REFRESH_TOKEN_GRANT} {DEVICE_CODE_GRANT}",
        "offline_access openid",
    )
    assert rows["svc"][3] == hash_client_secret(secret)  # stored hashed ...
    assert secret.encode() not in cli.stored_bytes()  # ... and nowhere in plaintext

    listing = cli.ok("client", "list").stdout
    assert secret not in listing
    lines = {line.split()[0]: line for line in listing.splitlines()[1:]}
    assert set(lines) == {"svc", "tv"}
    assert "confidential" in lines["svc"]
    assert "device_code,refresh_token" in lines["svc"]
    assert "Living room TV" in lines["tv"]

    cli.ok("client", "remove", "tv")
    assert "tv " not in cli.ok("client", "list").stdout
    assert_clean_failure(cli("client", "remove", "tv"), 1, "no client 'tv'")
    assert_clean_failure(
        cli("client", "add", "svc", "--name", "Again", "--grant", "device_code"),
        1,
        "already exists",
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--name", "X", "--grant", "password"], "'password' is not one of"),
        (["--name", "X", "--expires-in", "5"], "--expires-in"),
        (["--grant", "device_code"], "--name"),
    ],
    ids=["unknown-grant", "expires-in-too-short", "no-name"],
)
def test_client_add_refuses_bad_options(cli: Cli, args: list[str], words: str) -> None:
    assert_clean_failure(cli("client", "add", "x", *args), 2, words)


def test_client_add_for_an_existing_id_points_at_update_which_works(cli: Cli) -> None:
    """Issue 7: the advice printed for a client without grants ("add it again with --grant")
    failed with "already exists"; now both the note and the refusal name ``client update``, and
    following the advice works."""
    note = cli.ok("client", "add", "tv", "--name", "TV").stderr
    assert "deviceflow client update tv --grant device_code" in note
    refused = cli("client", "add", "tv", "--name", "TV", "--grant", "device_code")
    assert_clean_failure(refused, 1, "already exists")
    assert "deviceflow client update tv" in refused.stderr

    done = cli.ok("client", "update", "tv", "--grant", "device_code", "--grant", "refresh_token")
    assert "grants device_code refresh_token" in done.stderr
    rows = cli.rows("SELECT client_id, name, grant_types, scopes, device_code_lifetime "
                    "FROM clients")
    assert rows == [("tv", "TV", f"{REFRESH_TOKEN_GRANT} {DEVICE_CODE_GRANT}",
                     "openid profile", None)]

    cli.ok("client", "update", "tv", "--name", "Kitchen TV", "--scope", "openid",
           "--scope", "offline_access", "--expires-in", "300")
    assert cli.rows("SELECT name, grant_types, scopes, device_code_lifetime FROM clients") == [
        ("Kitchen TV", f"{REFRESH_TOKEN_GRANT} {DEVICE_CODE_GRANT}", "offline_access openid",
         300)]
    cli.ok("client", "update", "tv", "--default-expires-in", "--no-grants")
    assert cli.rows("SELECT grant_types, device_code_lifetime FROM clients") == [("", None)]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["ghost", "--name", "X"], 1, "no client 'ghost'"),
        (["tv"], 2, "nothing to change"),
        (["tv", "--grant", "device_code", "--no-grants"], 2, "contradict"),
        (["tv", "--expires-in", "60", "--default-expires-in"], 2, "contradict"),
        (["tv", "--name", "Evil\u202etxt.exe"], 1, "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ],
    ids=["unknown", "nothing", "grants-contradict", "expiry-contradicts", "bidi-name"],
)
def test_client_update_refuses_in_one_sentence(
    cli: Cli, args: list[str], code: int, words: str
) -> None:
    cli.ok("client", "add", "tv", "--name", "TV", "--grant", "device_code")
    assert_clean_failure(cli("client", "update", *args), code, words)
    assert cli.rows("SELECT name FROM clients") == [("TV",)]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("Evil\u202egnp.exe", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("Bank\u2066 of \u2069Trust", "U+2066 LEFT-TO-RIGHT ISOLATE"),
        ("Zero\u200bWidth", "U+200B ZERO WIDTH SPACE"),
        ("Two\nLines", "U+000A"),
        ("Escape\x1b[31m", "U+001B"),
        ("   ", "empty"),
        ("x" * 101, "longer than 100"),
    ],
    ids=["rlo", "isolate", "zero-width", "newline", "ansi-escape", "blank", "too-long"],
)
def test_client_add_refuses_names_that_disguise_themselves(
    cli: Cli, name: str, words: str
) -> None:
    assert_clean_failure(cli("client", "add", "x", "--name", name), 1, words)
    assert cli.rows("SELECT name FROM clients") == []


# --- deviceflow serve -----------------------------------------------------------------------------


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    base: str
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def serve(cli: Cli, port: int, *extra: str, timeout: float = 60) -> Iterator[Served]:
    """``deviceflow serve`` as its own process (and process group), until the block ends."""
    log = cli.db_path.parent / f"serve-{port}-{time.monotonic_ns()}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deviceflow",
                "serve",
                "--port",
                str(port),
                "--db",
                cli.db,
                "--interval",
                "1",
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=cli.env,
            start_new_session=True,
        )
    served = Served(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"serve exited early:\n{served.logs()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(served.base + "/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"serve did not start:\n{served.logs()}"
            time.sleep(0.1)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the group this test started
                process.wait(5)
    # uvicorn shuts down gracefully on SIGTERM, then ends by that signal as supervisors expect.
    assert process.returncode in (0, -signal.SIGTERM), served.logs()
    assert "Shutting down" in served.logs()
    assert "Traceback" not in served.logs()


def jwks_kids(base: str) -> list[str]:
    return [k["kid"] for k in httpx.get(base + "/jwks.json", timeout=10).json()["keys"]]


@pytest.mark.slow  # starts the server twice
def test_serve_answers_discovery_and_a_restart_reuses_its_key_and_secrets(cli: Cli) -> None:
    cli.ok("client", "add", "tv", "--name", "TV", "--grant", "device_code")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"

    with serve(cli, port) as first:
        for path in (
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ):
            response = httpx.get(first.base + path, timeout=10)
            assert response.status_code == 200
            assert response.json()["issuer"] == issuer
            assert response.json()["token_endpoint"] == issuer + "/token"
        kids = jwks_kids(first.base)
        codes = httpx.post(
            first.base + "/device_authorization", data={"client_id": "tv"}, timeout=10
        ).json()
    secrets_before = dict(cli.rows("SELECT name, value FROM server_secrets"))
    assert {"hmac_secret", "signing_key:RS256"} <= set(secrets_before)

    with serve(cli, port) as second:
        assert jwks_kids(second.base) == kids, "the signing key was regenerated"
        # The device code from before the restart still hashes to its record: same HMAC secret.
        answer = httpx.post(
            second.base + "/token",
            timeout=10,
            data={
                "grant_type": DEVICE_CODE_GRANT,
                "device_code": codes["device_code"],
                "client_id": "tv",
            },
        ).json()
        assert answer["error"] == "authorization_pending"
    assert dict(cli.rows("SELECT name, value FROM server_secrets")) == secrets_before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--issuer", "http://auth.example.com"], "HTTPS"),
        (["--issuer", "http://10.1.2.3:8000"], "HTTPS"),
        (["--host", "0.0.0.0"], "--issuer"),
    ],
    ids=["http-public-name", "http-private-address", "public-listener-without-issuer"],
)
def test_serve_refuses_an_issuer_that_is_not_https_off_loopback(
    cli: Cli, args: list[str], words: str
) -> None:
    result = cli("serve", "--port", str(free_port()), *args)
    assert_clean_failure(result, 2, words)
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "Value error" not in error  # one plain sentence, not the validator's wrapping
    assert not cli.db_path.exists(), "refused before touching the database"


def test_serve_on_a_busy_port_says_so_before_anything_else(cli: Cli) -> None:
    """Issue 12: uvicorn used to print "serving", start the app, and only then log
    "[Errno 98] … address already in use" among INFO lines."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--port", str(port))
    assert_clean_failure(result, 3, f"port {port} on 127.0.0.1 is already in use")
    assert "--port" in result.stderr
    assert "serving" not in result.stderr
    assert "Errno" not in result.stderr
    assert not cli.db_path.exists(), "refused before touching the database"


@pytest.mark.slow  # starts a server with two worker processes
def test_serve_with_two_workers(cli: Cli) -> None:
    cli.ok("client", "add", "tv", "--name", "TV", "--grant", "device_code")
    with (
        serve(cli, free_port(), "--workers", "2") as served,
        httpx.Client(base_url=served.base, timeout=10) as http,
    ):
        assert http.get("/.well-known/openid-configuration").status_code == 200
        kids = {tuple(jwks_kids(served.base)) for _ in range(6)}
        assert len(kids) == 1, "every worker publishes the one key"
        codes = [
            http.post("/device_authorization", data={"client_id": "tv"}).json()
            for _ in range(6)
        ]
        for body in codes:
            answer = http.post(
                "/token",
                data={
                    "grant_type": DEVICE_CODE_GRANT,
                    "device_code": body["device_code"],
                    "client_id": "tv",
                },
            ).json()
            assert answer["error"] == "authorization_pending"
        started = [line for line in served.logs().splitlines() if "Started server process" in line]
        assert len(started) == 2, served.logs()


@pytest.mark.parametrize(
    ("command", "db", "words"),
    [
        (["user", "list"], "mysql://db.example/deviceflow", "unsupported database"),
        (["client", "list"], "not-a-database-file", "not a database"),
        (["serve", "--port", "0"], "mysql://db.example/deviceflow", "cannot open the database"),
    ],
    ids=["unsupported-url", "not-a-database", "serve-unsupported-url"],
)
def test_a_bad_database_is_a_plain_error(
    cli: Cli, tmp_path: Path, command: list[str], db: str, words: str
) -> None:
    if db == "not-a-database-file":
        garbage = tmp_path / "garbage.sqlite3"
        garbage.write_text("this is not SQLite\n" * 100)
        db = f"sqlite:///{garbage}"
    result = subprocess.run(
        [sys.executable, "-m", "deviceflow", *command, "--db", db], stdin=subprocess.DEVNULL,
        capture_output=True, text=True, env=cli.env, timeout=120, check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert words in errors[0]


# --- secrets at rest (docs/security.md, docs/operator.md) ---------------------------------------


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000 for this process and the commands it starts: every mode is the one asked for."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_operator_commands_make_a_private_database_whatever_the_umask(
    cli: Cli, tmp_path: Path, open_umask: None
) -> None:
    cli.db_path = tmp_path / "data" / "deviceflow.sqlite3"
    cli.ok("client", "add", "tv", "--name", "TV", "--grant", "device_code")
    assert file_mode(cli.db_path.parent) == 0o700
    files = list(cli.db_path.parent.iterdir())
    assert cli.db_path in files
    assert {p: file_mode(p) for p in files} == dict.fromkeys(files, 0o600)


@pytest.mark.slow  # starts the server, then five refused starts
def test_serve_keeps_key_material_private_and_refuses_it_exposed_or_without_its_key(
    cli: Cli, tmp_path: Path, open_umask: None
) -> None:
    cli.db_path = tmp_path / "data" / "deviceflow.sqlite3"
    key_file = cli.db_path.with_name("deviceflow.key")
    cli.ok("client", "add", "tv", "--name", "TV", "--grant", "device_code")  # makes data/
    with serve(cli, free_port()) as served:
        httpx.post(served.base + "/device_authorization", data={"client_id": "tv"}, timeout=10)
        written = sorted(p.name for p in cli.db_path.parent.iterdir())
        assert {"deviceflow.sqlite3", "deviceflow.sqlite3-wal", "deviceflow.sqlite3-shm",
                "deviceflow.key"} <= set(written), written
        for path in cli.db_path.parent.iterdir():
            if path.suffix != ".log":
                assert file_mode(path) == 0o600, path
        assert file_mode(cli.db_path.parent) == 0o700

    def refused(words: str, env: dict[str, str] | None = None) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "deviceflow", "serve", "--port", str(free_port()),
             "--db", cli.db], stdin=subprocess.DEVNULL, capture_output=True, text=True,
            env=env or cli.env, timeout=120, check=False,
        )
        assert_clean_failure(result, 3, words)

    sqlite_files = [cli.db_path, cli.db_path.with_name("deviceflow.sqlite3-wal")]
    for path in (*sqlite_files, key_file):
        if not path.exists():
            continue
        path.chmod(0o644)
        refused(f"{path} is readable by other users (mode 0644); run: chmod 600 {path}")
        path.chmod(0o600)

    kept = key_file.read_bytes()
    key_file.unlink()
    refused(f"the key file {key_file} is missing; restore it from your backup")
    assert not key_file.exists(), "a missing key is never replaced by a new one"

    key_file.write_text(secrets.token_urlsafe(32) + "\n")
    key_file.chmod(0o600)
    refused(f"cannot be decrypted with the key from {key_file}")
    refused("cannot be decrypted with the key from DEVICEFLOW_SECRET_KEY",
            {**cli.env, "DEVICEFLOW_SECRET_KEY": secrets.token_urlsafe(32)})
    refused("DEVICEFLOW_SECRET_KEY must hold 32 random bytes in base64url",
            {**cli.env, "DEVICEFLOW_SECRET_KEY": "too-short"})

    key_file.write_bytes(kept)  # restoring the key is the recovery
    with serve(cli, free_port()) as served:
        assert httpx.get(served.base + "/healthz", timeout=10).status_code == 200


def test_client_redirect_uris_are_added_replaced_and_removed(cli: Cli) -> None:
    cli.ok("client", "add", "app", "--name", "App", "--grant", "authorization_code",
           "--redirect-uri", "http://127.0.0.1/callback",
           "--redirect-uri", "https://app.example/cb")
    assert cli.rows("SELECT redirect_uris FROM clients") == [
        ("http://127.0.0.1/callback https://app.example/cb",)]
    done = cli.ok("client", "update", "app", "--add-redirect-uri", "com.example.app:/oauth",
                  "--remove-redirect-uri", "https://app.example/cb")
    assert "redirect URIs com.example.app:/oauth http://127.0.0.1/callback" in done.stderr
    cli.ok("client", "update", "app", "--redirect-uri", "http://[::1]/cb")
    assert cli.rows("SELECT redirect_uris FROM clients") == [("http://[::1]/cb",)]
    cli.ok("client", "update", "app", "--no-redirect-uris")
    assert cli.rows("SELECT redirect_uris FROM clients") == [("",)]
    note = cli.ok("client", "add", "bare", "--name", "Bare", "--grant",
                  "authorization_code").stderr
    assert "needs a redirect URI" in note


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--redirect-uri", "https://app.example/cb#x"], "fragment"),
        (["--redirect-uri", "http://app.example/cb"], "uses http"),
        (["--redirect-uri", "http://localhost:8080/cb"], "not localhost"),
        (["--redirect-uri", "myapp:/cb"], "private-use scheme"),
        (["--redirect-uri", "/relative"], "private-use scheme"),
        (["--grant", "client_credentials"], "only a confidential client"),
    ],
    ids=["fragment", "plain-http", "localhost", "scheme-without-period", "relative",
         "public-client-credentials"],
)
def test_client_add_refuses_bad_redirect_uris_in_one_sentence(
    cli: Cli, args: list[str], words: str
) -> None:
    assert_clean_failure(cli("client", "add", "app", "--name", "App", *args), 1, words)
    assert cli.rows("SELECT client_id FROM clients") == []


def test_client_update_refuses_removing_an_unregistered_redirect_uri(cli: Cli) -> None:
    cli.ok("client", "add", "app", "--name", "App", "--redirect-uri", "https://app.example/cb")
    assert_clean_failure(cli("client", "update", "app", "--remove-redirect-uri",
                             "https://other.example/cb"), 1, "has no redirect URI")
    assert_clean_failure(cli("client", "update", "app", "--redirect-uri", "https://a.example/",
                             "--no-redirect-uris"), 2, "contradict")
    assert cli.rows("SELECT redirect_uris FROM clients") == [("https://app.example/cb",)]

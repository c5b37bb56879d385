"""``deviceflow demo``: the whole system in one command, for a first look.

Starts the embedded server on a free loopback port with a throw-away SQLite file, creates a demo
user (random password, printed once) and a public demo client, then runs the real
``deviceflow get-token`` device login against it. Open the URL, sign in, approve, and watch the
token arrive.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import tempfile
from pathlib import Path

import click

DEMO_CLIENT_ID = "deviceflow-demo"
DEMO_USER = "demo"
DEMO_SCOPES = ("openid", "profile", "offline_access")


@click.command("demo")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Loopback port for the embedded server (default: a free one).")
@click.option("--output", type=click.Choice(["text", "json"]), default="json", show_default=True,
              help="How get-token prints the token it receives.")
@click.option("--keep-serving", is_flag=True,
              help="After the login, keep the server running until Ctrl+C.")
@click.option("--no-qr", is_flag=True, help="Don't draw the QR code.")
@click.option("--show-token", is_flag=True,
              help="Print the token even when stdout is a terminal (as get-token --show-token).")
def command(port: int, output: str, keep_serving: bool, no_qr: bool, show_token: bool) -> None:
    """Run the embedded server and a device login against it."""
    import anyio

    from ...config.server import ServerSettings
    from ...protocol.models import DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT, ClientType
    from ...server.bootstrap import STARTUP_REFUSALS, open_store
    from ...server.embedded import free_port, serve_in_thread
    from ...server.service import AdminService
    from ..exit_codes import config_error
    from ..main import run

    workdir = Path(tempfile.mkdtemp(prefix="deviceflow-demo-"))
    port = port or free_port()
    issuer = f"http://127.0.0.1:{port}"
    db_url = f"sqlite:///{workdir / 'demo.sqlite3'}"
    password = secrets.token_urlsafe(12)
    settings = ServerSettings(host="127.0.0.1", port=port, issuer=issuer, db=db_url,
                              log_level="warning")

    async def seed() -> None:
        store = await open_store(db_url)
        try:
            admin = AdminService(store)
            await admin.add_user(DEMO_USER, password, "Demo User")
            await admin.add_client(DEMO_CLIENT_ID, "deviceflow demo CLI", ClientType.PUBLIC,
                                   [DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT], list(DEMO_SCOPES))
        finally:
            await store.close()

    # SIGTERM (a terminal closed, `kill`, a container stopping) cleans up as Ctrl+C does: the
    # exception unwinds through the server's shutdown and the removal of the demo's files.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        anyio.run(seed)
        # The CLI keeps its profile and token cache in the throw-away directory too.
        os.environ["DEVICEFLOW_CONFIG_DIR"] = str(workdir / "config")
        os.environ["DEVICEFLOW_DATA_DIR"] = str(workdir / "data")
        os.environ["DEVICEFLOW_TOKEN_STORE"] = "file"
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(serve_in_thread(settings))
            except STARTUP_REFUSALS as exc:
                raise config_error(str(exc)) from None
            except RuntimeError:  # uvicorn could not bind or start
                raise click.ClickException(
                    f"could not start the demo server on 127.0.0.1:{port} (is the port in use?)"
                ) from None
            click.echo(
                f"\ndeviceflow demo server: {issuer}\n"
                f"Sign in on the verification page as:\n"
                f"  Username: {DEMO_USER}\n"
                f"  Password: {password}   (random, shown only now)\n",
                err=True,
            )
            # The demo shows the device flow, on a desktop too (its client has no redirect URI).
            code = run(["create-profile", "--name", "demo", "--provider", "local",
                        "--issuer", issuer, "--client-id", DEMO_CLIENT_ID,
                        "--default-flow", "device-code",
                        *[arg for s in DEMO_SCOPES for arg in ("--scope", s)]])
            if code == 0:
                code = run(["get-token", "--profile", "demo", "--output", output,
                            *(["--no-qr"] if no_qr else []),
                            *(["--show-token"] if show_token else [])])
            if code == 0 and keep_serving:
                profile_env = (f"DEVICEFLOW_CONFIG_DIR={workdir / 'config'} "
                               f"DEVICEFLOW_DATA_DIR={workdir / 'data'} "
                               "DEVICEFLOW_TOKEN_STORE=file")
                click.echo(
                    f"\nServer still running at {issuer} — Ctrl+C to stop.\n"
                    "Meanwhile, in another terminal, the demo's profile answers from its cache "
                    "and refreshes silently:\n"
                    f"  {profile_env} deviceflow get-token --profile demo\n",
                    err=True,
                )
                _wait_for_interrupt()
            elif code == 0:
                click.echo(_NEXT_STEPS, err=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    raise SystemExit(code)


_NEXT_STEPS = """
The demo server has stopped and its data (user, client, profile, tokens) is deleted.
Next steps:
  deviceflow demo --keep-serving      # the same, and the server stays up to try the CLI against
  deviceflow serve                    # your own server: see README.md, "A 60-second tour"
"""


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _wait_for_interrupt() -> None:
    import threading

    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("", err=True)

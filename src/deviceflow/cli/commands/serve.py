"""``deviceflow serve``: run the authorization server.

Every ``ServerSettings`` field is a flag here (generated from the model, so flags, environment
variables and docs/configuration.md never drift apart). Settings reach each worker process
through ``DEVICEFLOW_*`` variables, the same source an operator may set directly."""

from __future__ import annotations

import os
import sys
import types
import typing
from typing import Any, Literal

import click
from pydantic import SecretStr, ValidationError

from ...config.server import ServerSettings, env_only


def _option_for(name: str, annotation: Any, description: str) -> click.Option:
    flag = "--" + name.replace("_", "-")
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        annotation = inner[0] if len(inner) == 1 else str
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is bool:
        return click.Option([f"{flag}/--no-{flag[2:]}", name], default=None, help=description)
    if origin is tuple:
        choice = click.Choice(typing.get_args(args[0])) if typing.get_origin(args[0]) is Literal \
            else click.STRING
        return click.Option([flag, name], multiple=True, type=choice, help=description)
    if origin is Literal:
        return click.Option([flag, name], type=click.Choice(args), default=None, help=description)
    kind = {int: click.INT, float: click.FLOAT}.get(annotation, click.STRING)
    return click.Option([flag, name], type=kind, default=None, help=description)


def settings_options(func: Any) -> Any:
    for name, field in reversed(list(ServerSettings.model_fields.items())):
        if env_only(field):  # a secret on the command line is visible to every local user
            continue
        option = _option_for(name, field.annotation, field.description or "")
        func.__click_params__ = [*getattr(func, "__click_params__", []), option]
    return func


def settings_from(options: dict[str, Any]) -> ServerSettings:
    """Flags override the environment; validation errors become one plain sentence each."""
    given = {k: v for k, v in options.items() if v is not None and v != ()}
    try:
        return ServerSettings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise click.UsageError(problems) from None


def export_env(settings: ServerSettings) -> None:
    """Hand the validated settings to worker processes through their environment."""
    for name, value in settings.model_dump().items():
        key = f"DEVICEFLOW_{name.upper()}"
        if value is None:
            os.environ.pop(key, None)
        elif isinstance(value, SecretStr):
            os.environ[key] = value.get_secret_value()
        elif isinstance(value, tuple | list):
            import json

            os.environ[key] = json.dumps(list(value))
        elif isinstance(value, bool):
            os.environ[key] = "true" if value else "false"
        else:
            os.environ[key] = str(value)


@click.command("serve")
@settings_options
def command(**options: Any) -> None:
    """Run the authorization server (device authorization, token, verification pages, OIDC)."""
    import anyio
    import uvicorn

    from ...server.bootstrap import (
        STARTUP_REFUSALS,
        key_source,
        network_lookup,
        open_store,
        refuse_exposed_key_material,
    )
    from ...server.embedded import port_in_use, uvicorn_options
    from ...server.keys import load_keyring
    from ...server.logs import configure
    from ...server.notifications.setup import webhook_secret
    from ..exit_codes import config_error

    settings = settings_from(options)
    configure(settings.log_format, settings.log_level)
    if port_in_use(settings.host, settings.port):
        raise config_error(
            f"port {settings.port} on {settings.host} is already in use (another deviceflow "
            "serve?); stop that process or choose another port with --port")

    # Migrate and create keys once, in this process, so N workers never race on first start.
    # Key material other users can read, or a missing or wrong key-encryption key, stops the
    # start with one sentence and exit 3 (docs/cli.md), before any file is created.
    async def prepare() -> None:
        refuse_exposed_key_material(settings)
        webhook_secret(settings)  # a malformed or exposed webhook secret stops the start too
        network_lookup(settings).close()  # a missing or broken network database: exit 3
        store = await open_store(settings.effective_db, migrate=settings.migrate_on_start)
        try:
            await load_keyring(store, key_source(settings), settings.signing_alg,
                               settings.extra_signing_algs)
        finally:
            await store.close()

    try:
        anyio.run(prepare)
    except STARTUP_REFUSALS as exc:
        raise config_error(str(exc)) from None
    except Exception as exc:  # a bad URL, a refused connection, an unwritable file
        raise click.ClickException(f"cannot open the database: {type(exc).__name__}: {exc}") \
            from None
    settings = settings.model_copy(update={"migrate_on_start": False, "db": settings.effective_db})
    export_env(settings)
    click.echo(
        f"deviceflow serving {settings.effective_issuer} "
        f"(discovery: {settings.effective_issuer.rstrip('/')}/.well-known/openid-configuration)",
        err=True,
    )
    metrics_dir = multiprocess_metrics(settings)
    try:
        uvicorn.run(
            "deviceflow.server.web.app:app_from_env", factory=True, workers=settings.workers,
            timeout_graceful_shutdown=10, **uvicorn_options(settings),
        )
    finally:
        if metrics_dir is not None:
            from ...server.web.metrics import remove_multiprocess_dir

            remove_multiprocess_dir(metrics_dir)
    sys.exit(0)


def multiprocess_metrics(settings: ServerSettings) -> str | None:
    """With metrics on and several workers, a fresh private directory (0700, empty: nothing
    from an earlier run is summed) where each worker writes its values for any worker to sum at
    a scrape; the workers find it in ``PROMETHEUS_MULTIPROC_DIR``. Otherwise the variable is
    removed, so that one process keeps its values in memory."""
    from ...server.web.metrics import MULTIPROC_ENV, private_multiprocess_dir

    if not (settings.enable_metrics and settings.workers > 1):
        os.environ.pop(MULTIPROC_ENV, None)
        return None
    path = private_multiprocess_dir()
    os.environ[MULTIPROC_ENV] = path
    return path

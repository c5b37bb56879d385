"""``deviceflow keys``: rotate and list the keys that sign access and ID tokens.

The command reads the server's settings (``DEVICEFLOW_*``, as ``deviceflow serve`` does) for the
key-encryption key, the token lifetimes and ``signing_key_reload_interval``; ``--db`` names the
database as in the other operator commands (docs/operator.md, "Signing keys")."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click

from ._admin import db_option

if TYPE_CHECKING:
    from ...config.server import ServerSettings
    from ...server.secretbox import KeySource
    from ...storage.interface import Store

T = TypeVar("T")


@click.group("keys")
def command() -> None:
    """Rotate and list the token signing keys."""


def _settings(db: str | None) -> ServerSettings:
    from pydantic import ValidationError

    from ...config.server import ServerSettings

    try:
        return ServerSettings(db=db) if db else ServerSettings()
    except ValidationError as exc:
        raise click.ClickException(f"invalid server settings: {exc.errors()[0]['msg']}") from None


def _run(settings: ServerSettings, action: Callable[[Store, KeySource], Awaitable[T]]) -> T:
    """Open the store the way the server does (migrating it first) with the server's KEK."""
    import anyio

    from ...server.bootstrap import STARTUP_REFUSALS, key_source, open_store
    from ...server.rotation import RotationConflictError

    async def main() -> T:
        store = await open_store(settings.effective_db)
        try:
            return await action(store, key_source(settings))
        finally:
            await store.close()

    try:
        return anyio.run(main)
    except (*STARTUP_REFUSALS, RotationConflictError) as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        raise click.ClickException(f"database error: {type(exc).__name__}") from None


def _utc(moment: float | None) -> str:
    if moment is None:
        return ""
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@command.command("rotate")
@click.option("--alg", type=click.Choice(["RS256", "ES256"]), default=None,
              help="Algorithm of the key to rotate. Default: the server's signing_alg.")
@db_option
def rotate(alg: str | None, db: str | None) -> None:
    """Add a new signing key. It is published in JWKS at once and signs new tokens after twice
    signing_key_reload_interval; the old key stays in JWKS until every token it signed has
    expired, then it is retired. Running servers pick it up without a restart."""
    import time

    from ...server.rotation import rotate_signing_key

    settings = _settings(db)
    chosen = alg or settings.signing_alg
    interval = settings.signing_key_reload_interval
    lifetime = max(settings.access_token_lifetime, settings.id_token_lifetime)
    rotation = _run(settings, lambda store, kek: rotate_signing_key(
        store, kek, chosen, now=time.time(), activation_delay=2 * interval,
        token_lifetime=lifetime))
    new, old = rotation.successor, rotation.previous
    click.echo(f"New {chosen} key {new.kid}: in JWKS now, signs from {_utc(new.active_from)}.",
               err=True)
    click.echo(f"Old key {old.kid}: signs until {_utc(old.signs_until)}, stays in JWKS until "
               f"{_utc(old.retire_after)}, then retired.", err=True)
    click.echo(new.kid)


@command.command("list")
@click.option("--output", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Table for people, or JSON for scripts.")
@db_option
def list_(output: str, db: str | None) -> None:
    """List the signing keys: kid, algorithm, state (published / active / retiring until T /
    retired) and when each was created."""
    import time

    from ...server.keys import KeyState
    from ...server.rotation import list_signing_keys

    settings = _settings(db)
    algs = tuple(dict.fromkeys((settings.signing_alg, *settings.extra_signing_algs)))
    listing = _run(settings, lambda store, kek: list_signing_keys(
        store, kek, algs, now=time.time()))
    if output == "json":
        click.echo(json.dumps([{
            "kid": k.record.kid, "alg": k.record.alg, "state": k.state.value,
            "until": k.until, "created_at": k.record.created_at,
            "active_from": k.record.active_from, "signs_until": k.record.signs_until,
            "retire_after": k.record.retire_after,
        } for k in listing], indent=2))
        return
    describe = {
        KeyState.PUBLISHED: "published, signs from {}",
        KeyState.ACTIVE: "active",
        KeyState.RETIRING: "retiring until {}",
        KeyState.RETIRED: "retired",
    }
    click.echo(f"{'KID':<44} {'ALG':<6} {'STATE':<46} CREATED")
    for k in listing:
        state = describe[k.state].format(_utc(k.until))
        click.echo(f"{k.record.kid:<44} {k.record.alg:<6} {state:<46} "
                   f"{_utc(k.record.created_at)}")

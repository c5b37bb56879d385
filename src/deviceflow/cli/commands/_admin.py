"""Shared plumbing of the operator commands: one database option and an async runner."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

T = TypeVar("T")

db_option = click.option(
    "--db", "db", envvar="DEVICEFLOW_DB", default=None, metavar="URL",
    help="Database URL (sqlite:///path or postgresql://...). Default: DEVICEFLOW_DB, else the "
    "SQLite file `deviceflow serve` uses.",
)


def run_admin(db: str | None, action: Callable[[Any], Awaitable[T]]) -> T:
    """Open the store (migrating it first, so a fresh database works), run, close."""
    import anyio

    from ...server.bootstrap import open_store
    from ...server.service import AdminService
    from ...storage.sql.engine import default_db_url

    async def main() -> T:
        store = await open_store(db or default_db_url())
        try:
            return await action(AdminService(store))
        finally:
            await store.close()

    try:
        return anyio.run(main)
    except click.ClickException:
        raise
    except Exception as exc:
        from ...server.service import AdminRefused
        from ...storage.interface import AlreadyExistsError

        if isinstance(exc, AdminRefused):
            raise click.ClickException(str(exc)) from None
        if isinstance(exc, AlreadyExistsError):
            raise click.ClickException(f"already exists: {exc}") from None
        raise click.ClickException(f"database error: {type(exc).__name__}: {exc}") from None


def read_password(password_stdin: bool, *, confirm: bool = True) -> str:
    """From stdin (one line) or a hidden prompt; never from argv, where others could read it."""
    import sys

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    else:
        raise click.UsageError("no terminal to ask for the password: use --password-stdin")
    if len(password) < 8:
        raise click.UsageError("the password must have at least 8 characters")
    return password

"""``deviceflow db``: migrate the server's database and show its schema revision.

The migrations ship inside the package (``deviceflow.storage.sql.migrations``), so neither an
``alembic.ini`` nor the source tree is needed: ``deviceflow db upgrade`` works from a wheel.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import click

from ._admin import db_option


def _resolve(db: str | None) -> str:
    from ...storage.sql.engine import default_db_url

    return db or default_db_url()


def _display(url: str) -> str:
    """The URL without its password, for messages (they end up in logs and terminals)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _fail(url: str, exc: Exception) -> click.ClickException:
    return click.ClickException(f"{_display(url)}: {type(exc).__name__}: {exc}")


@click.group("db")
def command() -> None:
    """Manage the server's database schema."""


@command.command("upgrade")
@db_option
def upgrade(db: str | None) -> None:
    """Create or migrate the database schema to the newest revision (safe to run again, and
    safe to run from several workers at once)."""
    import asyncio

    from ...storage.sql.engine import current_revision, head_revision, upgrade_sync

    url = _resolve(db)
    try:
        before = asyncio.run(current_revision(url))
        upgrade_sync(url)
    except Exception as exc:  # ValueError (bad URL), OSError, SQLAlchemyError: one sentence each
        raise _fail(url, exc) from None
    head = head_revision()
    if before == head:
        click.echo(f"{_display(url)} is already at revision {head} (head).", err=True)
    else:
        click.echo(f"Upgraded {_display(url)} from {before or 'empty'} to {head} (head).", err=True)


@command.command("current")
@db_option
@click.option("--check", is_flag=True, help="Exit with status 1 unless the schema is at head.")
def current(db: str | None, check: bool) -> None:
    """Print the schema revision of the database ("none" if it was never migrated)."""
    import asyncio

    from ...storage.sql.engine import current_revision, head_revision

    url = _resolve(db)
    try:
        revision = asyncio.run(current_revision(url))
    except Exception as exc:
        raise _fail(url, exc) from None
    head = head_revision()
    click.echo(f"{revision} (head)" if revision == head else (revision or "none"))
    if check and revision != head:
        raise click.ClickException(f"not at head ({head}): run `deviceflow db upgrade`")

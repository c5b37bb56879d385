"""``deviceflow sessions``: the devices people have signed in (refresh-token families), and
signing them out. Runs on the database, like ``user`` and ``client``: no server needs to be up."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from ._admin import db_option, run_admin

if TYPE_CHECKING:
    from ...server.service.admin import DeviceSession


@click.group("sessions")
def command() -> None:
    """List and sign out the devices people have signed in."""


def _when(ts: float | None) -> str:
    if ts is None:
        return "unknown"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _iso(ts: float | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(
        timespec="seconds")


def _document(sessions: Sequence[DeviceSession]) -> list[dict[str, object]]:
    return [{
        "family_id": s.grant.family_id,
        "user_id": s.grant.user_id,
        "username": s.username,
        "client_id": s.grant.client_id,
        "scope": " ".join(s.grant.scope),
        "approved_at": _iso(s.grant.approved_at),
        "last_used_at": _iso(s.grant.last_used_at),
        "ip_address": s.grant.origin.ip_address if s.grant.origin else None,
        "user_agent": s.grant.origin.user_agent if s.grant.origin else None,
    } for s in sessions]


@command.command("list")
@click.option("--user", "username", default=None, metavar="NAME", help="Only this user's.")
@click.option("--client", "client_id", default=None, metavar="ID", help="Only this client's.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list) instead of a table.")
@db_option
def list_(username: str | None, client_id: str | None, as_json: bool, db: str | None) -> None:
    """List signed-in devices: family id, user, client, approved at, last used, IP."""
    sessions = run_admin(db, lambda admin: admin.list_sessions(username=username,
                                                               client_id=client_id))
    if as_json:
        click.echo(json.dumps(_document(sessions), indent=2, ensure_ascii=True))
        return
    if not sessions:
        click.echo("No signed-in devices.", err=True)
        return
    click.echo(f"{'FAMILY':<33} {'USER':<16} {'CLIENT':<20} {'APPROVED':<17} "
               f"{'LAST USED':<17} IP")
    for s in sessions:
        g = s.grant
        ip = g.origin.ip_address if g.origin else "unknown"
        click.echo(f"{g.family_id:<33} {s.username or '(removed)':<16} {g.client_id:<20} "
                   f"{_when(g.approved_at):<17} {_when(g.last_used_at):<17} {ip}")


@command.command("revoke")
@click.option("--user", "username", default=None, metavar="NAME",
              help="Sign out every device of this user.")
@click.option("--client", "client_id", default=None, metavar="ID",
              help="Sign out every device signed in to this client.")
@click.option("--family", "family_id", default=None, metavar="ID",
              help="Sign out one device (a family id from `sessions list`).")
@db_option
def revoke(username: str | None, client_id: str | None, family_id: str | None,
           db: str | None) -> None:
    """Sign out devices: revoke their refresh tokens (exactly one selector)."""
    if sum(x is not None for x in (username, client_id, family_id)) != 1:
        raise click.UsageError("give exactly one of --user, --client or --family")
    revoked = run_admin(db, lambda admin: admin.revoke_sessions(
        username=username, client_id=client_id, family_id=family_id))
    plural = "" if revoked == 1 else "s"
    click.echo(f"Signed out {revoked} device{plural} (refresh tokens revoked).", err=True)

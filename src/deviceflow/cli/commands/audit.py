"""``deviceflow audit``: read the audit log (docs/operator.md, "Audit log").

Newest first. Text is a table for people; ``--json`` prints one JSON object per line (JSON
Lines), which streams and feeds ``jq`` or a log shipper record by record."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import click

from ...protocol.audit import AuditEventType
from ._admin import db_option, run_admin

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(\d+)([smhdw])$")


def parse_since(text: str, now: float) -> float:
    """``90s``, ``30m``, ``1h``, ``7d``, ``2w`` ago, or an ISO 8601 time (UTC unless it says)."""
    match = _DURATION.match(text.strip())
    if match:
        return now - int(match.group(1)) * _UNITS[match.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a duration (90s, 30m, 1h, 7d, 2w) nor an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@click.command("audit")
@click.option("--user", "username", default=None, metavar="NAME",
              help="Only this user's records (a username, or the id of a removed user).")
@click.option("--client", "client_id", default=None, metavar="ID", help="Only this client's.")
@click.option("--since", default=None, metavar="WHEN",
              help="Only records since then: a duration ago (90s, 30m, 1h, 7d, 2w) or an ISO "
              "8601 time (UTC unless it says).")
@click.option("--event", "events", multiple=True,
              type=click.Choice([e.value for e in AuditEventType]),
              help="Only this kind of event; repeat for several.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="At most this many records, the newest.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line (JSON Lines) instead of a table.")
@db_option
def command(username: str | None, client_id: str | None, since: str | None,
            events: tuple[str, ...], limit: int, as_json: bool, db: str | None) -> None:
    """Show the audit log, newest first: sign-ins, code entries, approvals, tokens issued and
    refreshed, revocations. It never holds a code, token or password."""
    import json

    from ...protocol.audit import AuditQuery

    query = AuditQuery(
        client_id=client_id,
        since=None if since is None else parse_since(since, time.time()),
        events=frozenset(AuditEventType(e) for e in events),
        limit=limit,
    )
    records, names = run_admin(db, lambda admin: admin.audit_events(query, username))
    if as_json:
        for r in records:
            click.echo(json.dumps({
                "time": _iso(r.occurred_at), "occurred_at": r.occurred_at,
                "event": r.event.value, "user_id": r.user_id,
                "username": names.get(r.user_id) if r.user_id else None,
                "client_id": r.client_id, "ip_address": r.ip_address,
                "user_agent": r.user_agent, "family_id": r.family_id,
                "request_id": r.request_id, "grant_type": r.grant_type,
                "actor": None if r.actor is None else r.actor.value, "detail": r.detail,
            }, separators=(",", ":")))
        return
    if not records:
        click.echo("No audit records match.", err=True)
        return
    click.echo(f"{'TIME (UTC)':<20} {'EVENT':<30} {'USER':<16} {'CLIENT':<16} "
               f"{'IP':<15} {'FAMILY':<8} DETAIL")
    for r in records:
        user = names.get(r.user_id, r.user_id[:12]) if r.user_id else "-"
        detail = " ".join(x for x in (
            r.grant_type, None if r.actor is None else f"by {r.actor.value}", r.detail,
        ) if x) or "-"
        click.echo(f"{_iso(r.occurred_at):<20} {r.event.value:<30} {user:<16} "
                   f"{r.client_id or '-':<16} {r.ip_address or '-':<15} "
                   f"{(r.family_id or '-')[:8]:<8} {detail}")

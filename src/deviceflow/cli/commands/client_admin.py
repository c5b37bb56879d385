"""``deviceflow client``: the applications (devices, CLIs, agents) that may ask for codes."""

from __future__ import annotations

import click

from ...protocol.models import GRANT_SHORT_NAMES as _GRANTS
from ._admin import db_option, run_admin


@click.group("client")
def command() -> None:
    """Manage OAuth clients."""


@command.command("add")
@click.argument("client_id")
@click.option("--name", required=True, help="Display name shown on the consent page.")
@click.option("--public/--confidential", "public", default=True, show_default=True,
              help="Public clients (CLIs, TVs) have no secret; confidential ones get one.")
@click.option("--grant", "grants", multiple=True, type=click.Choice(sorted(_GRANTS)),
              help="Grant the client may use; repeat. Off unless granted.")
@click.option("--scope", "scopes", multiple=True, metavar="SCOPE",
              help="Scope the client may ask for; repeat. Default: openid profile.")
@click.option("--expires-in", type=click.IntRange(30, 3600), default=None, metavar="SECONDS",
              help="Device code lifetime for this client (default: the server's).")
@click.option("--redirect-uri", "redirect_uris", multiple=True, metavar="URI",
              help="Where /authorize may send the browser back (authorization_code); repeat. "
              "https, http://127.0.0.1 or http://[::1] (any port), or com.example.app:/path.")
@db_option
def add(client_id: str, name: str, public: bool, grants: tuple[str, ...],
        scopes: tuple[str, ...], expires_in: int | None, redirect_uris: tuple[str, ...],
        db: str | None) -> None:
    """Register a client. A confidential client's secret is printed once and stored hashed."""
    from ...protocol.models import ClientType

    client_type = ClientType.PUBLIC if public else ClientType.CONFIDENTIAL
    client, secret = run_admin(db, lambda admin: admin.add_client(
        client_id, name, client_type, [_GRANTS[g] for g in grants],
        list(scopes) or ["openid", "profile"], expires_in, list(redirect_uris),
    ))
    click.echo(f"Added {client_type} client {client.client_id}.", err=True)
    if not grants:
        click.echo("Note: no grants given, so this client cannot get tokens yet; give it one "
                   f"with: deviceflow client update {client.client_id} --grant device_code",
                   err=True)
    if "authorization_code" in grants and not redirect_uris:
        click.echo("Note: authorization_code needs a redirect URI; add one with: deviceflow "
                   f"client update {client.client_id} --add-redirect-uri URI", err=True)
    if secret is not None:
        click.echo("Client secret (shown once; store it now):", err=True)
        click.echo(secret)


@command.command("update")
@click.argument("client_id")
@click.option("--name", default=None, help="New display name.")
@click.option("--grant", "grants", multiple=True, type=click.Choice(sorted(_GRANTS)),
              help="Grant the client may use; repeat. Replaces all of its grants.")
@click.option("--no-grants", is_flag=True, help="Take every grant away (the client is kept).")
@click.option("--scope", "scopes", multiple=True, metavar="SCOPE",
              help="Scope the client may ask for; repeat. Replaces all of its scopes.")
@click.option("--expires-in", type=click.IntRange(30, 3600), default=None, metavar="SECONDS",
              help="Device code lifetime for this client.")
@click.option("--default-expires-in", is_flag=True,
              help="Use the server's device code lifetime again.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, metavar="URI",
              help="Redirect URI; repeat. Replaces all of its redirect URIs.")
@click.option("--add-redirect-uri", "add_uris", multiple=True, metavar="URI",
              help="Register one more redirect URI; repeat.")
@click.option("--remove-redirect-uri", "remove_uris", multiple=True, metavar="URI",
              help="Unregister a redirect URI; repeat.")
@click.option("--no-redirect-uris", is_flag=True, help="Unregister every redirect URI.")
@db_option
def update(client_id: str, name: str | None, grants: tuple[str, ...], no_grants: bool,
           scopes: tuple[str, ...], expires_in: int | None, default_expires_in: bool,
           redirect_uris: tuple[str, ...], add_uris: tuple[str, ...],
           remove_uris: tuple[str, ...], no_redirect_uris: bool, db: str | None) -> None:
    """Change a client: only what is given changes; --grant and --scope replace the lists.
    Running servers see the change within 5 seconds."""
    from ...protocol.models import ClientChanges

    if grants and no_grants:
        raise click.UsageError("--grant and --no-grants contradict each other")
    if expires_in is not None and default_expires_in:
        raise click.UsageError("--expires-in and --default-expires-in contradict each other")
    if redirect_uris and no_redirect_uris:
        raise click.UsageError("--redirect-uri and --no-redirect-uris contradict each other")
    changes = ClientChanges(
        redirect_uris=frozenset(redirect_uris) if redirect_uris or no_redirect_uris else None,
        name=name,
        grant_types=frozenset(_GRANTS[g] for g in grants) if grants or no_grants else None,
        scopes=frozenset(scopes) if scopes else None,
        device_code_lifetime=expires_in,
        default_device_code_lifetime=default_expires_in,
    )
    if changes.is_empty() and not add_uris and not remove_uris:
        raise click.UsageError("nothing to change: give --name, --grant, --scope, --expires-in "
                               "or a redirect URI option")
    client = run_admin(db, lambda admin: admin.update_client(
        client_id, changes, add_redirect_uris=add_uris, remove_redirect_uris=remove_uris))
    short = {v: k for k, v in _GRANTS.items()}
    grants_text = " ".join(sorted(short.get(g, g) for g in client.grant_types)) or "none"
    lifetime = (f"{client.device_code_lifetime} s" if client.device_code_lifetime
                else "the server's default")
    click.echo(f"Updated client {client.client_id} ({client.name}): grants {grants_text}; "
               f"scopes {' '.join(sorted(client.scopes))}; device codes live {lifetime}; "
               f"redirect URIs {' '.join(sorted(client.redirect_uris)) or 'none'}.",
               err=True)


@command.command("list")
@db_option
def list_(db: str | None) -> None:
    """List clients."""
    clients = run_admin(db, lambda admin: admin.list_clients())
    if not clients:
        click.echo("No clients. Add one with: deviceflow client add ID --name NAME "
                   "--grant device_code", err=True)
        return
    short = {v: k for k, v in _GRANTS.items()}
    click.echo(f"{'CLIENT ID':<24} {'TYPE':<13} {'GRANTS':<28} {'SCOPES':<32} NAME")
    for c in clients:
        grants = ",".join(sorted(short.get(g, g) for g in c.grant_types)) or "-"
        click.echo(f"{c.client_id:<24} {c.client_type.value:<13} {grants:<28} "
                   f"{' '.join(sorted(c.scopes)):<32} {c.name}")


@command.command("remove")
@click.argument("client_id")
@db_option
def remove(client_id: str, db: str | None) -> None:
    """Remove a client."""
    if not run_admin(db, lambda admin: admin.remove_client(client_id)):
        raise click.ClickException(f"no client {client_id!r}")
    click.echo(f"Removed client {client_id}.", err=True)

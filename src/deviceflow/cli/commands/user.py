"""``deviceflow user``: the people who may sign in on the verification pages."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click

from ._admin import db_option, read_password, run_admin

if TYPE_CHECKING:
    from ...server.service.admin import SignedOut


@click.group("user")
def command() -> None:
    """Manage the people who may sign in."""


@command.command("add")
@click.argument("username")
@click.option("--name", default="", help="Display name (default: the username).")
@click.option("--email", default=None,
              help='Where "A device signed in to your account" is sent (needs SMTP settings).')
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@db_option
def add(username: str, name: str, email: str | None, password_stdin: bool,
        db: str | None) -> None:
    """Add a user; the password is asked for (or read from stdin), stored with argon2id."""
    if email:
        _check_email(email)  # before the password prompt
    password = read_password(password_stdin)
    user = run_admin(db, lambda admin: admin.add_user(username, password, name, email))
    click.echo(f"Added user {user.username} (sub {user.user_id}).", err=True)


def _check_email(email: str) -> None:
    from ...protocol.email_address import EmailAddressRefused, normalized_email

    try:
        normalized_email(email)
    except EmailAddressRefused as exc:
        raise click.BadParameter(str(exc), param_hint="--email") from None


@command.command("update")
@click.argument("username")
@click.option("--email", required=True,
              help='Where "A device signed in to your account" is sent; "" removes it.')
@db_option
def update(username: str, email: str, db: str | None) -> None:
    """Change a user's e-mail address."""
    if email:
        _check_email(email)
    stored = run_admin(db, lambda admin: admin.set_email(username, email or None))
    what = f"e-mail {stored}" if stored else "no e-mail address"
    click.echo(f"Updated user {username}: {what}.", err=True)


@command.command("list")
@db_option
def list_(db: str | None) -> None:
    """List users."""
    users = run_admin(db, lambda admin: admin.list_users())
    if not users:
        click.echo("No users. Add one with: deviceflow user add NAME", err=True)
        return
    click.echo(f"{'USERNAME':<24} {'NAME':<24} {'SUB':<34} {'CREATED':<17} EMAIL")
    for u in users:
        created = dt.datetime.fromtimestamp(u.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
        click.echo(f"{u.username:<24} {u.name:<24} {u.user_id:<34} {created:<17} "
                   f"{u.email or '-'}")


def _signed_out(ended: SignedOut) -> str:
    browsers = "" if ended.browser_sessions == 1 else "s"
    devices = "" if ended.devices == 1 else "s"
    return (f"{ended.browser_sessions} browser session{browsers} ended, "
            f"{ended.devices} device{devices} signed out")


@command.command("remove")
@click.argument("username")
@db_option
def remove(username: str, db: str | None) -> None:
    """Remove a user, ending their sign-ins and signing out their devices."""
    ended = run_admin(db, lambda admin: admin.remove_user(username))
    if ended is None:
        raise click.ClickException(f"no user named {username!r}")
    click.echo(f"Removed user {username}: {_signed_out(ended)}.", err=True)


@command.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@db_option
def passwd(username: str, password_stdin: bool, db: str | None) -> None:
    """Set a user's password, ending their sign-ins and signing out their devices."""
    password = read_password(password_stdin)
    ended = run_admin(db, lambda admin: admin.set_password(username, password))
    if ended is None:
        raise click.ClickException(f"no user named {username!r}")
    click.echo(f"Password changed for {username}: {_signed_out(ended)}.", err=True)


@command.command("signout")
@click.argument("username")
@db_option
def signout(username: str, db: str | None) -> None:
    """End every sign-in of a user on the verification pages (all browsers, at once)."""
    ended = run_admin(db, lambda admin: admin.sign_out_user(username))
    if ended is None:
        raise click.ClickException(f"no user named {username!r}")
    plural = "" if ended == 1 else "s"
    click.echo(f"Signed {username} out: {ended} browser session{plural} ended.", err=True)


@command.command("mfa")
@click.argument("username")
@click.option("--status", "show", is_flag=True, help="Show whether a second factor is on.")
@click.option("--reset", is_flag=True,
              help="Remove the second factor and recovery codes (a lost phone); audited.")
@db_option
def mfa(username: str, show: bool, reset: bool, db: str | None) -> None:
    """Show or reset a user's second factor (an authenticator app and its recovery codes)."""
    if show == reset:
        raise click.UsageError("give exactly one of --status and --reset")
    if reset:
        removed = run_admin(db, lambda admin: admin.reset_factors(username))
        if removed is None:
            raise click.ClickException(f"no user named {username!r}")
        what = "second factor removed" if removed else "had no second factor"
        click.echo(f"Reset {username}: {what}; they sign in with their password and may enrol "
                   "again.", err=True)
        return
    status = run_admin(db, lambda admin: admin.factor_status(username))
    if status is None:
        raise click.ClickException(f"no user named {username!r}")
    enrolled, left = status
    if enrolled:
        click.echo(f"{username}: authenticator app on, {left} recovery codes left")
    else:
        click.echo(f"{username}: no second factor")

"""``deviceflow delete-profile``: remove a profile, its cached tokens and its client secret."""

from __future__ import annotations

import contextlib

import click

from deviceflow.cli.common import confirm, env_of, profile_store, resolve_profile, token_cache
from deviceflow.cli.exit_codes import CliError, ExitCode
from deviceflow.cli.profile_options import name_argument
from deviceflow.client.errors import ConfigurationError

__all__ = ["command"]


@click.command("delete-profile")
@name_argument
@click.option("--yes", "-y", is_flag=True, help="Don't ask for confirmation.")
@click.pass_context
def command(ctx: click.Context, name_opt: str | None, name_arg: str | None, yes: bool) -> int:
    """Delete a profile and forget its cached tokens (asks first, unless --yes).

    Tokens are not revoked at the server; run 'deviceflow logout' first for that.
    """
    env = env_of(ctx)
    name = name_opt or name_arg
    if not name:
        raise CliError("Which profile? Pass --name NAME.", ExitCode.USAGE)
    _profiles, profile = resolve_profile(env, name)
    if not yes:
        if not env.can_prompt:
            raise CliError(
                f"Refusing to delete profile '{name}' without confirmation; pass --yes.",
                ExitCode.USAGE,
            )
        if not confirm(env, f"Delete profile '{name}' and its cached tokens?"):
            env.say("Nothing deleted.")
            return int(ExitCode.CANCELLED)
    cache = token_cache(env, notify=False)
    removed: list[str] = []
    with contextlib.suppress(ConfigurationError):  # no issuer: nothing was ever cached
        removed += cache.delete(profile.cache_key)
    for leftover in cache.profile_files(profile.name):
        leftover.unlink(missing_ok=True)
        removed.append(str(leftover))
    removed += cache.delete_entry(cache.secret_name(profile.name))
    profile_store(env).remove(profile.name)
    env.say(f"Profile '{name}' deleted.")
    for place in removed:
        env.say(f"Removed {place}")
    return int(ExitCode.OK)

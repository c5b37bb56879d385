"""``deviceflow logout``: revoke at the server (RFC 7009) when it offers revocation, then forget
the tokens locally even if revocation failed."""

from __future__ import annotations

import click

from deviceflow.cli.common import env_of, profile_store, resolve_profile, token_cache
from deviceflow.cli.context import Env
from deviceflow.cli.exit_codes import CliError, ExitCode
from deviceflow.client.profiles import Profile

__all__ = ["command", "logout_profile"]


def logout_profile(env: Env, profile: Profile) -> bool:
    """Log one profile out; returns whether any token was found."""
    from deviceflow.client.sync import DeviceFlowClient

    cache = token_cache(env, notify=False)
    secret = cache.load_secret(profile.name) if profile.has_client_secret else None
    with DeviceFlowClient(profile, cache=cache, client_secret=secret) as client:
        result = client.logout()
    if not result.removed:
        env.say(f"Profile '{profile.name}': not signed in.")
        return False
    if result.revocation_error:
        env.say(
            f"Profile '{profile.name}': could not revoke at the server "
            f"({result.revocation_error.rstrip('.')}); forgot the tokens locally anyway."
        )
    elif result.revoked:
        env.say(f"Profile '{profile.name}': tokens revoked at the server and forgotten locally.")
    else:
        env.say(
            f"Profile '{profile.name}': the server offers no revocation endpoint; tokens "
            "forgotten locally (they stay valid at the server until they expire)."
        )
    return True


@click.command("logout")
@click.option("--profile", "-p", "profile_name", metavar="NAME", help="Profile to log out.")
@click.option("--all", "all_profiles", is_flag=True, help="Log out of every profile.")
@click.pass_context
def command(ctx: click.Context, profile_name: str | None, all_profiles: bool) -> int:
    """Revoke the profile's tokens at the server (if it supports RFC 7009) and forget them."""
    env = env_of(ctx)
    if profile_name and all_profiles:
        raise CliError("Use either --profile or --all, not both.", ExitCode.USAGE)
    if all_profiles:
        profiles = profile_store(env).load().profiles
        if not profiles:
            env.say("No profiles.")
        for profile in profiles:
            logout_profile(env, profile)
        return int(ExitCode.OK)
    _profiles, profile = resolve_profile(env, profile_name)
    logout_profile(env, profile)
    return int(ExitCode.OK)

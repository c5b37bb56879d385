"""``deviceflow show-profile``: a profile's settings, with the defaults it inherits."""

from __future__ import annotations

import json

import click

from deviceflow.cli.commands.list_profiles import profile_summary
from deviceflow.cli.common import env_of, output_option, resolve_profile
from deviceflow.cli.exit_codes import ExitCode
from deviceflow.cli.profile_options import name_argument

__all__ = ["command"]


@click.command("show-profile")
@name_argument
@output_option
@click.pass_context
def command(ctx: click.Context, name_opt: str | None, name_arg: str | None, output: str) -> int:
    """Show a profile's settings (default: the default profile). Never shows secrets."""
    env = env_of(ctx)
    profiles, profile = resolve_profile(env, name_opt or name_arg)
    default = profiles.resolve_default(env.settings.profile)
    summary = profile_summary(profile, is_default=profile.name == default)
    if output == "json":
        env.out(json.dumps(summary, indent=2) + "\n")
        return int(ExitCode.OK)
    labels = {
        "name": "Name",
        "default": "Default",
        "provider": "Provider",
        "issuer": "Issuer",
        "tenant_id": "Tenant ID",
        "client_id": "Client ID",
        "scopes": "Scopes",
        "audience": "Audience",
        "default_flow": "Default flow",
        "client_secret": "Client secret",
        "docker_registries": "Docker",
        "docker_username": "Docker user",
    }
    for key, label in labels.items():
        value = summary[key]
        if value is None:
            continue
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, list):
            text = " ".join(str(v) for v in value)
        else:
            text = str(value)
        env.out(f"{label + ':':<15}{text}\n")
    if not profile.scopes:
        env.out(f"{'':<15}(the provider's default scopes)\n")
    return int(ExitCode.OK)

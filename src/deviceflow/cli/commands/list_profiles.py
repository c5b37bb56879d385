"""``deviceflow list-profiles``: one line per profile (the default one marked)."""

from __future__ import annotations

import json

import click

from deviceflow.cli.common import env_of, output_option, profile_store
from deviceflow.cli.exit_codes import ExitCode
from deviceflow.client.errors import ConfigurationError
from deviceflow.client.profiles import Profile

__all__ = ["command", "profile_summary"]


def profile_summary(profile: Profile, *, is_default: bool) -> dict[str, object]:
    try:
        issuer: str | None = profile.effective_issuer
    except ConfigurationError:
        issuer = None
    return {
        "name": profile.name,
        "default": is_default,
        "provider": profile.provider.value,
        "issuer": issuer,
        "tenant_id": profile.tenant_id,
        "client_id": profile.client_id,
        "scopes": list(profile.effective_scopes),
        "audience": profile.audience,
        "default_flow": profile.default_flow.value if profile.default_flow else "auto",
        "client_secret": "stored" if profile.has_client_secret else None,
        "docker_registries": list(profile.docker_registries) or None,
        "docker_username": profile.effective_docker_username if profile.docker_registries else None,
    }


@click.command("list-profiles")
@output_option
@click.pass_context
def command(ctx: click.Context, output: str) -> int:
    """List profiles: name, provider, issuer and client ID (* marks the default)."""
    env = env_of(ctx)
    profiles = profile_store(env).load()
    default = profiles.resolve_default(env.settings.profile)
    summaries = [profile_summary(p, is_default=p.name == default) for p in profiles.profiles]
    if output == "json":
        env.out(json.dumps(summaries, indent=2) + "\n")
        return int(ExitCode.OK)
    if not summaries:
        env.say("No profiles yet; create one with 'deviceflow create-profile'.")
        return int(ExitCode.OK)
    rows = [("", "NAME", "PROVIDER", "ISSUER", "CLIENT ID")] + [
        (
            "*" if s["default"] else "",
            str(s["name"]),
            str(s["provider"]),
            str(s["issuer"] or "-"),
            str(s["client_id"]),
        )
        for s in summaries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        env.out("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")
    return int(ExitCode.OK)

"""``deviceflow update-profile``: change a profile; tokens for its old settings are forgotten."""

from __future__ import annotations

from dataclasses import replace

import click

from deviceflow.cli.common import env_of, profile_store, resolve_profile, split_scopes, token_cache
from deviceflow.cli.exit_codes import CliError, ExitCode
from deviceflow.cli.profile_options import (
    docker_options,
    flow_setting,
    name_argument,
    read_secret,
    registries,
    settings_options,
)
from deviceflow.client.errors import ConfigurationError
from deviceflow.client.profiles import FlowKind, Profile, validate_profile_name
from deviceflow.client.providers import ProviderKind

__all__ = ["command"]


@click.command(
    "update-profile",
    epilog="""\b
Examples:
  deviceflow update-profile --name myapp --scope openid --scope offline_access
  deviceflow update-profile --name myapp --issuer https://id.example.com --provider oidc
  deviceflow update-profile --name myapp --rename production --set-default
  deviceflow update-profile --name myapp --docker-registry ghcr.io""",
)
@name_argument
@settings_options
@click.option("--rename", metavar="NEW_NAME", help="Give the profile a new name.")
@click.option(
    "--reset-scopes", is_flag=True, help="Go back to the provider's default scopes."
)
@click.option("--no-audience", is_flag=True, help="Remove the audience.")
@click.option("--no-client-secret", is_flag=True, help="Forget the stored client secret.")
@docker_options
@click.option(
    "--no-docker-registries", is_flag=True, help="Map no docker registries to this profile."
)
@click.pass_context
def command(
    ctx: click.Context,
    name_opt: str | None,
    name_arg: str | None,
    provider: str | None,
    issuer: str | None,
    tenant_id: str | None,
    client_id: str | None,
    scopes: tuple[str, ...],
    audience: str | None,
    default_flow: str | None,
    client_secret_stdin: bool,
    set_default: bool,
    rename: str | None,
    reset_scopes: bool,
    no_audience: bool,
    no_client_secret: bool,
    docker_registries: tuple[str, ...],
    docker_username: str | None,
    no_docker_registries: bool,
) -> int:
    """Change a profile's settings (only the options given change)."""
    env = env_of(ctx)
    if not (name_opt or name_arg):
        raise CliError("Which profile? Pass --name NAME.", ExitCode.USAGE)
    _profiles, old = resolve_profile(env, name_opt or name_arg)
    changes: dict[str, object] = {}
    if provider:
        changes["provider"] = ProviderKind(provider)
    if issuer is not None:
        changes["issuer"] = issuer or None
    if tenant_id is not None:
        changes["tenant_id"] = tenant_id or None
    if client_id:
        changes["client_id"] = client_id
    if scopes:
        changes["scopes"] = split_scopes(scopes)
    elif reset_scopes:
        changes["scopes"] = ()
    if audience:
        changes["audience"] = audience
    elif no_audience:
        changes["audience"] = None
    if default_flow:
        changes["default_flow"] = flow_setting(default_flow)
    if rename:
        changes["name"] = validate_profile_name(rename)
    secret = read_secret(env) if client_secret_stdin else None
    if secret is not None:
        changes["has_client_secret"] = True
    elif no_client_secret:
        changes["has_client_secret"] = False
    if docker_registries:
        changes["docker_registries"] = registries(docker_registries)  # replaces the list
    elif no_docker_registries:
        changes["docker_registries"] = ()
    if docker_username is not None:
        changes["docker_username"] = docker_username or None  # "" goes back to the default
    if not changes and not set_default:
        raise CliError("Nothing to change: give at least one option (see --help).", ExitCode.USAGE)
    new: Profile = replace(old, **changes)  # type: ignore[arg-type]
    try:
        new.validate()
    except ConfigurationError as exc:
        raise CliError(str(exc), ExitCode.CONFIG) from None
    cache = token_cache(env, notify=False)
    if secret is not None:
        cache.save_secret(new.name, secret)
    profile_store(env).replace(old.name, new, make_default=set_default)
    if rename and old.has_client_secret and secret is None and not no_client_secret:
        moved = cache.load_secret(old.name)
        if moved is not None:
            cache.save_secret(new.name, moved)
    if no_client_secret or rename:
        cache.delete_entry(cache.secret_name(old.name))
    forgot = False
    changed = _key_of(old) != _key_of(new) or rename or changes.get("scopes") is not None
    if changed and _key_of(old):
        # Tokens are keyed by issuer, client and profile: the old ones no longer apply (a
        # person's, and the client's own from client credentials).
        client_key = old.cache_key_for(FlowKind.CLIENT_CREDENTIALS).name
        forgot = bool(cache.delete_entry(old.cache_key.name) + cache.delete_entry(client_key))
    env.say(f"Profile '{new.name}' updated.")
    if forgot:
        env.say("Its cached tokens were for the old settings and were removed.")
    return int(ExitCode.OK)


def _key_of(profile: Profile) -> str | None:
    try:
        return profile.cache_key.name
    except ConfigurationError:
        return None

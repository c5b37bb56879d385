"""``deviceflow create-profile``: name a server + client pair for get-token."""

from __future__ import annotations

from dataclasses import dataclass

import click

from deviceflow.cli.common import env_of, profile_store, split_scopes, token_cache
from deviceflow.cli.context import Env
from deviceflow.cli.exit_codes import ExitCode
from deviceflow.cli.profile_options import (
    ask,
    docker_options,
    flow_setting,
    name_argument,
    read_secret,
    registries,
    settings_options,
)
from deviceflow.client.errors import ProfileExistsError
from deviceflow.client.profiles import Profile, validate_profile_name
from deviceflow.client.providers import LOCAL_DEFAULT_ISSUER, ProviderKind, provider_for

__all__ = ["CreateProfileOptions", "command", "run"]


@dataclass(frozen=True, slots=True)
class CreateProfileOptions:
    name: str | None = None
    provider: str | None = None
    issuer: str | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    scopes: tuple[str, ...] = ()
    audience: str | None = None
    default_flow: str | None = None
    client_secret_stdin: bool = False
    set_default: bool = False
    docker_registries: tuple[str, ...] = ()
    docker_username: str | None = None


def run(env: Env, options: CreateProfileOptions) -> Profile:
    store = profile_store(env)
    name = options.name or ask(env, "--name", "Profile name", default="default")
    validate_profile_name(name)
    existing = store.load()
    if name in existing.names():
        raise ProfileExistsError(name)
    if options.provider:
        kind = ProviderKind(options.provider)
    elif options.tenant_id:
        kind = ProviderKind.ENTRA  # --tenant-id alone means Entra (the seed's examples)
    elif env.can_prompt and not (options.issuer or options.client_id):
        # Only the bare wizard asks: a script that names the issuer or the client (the Raspberry
        # Pi example, run at a console) must not stop at a question it never expected.
        kind = ProviderKind(
            ask(env, "--provider", "Provider (" + "|".join(k.value for k in ProviderKind) + ")",
                default=ProviderKind.LOCAL.value)
        )
    else:
        kind = ProviderKind.LOCAL
    provider = provider_for(kind)
    tenant_id = options.tenant_id
    if provider.needs_tenant and not tenant_id:
        tenant_id = ask(env, "--tenant-id", "Tenant ID (GUID, domain or 'common')")
    issuer = options.issuer
    if provider.needs_issuer and not issuer:
        issuer = ask(env, "--issuer", f"Issuer URL (e.g. {provider.example_issuer})")
    elif kind is ProviderKind.LOCAL and not issuer and env.can_prompt and not options.client_id:
        issuer = ask(env, "--issuer", "Server URL", default=LOCAL_DEFAULT_ISSUER)
    client_id = options.client_id or ask(env, "--client-id", "Client ID")
    secret = read_secret(env) if options.client_secret_stdin else None
    profile = Profile(
        name=name,
        provider=kind,
        client_id=client_id,
        issuer=issuer if issuer != LOCAL_DEFAULT_ISSUER or options.issuer else None,
        tenant_id=tenant_id,
        scopes=options.scopes,
        audience=options.audience,
        default_flow=flow_setting(options.default_flow),
        has_client_secret=secret is not None,
        docker_registries=registries(options.docker_registries),
        docker_username=options.docker_username,
    ).validate()
    if secret is not None:
        token_cache(env).save_secret(profile.name, secret)
    store.add(profile, make_default=options.set_default)
    return profile


@click.command(
    "create-profile",
    epilog="""\b
Examples:
  deviceflow create-profile --name myapp --client-id my-device
  deviceflow create-profile --name work --tenant-id contoso.onmicrosoft.com \\
      --client-id 00000000-0000-0000-0000-000000000000 \\
      --scope https://graph.microsoft.com/User.Read
  deviceflow create-profile --name gh --provider github --client-id Iv1.abc123
  printf '%s\n' "$SECRET" | deviceflow create-profile --name ci-bot --client-id ci-bot \
      --issuer https://auth.example.com --default-flow client-credentials --client-secret-stdin
  deviceflow create-profile --name api --provider auth0 --issuer https://me.eu.auth0.com/ \\
      --client-id abc --audience https://api.example.com

In a terminal, missing answers are asked for; without one, the command fails and names them.""",
)
@name_argument
@settings_options
@docker_options
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
    docker_registries: tuple[str, ...],
    docker_username: str | None,
) -> int:
    """Create a profile (stored in profiles.toml in the user config dir)."""
    env = env_of(ctx)
    profile = run(
        env,
        CreateProfileOptions(
            name=name_opt or name_arg,
            provider=provider,
            issuer=issuer,
            tenant_id=tenant_id,
            client_id=client_id,
            scopes=split_scopes(scopes),
            audience=audience,
            default_flow=default_flow,
            client_secret_stdin=client_secret_stdin,
            set_default=set_default,
            docker_registries=docker_registries,
            docker_username=docker_username,
        ),
    )
    env.say(
        f"Profile '{profile.name}' created ({provider_for(profile.provider).title}, "
        f"{profile.effective_issuer}) in {profile_store(env).path}."
    )
    env.say(f"Next: deviceflow get-token --profile {profile.name}")
    return int(ExitCode.OK)

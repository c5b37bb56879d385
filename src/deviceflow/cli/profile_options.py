"""Options shared by create-profile and update-profile, and the prompts for missing answers."""

from __future__ import annotations

import click

from deviceflow.cli.common import F
from deviceflow.cli.context import Env
from deviceflow.cli.exit_codes import CliError, ExitCode
from deviceflow.client.profiles import FlowKind, normalize_registry
from deviceflow.client.providers import ProviderKind

__all__ = [
    "ask",
    "docker_options",
    "flow_setting",
    "name_argument",
    "read_secret",
    "registries",
    "settings_options",
]

PROVIDERS = [kind.value for kind in ProviderKind]
# "auto": no default of the profile's own; get-token picks per machine (docs/cli.md, "Flows").
DEFAULT_FLOWS = [*(kind.value for kind in FlowKind), "auto"]


def settings_options(func: F) -> F:
    """--provider --issuer --tenant-id --client-id --scope --audience --default-flow ..."""
    options = [
        click.option(
            "--provider",
            type=click.Choice(PROVIDERS),
            help="Identity provider: local is deviceflow's own server "
            "(default; entra when --tenant-id is given).",
        ),
        click.option(
            "--issuer",
            metavar="URL",
            help="Issuer URL, for discovery (local, oidc, okta, auth0, keycloak). https unless "
            "loopback. local defaults to http://127.0.0.1:8000.",
        ),
        click.option(
            "--tenant-id", metavar="TENANT", help="Entra tenant (GUID, domain or common)."
        ),
        click.option("--client-id", metavar="ID", help="OAuth client ID (a public client)."),
        click.option(
            "--scope",
            "-s",
            "scopes",
            multiple=True,
            metavar="SCOPE",
            help="Scope to request; repeat for several (default: the provider's usual scopes).",
        ),
        click.option("--audience", metavar="AUDIENCE", help="API audience (Auth0)."),
        click.option(
            "--default-flow",
            type=click.Choice(DEFAULT_FLOWS),
            help="Flow get-token uses without --flow (default: auto, the browser on a machine "
            "with a display and no SSH session, the device code otherwise).",
        ),
        click.option(
            "--client-secret-stdin",
            is_flag=True,
            help="Read a client secret from stdin (confidential clients, e.g. Google's); it is "
            "kept in the token store, never in the profiles file or argv.",
        ),
        click.option(
            "--set-default", is_flag=True, help="Make this the default profile."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def docker_options(func: F) -> F:
    """--docker-registry HOST (repeatable) and --docker-username NAME: the registries
    ``docker-credential-deviceflow`` answers with this profile's token (docs/cli.md, "docker")."""
    func = click.option(
        "--docker-username",
        metavar="NAME",
        help="Username docker sends with the token (default: oauth2accesstoken; Azure "
        "Container Registry: 00000000-0000-0000-0000-000000000000).",
    )(func)
    func = click.option(
        "--docker-registry",
        "docker_registries",
        multiple=True,
        metavar="HOST",
        help="Registry host whose docker credentials are this profile's token; repeat for "
        "several (see 'docker-credential-deviceflow').",
    )(func)
    return func


def registries(values: tuple[str, ...]) -> tuple[str, ...]:
    """--docker-registry values as hosts; a value that is none is kept so validation names it."""
    hosts = [normalize_registry(value) or value for value in values]
    return tuple(dict.fromkeys(hosts))


def name_argument(func: F) -> F:
    func = click.argument("name_arg", metavar="[NAME]", required=False)(func)
    func = click.option("--name", "-n", "name_opt", metavar="NAME", help="Profile name.")(func)
    return func


def ask(env: Env, option: str, question: str, *, default: str | None = None) -> str:
    """Ask for a missing answer at a terminal; without one, say which option is missing."""
    if not env.can_prompt:
        raise CliError(
            f"Missing {option} (there is no terminal to ask on).", ExitCode.USAGE
        )
    value = click.prompt(question, default=default, err=True, show_default=default is not None)
    text = str(value).strip()
    if not text:
        raise CliError(f"Missing {option}.", ExitCode.USAGE)
    return text


def flow_setting(value: str | None) -> FlowKind | None:
    """--default-flow as the profile stores it: absent or "auto" is no default of its own."""
    return FlowKind(value) if value and value != "auto" else None


def read_secret(env: Env) -> str:
    if env.can_prompt:
        value = click.prompt("Client secret", hide_input=True, err=True)
        secret = str(value).strip()
    else:
        secret = env.stdin.readline().strip()
    if not secret:
        raise CliError("No client secret on stdin.", ExitCode.USAGE)
    return secret

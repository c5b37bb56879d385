"""Pieces the user commands share: options, profile lookup, the token cache, prompting."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import click

from deviceflow.cli.context import Env, isatty
from deviceflow.cli.exit_codes import CliError, ExitCode
from deviceflow.client.cache import StoreKind, TokenCache
from deviceflow.client.profiles import Profile, ProfilesFile, ProfileStore

__all__ = [
    "WITHHELD",
    "F",
    "env_of",
    "output_option",
    "pick_profile",
    "profile_argument",
    "profile_option",
    "profile_store",
    "resolve_profile",
    "show_token_option",
    "split_scopes",
    "token_cache",
    "token_withheld",
]

F = TypeVar("F", bound=Callable[..., object])

WITHHELD = (
    "The token is not printed on a terminal; pass --show-token to print it, or send stdout to a "
    "pipe or a file (TOKEN=$(deviceflow get-token))."
)


def env_of(ctx: click.Context) -> Env:
    obj = ctx.find_object(Env)
    if obj is None:
        raise RuntimeError("the deviceflow group did not set up its environment")
    return obj


def profile_option(func: F) -> F:
    decorated: F = click.option(
        "--profile",
        "-p",
        "profile_name",
        metavar="NAME",
        help="Profile to use (default: $DEVICEFLOW_PROFILE, else the default profile).",
    )(func)
    return decorated


def profile_argument(func: F) -> F:
    """An optional positional profile name, the same as ``--profile`` (``get-token work``)."""
    decorated: F = click.argument("profile_arg", metavar="[PROFILE]", required=False)(func)
    return decorated


def pick_profile(option: str | None, argument: str | None) -> str | None:
    """The profile named by ``--profile`` or positionally; naming two different ones is a usage
    error rather than a silent choice."""
    if option and argument and option != argument:
        raise CliError(
            f"Name the profile once: '{argument}' and --profile '{option}' differ.",
            ExitCode.USAGE,
        )
    return option or argument


def output_option(func: F) -> F:
    decorated: F = click.option(
        "--output",
        "-o",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Output format.",
    )(func)
    return decorated


def split_scopes(values: Iterable[str]) -> tuple[str, ...]:
    """--scope may be repeated and each value may hold several space-separated scopes."""
    seen: list[str] = []
    for value in values:
        for scope in value.split():
            if scope not in seen:
                seen.append(scope)
    return tuple(seen)


def profile_store(env: Env) -> ProfileStore:
    return ProfileStore(env.settings.config_dir)


def resolve_profile(env: Env, name: str | None) -> tuple[ProfilesFile, Profile]:
    profiles = profile_store(env).load()
    chosen = name or profiles.resolve_default(env.settings.profile)
    if chosen is None:
        if not profiles.profiles:
            raise CliError(
                "No profiles yet; create one with "
                "'deviceflow create-profile --name NAME --client-id ID'.",
                ExitCode.CONFIG,
            )
        raise CliError(
            "Several profiles and no default: pass --profile NAME or set DEVICEFLOW_PROFILE "
            f"(profiles: {', '.join(profiles.names())}).",
            ExitCode.CONFIG,
        )
    return profiles, profiles.get(chosen)


def token_cache(env: Env, *, notify: bool | Callable[[str], None] = True) -> TokenCache:
    """The token cache; its one-time notices go to stderr, to ``notify``, or (False) nowhere."""
    sink = notify if callable(notify) else (env.say if notify else None)
    return TokenCache(env.settings.data_dir, StoreKind(env.settings.token_store), notify=sink)


def confirm(env: Env, question: str, *, default: bool = False) -> bool:
    if not env.can_prompt:
        return False
    return click.confirm(question, default=default, err=True)


def token_withheld(env: Env, show_token: bool, *, say: bool = True) -> bool:
    """True when stdout is a terminal and --show-token was not given: then no command prints a
    token (scrollback, screen shares), and (``say``) one line on stderr tells how to get it."""
    if show_token or not isatty(env.stdout):
        return False
    if say:
        env.say(WITHHELD)
    return True


def show_token_option(func: F) -> F:
    decorated: F = click.option(
        "--show-token",
        is_flag=True,
        help="Print the token even when stdout is a terminal.",
    )(func)
    return decorated

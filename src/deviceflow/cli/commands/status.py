"""``deviceflow status``: for each profile, signed in as whom, whether the tokens are still good,
and where they are kept.

A confidential profile (one with a client secret) asks the server with RFC 7662 introspection when
the server offers it; every other profile answers from the cache's own expiry, with no network.
Each line says which source it used.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import click

from deviceflow.cli.common import (
    env_of,
    output_option,
    pick_profile,
    profile_argument,
    profile_store,
    token_cache,
)
from deviceflow.cli.exit_codes import ExitCode
from deviceflow.cli.fastpath import format_expiry
from deviceflow.cli.signin import words_for
from deviceflow.client.cache import TokenCache
from deviceflow.client.core import account_from
from deviceflow.client.errors import CacheError, ConfigurationError
from deviceflow.client.profiles import Profile
from deviceflow.client.session import ActivitySource
from deviceflow.client.tokens import strip_control

__all__ = ["ProfileStatus", "command"]

_SOURCE = {
    ActivitySource.INTROSPECTION: "source: the server (introspection)",
    ActivitySource.LOCAL: "source: local expiry",
}


@dataclass(frozen=True, slots=True)
class ProfileStatus:
    profile: str
    default: bool
    issuer: str | None
    signed_in: bool
    account: str | None
    access_token_expires_at: str | None
    can_refresh: bool
    storage: str | None
    problem: str | None = None
    # True/False: active or not; None: not known (a refresh token's lifetime, checked locally).
    access_token_active: bool | None = None
    access_token_source: str | None = None  # "introspection" or "local"
    refresh_token_active: bool | None = None
    refresh_token_source: str | None = None
    local_because: str | None = None  # why the server was not asked, or what it refused


def _profile_status(
    cache: TokenCache, profile: Profile, default: bool, *, ask_server: bool
) -> ProfileStatus:
    from deviceflow.client.sync import DeviceFlowClient

    issuer = None
    try:
        issuer = profile.effective_issuer
        key = profile.cache_key_for(profile.default_flow)
        record = cache.load(key)
        storage = cache.where(key) if record is not None else None
        secret = cache.load_secret(profile.name) if profile.has_client_secret else None
    except (CacheError, ConfigurationError) as exc:
        return ProfileStatus(profile.name, default, issuer, False, None, None, False, None,
                             problem=str(exc))
    if record is None:
        return ProfileStatus(profile.name, default, issuer, False, None, None, False, None)
    with DeviceFlowClient(profile, cache=cache, client_secret=secret) as client:
        found = client.token_status(ask_server=ask_server)
    access = found.access_token if found else None
    refresh = found.refresh_token if found else None
    signed_in = any(a is not None and a.active is not False for a in (access, refresh))
    account = account_from(record)
    notes = [a.note for a in (access, refresh) if a is not None and a.note]
    return ProfileStatus(
        profile=profile.name,
        default=default,
        issuer=issuer,
        signed_in=signed_in,
        account=strip_control(account.display) if account and signed_in else None,
        access_token_expires_at=format_expiry(access.expires_at) if access else None,
        can_refresh=refresh is not None and refresh.active is not False,
        storage=storage,
        access_token_active=access.active if access else None,
        access_token_source=access.source.value if access else None,
        refresh_token_active=refresh.active if refresh else None,
        refresh_token_source=refresh.source.value if refresh else None,
        local_because=strip_control(notes[0]) if notes else None,
    )


def _access_line(s: ProfileStatus, now: float) -> str:
    source = _SOURCE[ActivitySource(s.access_token_source or "local")]
    if s.access_token_source is None:
        return "  Access token: none cached\n"
    if s.access_token_active is False and s.access_token_source == "introspection":
        return f"  Access token: not active at the server (revoked or expired) [{source}]\n"
    if s.access_token_expires_at:
        exp = _parse_iso(s.access_token_expires_at)
        when = f"expires in {words_for(exp - now)}" if exp > now else "expired"
        active = "active at the server, " if s.access_token_source == "introspection" else ""
        return f"  Access token: {active}{when} ({s.access_token_expires_at}) [{source}]\n"
    return f"  Access token: no expiry given by the server [{source}]\n"


def _refresh_line(s: ProfileStatus) -> str:
    if s.refresh_token_source is None:
        return "  Refresh token: none (sign in again later)\n"
    source = _SOURCE[ActivitySource(s.refresh_token_source)]
    if s.refresh_token_active is None:
        return f"  Refresh token: yes, renews silently [{source}: not checked]\n"
    if s.refresh_token_active:
        return f"  Refresh token: active at the server, renews silently [{source}]\n"
    return (
        "  Refresh token: not active at the server (revoked or expired); sign in again "
        f"[{source}]\n"
    )


@click.command("status")
@profile_argument
@click.option("--profile", "-p", "profile_name", metavar="NAME", help="Only this profile.")
@click.option(
    "--offline",
    is_flag=True,
    help="Only read the cache; don't ask the server (RFC 7662 introspection).",
)
@output_option
@click.pass_context
def command(
    ctx: click.Context,
    profile_arg: str | None,
    profile_name: str | None,
    offline: bool,
    output: str,
) -> int:
    """Show each profile: signed in as whom, whether its tokens are active, which storage."""
    env = env_of(ctx)
    profile_name = pick_profile(profile_name, profile_arg)
    profiles = profile_store(env).load()
    default = profiles.resolve_default(env.settings.profile)
    chosen = [profiles.get(profile_name)] if profile_name else list(profiles.profiles)
    cache = token_cache(env, notify=False)
    statuses = [
        _profile_status(cache, p, p.name == default, ask_server=not offline) for p in chosen
    ]
    if output == "json":
        env.out(json.dumps([asdict(s) for s in statuses], indent=2) + "\n")
        return int(ExitCode.OK)
    if not statuses:
        env.say("No profiles yet; create one with 'deviceflow create-profile'.")
        return int(ExitCode.OK)
    now = time.time()
    for s in statuses:
        mark = " (default)" if s.default else ""
        env.out(f"{s.profile}{mark}: {s.issuer or '-'}\n")
        if s.problem:
            env.out(f"  Problem: {s.problem}\n")
        elif not s.signed_in and "introspection" not in (
            s.access_token_source, s.refresh_token_source
        ):
            env.out("  Not signed in.\n")
        else:
            if s.signed_in:
                env.out(f"  Signed in as {s.account}\n")
            else:
                env.out("  Signed out at the server: sign in again.\n")
            env.out(_access_line(s, now))
            env.out(_refresh_line(s))
            if s.local_because:
                env.out(f"  Local expiry used because {s.local_because.rstrip('.')}.\n")
            env.out(f"  Stored in: {s.storage}\n")
    return int(ExitCode.OK)


def _parse_iso(text: str) -> float:
    import calendar

    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))

"""``deviceflow status``: for each profile, signed in as whom, until when, and where the tokens
are kept. Reads the cache only; never contacts a server."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import click

from deviceflow.cli.common import env_of, output_option, profile_store, token_cache
from deviceflow.cli.exit_codes import ExitCode
from deviceflow.cli.fastpath import format_expiry
from deviceflow.cli.signin import words_for
from deviceflow.client.core import account_from
from deviceflow.client.errors import CacheError, ConfigurationError
from deviceflow.client.tokens import strip_control

__all__ = ["ProfileStatus", "command"]


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


@click.command("status")
@click.option("--profile", "-p", "profile_name", metavar="NAME", help="Only this profile.")
@output_option
@click.pass_context
def command(ctx: click.Context, profile_name: str | None, output: str) -> int:
    """Show each profile: signed in as whom, until when, which storage."""
    env = env_of(ctx)
    profiles = profile_store(env).load()
    default = profiles.resolve_default(env.settings.profile)
    chosen = [profiles.get(profile_name)] if profile_name else list(profiles.profiles)
    cache = token_cache(env, notify=False)
    now = time.time()
    statuses: list[ProfileStatus] = []
    for profile in chosen:
        issuer = None
        try:
            issuer = profile.effective_issuer
            key = profile.cache_key
            record = cache.load(key)
            storage = cache.where(key) if record is not None else None
        except (CacheError, ConfigurationError) as exc:
            statuses.append(
                ProfileStatus(profile.name, profile.name == default, issuer, False, None, None,
                              False, None, problem=str(exc))
            )
            continue
        account = account_from(record)
        latest = max(
            (e.token.expires_at for e in record.tokens if e.token.expires_at is not None),
            default=None,
        ) if record is not None else None
        signed_in = record is not None and (
            bool(record.refresh_token)
            or any(e.token.is_fresh(now, margin=0) for e in record.tokens)
        )
        statuses.append(
            ProfileStatus(
                profile=profile.name,
                default=profile.name == default,
                issuer=issuer,
                signed_in=signed_in,
                account=strip_control(account.display) if account and signed_in else None,
                access_token_expires_at=format_expiry(latest),
                can_refresh=bool(record and record.refresh_token),
                storage=storage,
            )
        )
    if output == "json":
        env.out(json.dumps([asdict(s) for s in statuses], indent=2) + "\n")
        return int(ExitCode.OK)
    if not statuses:
        env.say("No profiles yet; create one with 'deviceflow create-profile'.")
        return int(ExitCode.OK)
    for s in statuses:
        mark = " (default)" if s.default else ""
        env.out(f"{s.profile}{mark}: {s.issuer or '-'}\n")
        if s.problem:
            env.out(f"  Problem: {s.problem}\n")
        elif not s.signed_in:
            env.out("  Not signed in.\n")
        else:
            env.out(f"  Signed in as {s.account}\n")
            if s.access_token_expires_at:
                exp = _parse_iso(s.access_token_expires_at)
                when = (
                    f"expires in {words_for(exp - now)}" if exp > now else "expired"
                )
                env.out(f"  Access token: {when} ({s.access_token_expires_at})\n")
            else:
                env.out("  Access token: no expiry given by the server\n")
            refresh = "yes, renews silently" if s.can_refresh else "none (sign in again later)"
            env.out(f"  Refresh token: {refresh}\n")
            env.out(f"  Stored in: {s.storage}\n")
    return int(ExitCode.OK)


def _parse_iso(text: str) -> float:
    import calendar

    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))

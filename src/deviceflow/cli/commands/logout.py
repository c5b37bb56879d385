"""``deviceflow logout``: revoke at the server (RFC 7009) when it offers revocation, refresh token
first, then forget the tokens locally even if revocation failed, and say token by token what the
server did. Exit code 11 (``NOT_REVOKED``) when a revocation failed."""

from __future__ import annotations

import json
from dataclasses import dataclass

import click

from deviceflow.cli.common import (
    env_of,
    output_option,
    pick_profile,
    profile_argument,
    profile_store,
    resolve_profile,
    token_cache,
)
from deviceflow.cli.context import Env
from deviceflow.cli.exit_codes import CliError, ExitCode
from deviceflow.client.profiles import Profile
from deviceflow.client.session import LogoutResult, RevocationStatus, TokenRevocation
from deviceflow.client.tokens import strip_control

__all__ = ["ProfileLogout", "command", "logout_profile"]

_SAID = {
    RevocationStatus.REVOKED: "revoked at the server",
    RevocationStatus.FAILED: "NOT revoked: the server could not revoke it",
    RevocationStatus.NOT_OFFERED: "not revoked: the server offers no revocation endpoint",
    RevocationStatus.NOT_REVOCABLE: "not revoked: the server does not revoke this kind of token",
    RevocationStatus.EXPIRED: "already expired, nothing to revoke",
}
# Still valid at the server until it expires (a failure, or no way to revoke it).
_STAYS_VALID = (
    RevocationStatus.FAILED,
    RevocationStatus.NOT_OFFERED,
    RevocationStatus.NOT_REVOCABLE,
)


@dataclass(frozen=True, slots=True)
class ProfileLogout:
    profile: str
    result: LogoutResult

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.NOT_REVOKED if self.result.failed else ExitCode.OK

    def as_json(self) -> dict[str, object]:
        return {
            "profile": self.profile,
            "signed_in": bool(self.result.removed),
            "forgotten_from": list(self.result.removed),
            "revocation_endpoint": self.result.revocation_endpoint,
            "tokens": [
                {
                    "token_type_hint": r.token_type_hint,
                    "scopes": list(r.scopes),
                    "status": r.status.value,
                    "detail": r.detail,
                }
                for r in self.result.revocations
            ],
        }


def logout_profile(env: Env, profile: Profile) -> ProfileLogout:
    """Log one profile out: revoke what the server can revoke, then forget everything locally."""
    from deviceflow.client.sync import DeviceFlowClient

    cache = token_cache(env, notify=False)
    secret = cache.load_secret(profile.name) if profile.has_client_secret else None
    with DeviceFlowClient(profile, cache=cache, client_secret=secret) as client:
        return ProfileLogout(profile.name, client.logout())


def _line(revocation: TokenRevocation) -> str:
    said = _SAID[revocation.status]
    if revocation.detail:
        said += f" ({strip_control(revocation.detail).rstrip('.')})"
    return f"  {revocation.kind[:1].upper()}{revocation.kind[1:]}: {said}.\n"


def render(env: Env, outcome: ProfileLogout) -> None:
    result = outcome.result
    if not result.removed:
        env.say(f"Profile '{outcome.profile}': not signed in.")
        return
    text = f"Profile '{outcome.profile}':\n"
    text += "".join(_line(r) for r in result.revocations)
    text += f"  Tokens forgotten locally: {', '.join(result.removed)}.\n"
    if any(r.status in _STAYS_VALID for r in result.revocations):
        text += "  What was not revoked stays valid at the server until it expires.\n"
    env.say(text.rstrip("\n"))


@click.command("logout")
@profile_argument
@click.option("--profile", "-p", "profile_name", metavar="NAME", help="Profile to log out.")
@click.option("--all", "all_profiles", is_flag=True, help="Log out of every profile.")
@output_option
@click.pass_context
def command(
    ctx: click.Context,
    profile_arg: str | None,
    profile_name: str | None,
    all_profiles: bool,
    output: str,
) -> int:
    """Revoke the profile's tokens at the server (if it supports RFC 7009) and forget them."""
    env = env_of(ctx)
    profile_name = pick_profile(profile_name, profile_arg)
    if profile_name and all_profiles:
        raise CliError("Use either a profile name or --all, not both.", ExitCode.USAGE)
    if all_profiles:
        profiles = list(profile_store(env).load().profiles)
        if not profiles and output == "text":
            env.say("No profiles.")
    else:
        profiles = [resolve_profile(env, profile_name)[1]]
    outcomes = [logout_profile(env, profile) for profile in profiles]
    if output == "json":
        env.out(json.dumps([o.as_json() for o in outcomes], indent=2) + "\n")
    else:
        for outcome in outcomes:
            render(env, outcome)
    return int(max((o.exit_code for o in outcomes), default=ExitCode.OK))

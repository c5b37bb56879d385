"""``deviceflow inspect``: decode a JWT's header and claims and say when it expires.

It decodes only: the signature is NOT verified, and the output says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import click

from deviceflow.cli.common import env_of, output_option, resolve_profile, token_cache
from deviceflow.cli.context import Env, isatty
from deviceflow.cli.exit_codes import CliError, ExitCode
from deviceflow.cli.fastpath import format_expiry
from deviceflow.cli.signin import words_for
from deviceflow.client.tokens import decode_jwt_unverified, strip_control

__all__ = ["command", "expiry_words"]

NOT_VERIFIED = "Signature NOT verified: this shows what the token claims, not that it is genuine."
TIME_CLAIMS = ("exp", "iat", "nbf", "auth_time")


def expiry_words(exp: float | None, now: float) -> str:
    if exp is None:
        return "no expiry (no 'exp' claim)"
    when = format_expiry(exp)
    if exp > now:
        return f"expires in {words_for(exp - now)} ({when})"
    return f"expired {words_for(now - exp)} ago ({when})"


def _cached_token(env: Env, profile_name: str | None, id_token: bool) -> str:
    _profiles, profile = resolve_profile(env, profile_name)
    record = token_cache(env, notify=False).load(profile.cache_key_for(profile.default_flow))
    if record is None:
        raise CliError(
            f"Profile '{profile.name}' has no cached token; run 'deviceflow get-token "
            f"--profile {profile.name}' first.",
            ExitCode.NOT_SIGNED_IN,
        )
    if id_token:
        if not record.id_token:
            raise CliError(f"Profile '{profile.name}' has no ID token.", ExitCode.NOT_SIGNED_IN)
        return record.id_token
    if not record.tokens:
        raise CliError(f"Profile '{profile.name}' has no access token.", ExitCode.NOT_SIGNED_IN)
    return record.tokens[0].token.access_token


def _clean(value: object) -> object:
    """Claims are attacker-controlled text: strip control characters before display."""
    if isinstance(value, str):
        return strip_control(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {strip_control(str(k)): _clean(v) for k, v in value.items()}
    return value


@click.command(
    "inspect",
    epilog="""\b
Examples:
  deviceflow get-token | deviceflow inspect -
  deviceflow inspect --profile myapp
  deviceflow inspect --profile myapp --id-token --output json""",
)
@click.argument("token", required=False, metavar="[TOKEN | -]")
@click.option("--profile", "-p", "profile_name", metavar="NAME",
              help="Inspect the profile's cached access token instead.")
@click.option("--id-token", is_flag=True, help="With --profile: the cached ID token.")
@output_option
@click.pass_context
def command(
    ctx: click.Context,
    token: str | None,
    profile_name: str | None,
    id_token: bool,
    output: str,
) -> int:
    """Decode a JWT (argument, '-' or piped stdin, or a profile's cached token) and show its
    header, claims and expiry. The signature is not verified."""
    env = env_of(ctx)
    if token == "-" or (token is None and profile_name is None and not isatty(env.stdin)):
        token = env.stdin.read().strip()
    elif token is None:
        token = _cached_token(env, profile_name, id_token)
    elif token:
        env.say("Tip: pipe the token ('... | deviceflow inspect -') to keep it out of the "
                "process list and shell history.")
    if not token:
        raise CliError("No token given.", ExitCode.USAGE)
    try:
        parts = decode_jwt_unverified(token)
    except ValueError as exc:
        raise CliError(
            f"Cannot decode this token: {exc}. Opaque tokens can only be checked by the "
            "server that issued them.",
            ExitCode.NOT_A_JWT,
        ) from None
    now = time.time()
    exp = parts.expires_at()
    if output == "json":
        document = {
            "header": dict(parts.header),
            "claims": dict(parts.claims),
            "expires_at": format_expiry(exp),
            "expired": exp is not None and exp <= now,
            "signature_verified": False,
        }
        env.out(json.dumps(document, indent=2, ensure_ascii=True) + "\n")
        return int(ExitCode.OK)
    header = _clean(dict(parts.header))
    claims = _clean(dict(parts.claims))
    assert isinstance(header, Mapping)
    assert isinstance(claims, Mapping)
    env.out("Header:\n" + _indent(json.dumps(header, indent=2, ensure_ascii=False)) + "\n")
    env.out("Claims:\n" + _indent(json.dumps(claims, indent=2, ensure_ascii=False)) + "\n")
    for claim in TIME_CLAIMS:
        value = claims.get(claim)
        if isinstance(value, int | float) and not isinstance(value, bool):
            env.out(f"  {claim}: {format_expiry(float(value))}\n")
    env.out(f"Expiry: {expiry_words(exp, now)}\n")
    env.out(NOT_VERIFIED + "\n")
    return int(ExitCode.OK)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())

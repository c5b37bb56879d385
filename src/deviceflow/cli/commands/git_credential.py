"""``deviceflow git-credential get|store|erase``: a git credential helper backed by a profile.

Speaks git's credential helper protocol (gitcredentials(7), git-credential(1) "INPUT/OUTPUT
FORMAT"): git writes ``key=value`` lines and a blank line on stdin; for ``get`` the helper writes
``key=value`` lines on stdout. The access token is the password (HTTP Basic with a fixed user
name, which hosts such as GitHub and GitLab accept for OAuth tokens), or, when git announces
``capability[]=authtype`` (git 2.46+) and the server accepts Bearer, a ready-made
``Authorization: Bearer`` credential. ``password_expiry_utc`` (git 2.41+; older git ignores
unknown keys) tells git when to stop using it.

Never reads anything but the credential description from stdin: a needed sign-in is drawn on
the controlling terminal (/dev/tty) when there is one, else the helper answers nothing so git
moves on to its next helper or prompt. ``store`` is a no-op (the token is ours, in our cache);
``erase`` (git rejected the credential) drops the cached access token and keeps the refresh
token, so the next ``get`` refreshes silently. Other actions are ignored, as the protocol asks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TextIO

import click

from deviceflow.cli.common import (
    env_of,
    profile_option,
    resolve_profile,
    show_token_option,
    token_cache,
    token_withheld,
)
from deviceflow.cli.context import Env
from deviceflow.cli.exit_codes import CliError, ExitCode
from deviceflow.client.profiles import Profile
from deviceflow.client.tokens import TokenSet

__all__ = ["CredentialRequest", "answer_lines", "command", "host_allowed", "parse_request"]

DEFAULT_USERNAME = "oauth2"
MAX_INPUT = 64 * 1024  # git's descriptions are a few hundred bytes
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


class _SignInNeeded(Exception):
    """Raised from the event callback: a device-flow sign-in would start and nobody can see it."""


@dataclass(frozen=True, slots=True)
class CredentialRequest:
    """The attributes git sent, in order (``key[]`` attributes may repeat)."""

    attributes: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str | None:
        for name, value in reversed(self.attributes):  # git: a later value overrides
            if name == key:
                return value
        return None

    def values(self, key: str) -> tuple[str, ...]:
        return tuple(value for name, value in self.attributes if name == key)


def _malformed(reason: str) -> CliError:
    return CliError(f"git-credential: malformed input from git ({reason}).", ExitCode.USAGE)


def parse_request(stream: TextIO) -> CredentialRequest:
    """Read ``key=value`` lines up to a blank line or the end of input."""
    attributes: list[tuple[str, str]] = []
    total = 0
    while True:
        line = stream.readline(MAX_INPUT + 1)
        total += len(line)
        if total > MAX_INPUT:
            raise _malformed("more than 64 KiB")
        if line in ("", "\n"):
            break
        line = line.removesuffix("\n")
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise _malformed("a line is not key=value")
        if "\0" in line:
            raise _malformed("a NUL byte")
        attributes.append((key, value))
    return CredentialRequest(tuple(attributes))


def host_allowed(request: CredentialRequest) -> bool:
    """HTTPS anywhere; plain HTTP only to this machine (the token would cross the network in
    clear text otherwise)."""
    protocol = request.get("protocol")
    if protocol == "https":
        return True
    if protocol != "http":
        return False
    host = (request.get("host") or "").lower()
    # host is "name[:port]"; an IPv6 literal keeps its brackets.
    name = host.split("]", 1)[0] + "]" if host.startswith("[") else host.split(":", 1)[0]
    return name in LOOPBACK_HOSTS


def _wants_bearer(request: CredentialRequest) -> bool:
    if "authtype" not in request.values("capability[]"):
        return False
    challenges = request.values("wwwauth[]")
    # No challenge known (e.g. `git credential fill`): offer Bearer, git asked for it.
    return not challenges or any(c.lower().startswith("bearer") for c in challenges)


def answer_lines(request: CredentialRequest, token: TokenSet, username: str | None) -> list[str]:
    """The ``get`` answer: Bearer for git 2.46+ when the server takes it, else Basic."""
    lines: list[str] = []
    if _wants_bearer(request):
        lines += [
            "capability[]=authtype",
            "authtype=Bearer",
            f"credential={token.access_token}",
            "ephemeral=1",
        ]
    else:
        lines += [
            f"username={username or request.get('username') or DEFAULT_USERNAME}",
            f"password={token.access_token}",
        ]
    if token.expires_at is not None:
        lines.append(f"password_expiry_utc={int(token.expires_at)}")
    if any("\n" in line or "\0" in line for line in lines):
        # A newline would let a value inject attributes into git's credential.
        raise CliError("git-credential: the token or user name contains a line break.")
    return lines


def _token(env: Env, profile: Profile) -> TokenSet | None:
    from deviceflow.cli.signin import make_view
    from deviceflow.cli.terminal import controlling_terminal
    from deviceflow.client.core import TokenRequest
    from deviceflow.client.errors import CancelledByUserError
    from deviceflow.client.flow import Event, ShowCode
    from deviceflow.client.sync import DeviceFlowClient

    cache = token_cache(env)
    secret = cache.load_secret(profile.name) if profile.has_client_secret else None
    if profile.has_client_secret and secret is None:
        raise CliError(
            f"Profile '{profile.name}' needs its client secret, which is missing from the token "
            "store.",
            ExitCode.CONFIG,
        )
    with controlling_terminal(env) as tty_env:
        view = make_view(tty_env, show_qr=True) if tty_env is not None else None

        def on_event(event: Event) -> None:
            if view is None:
                if isinstance(event, ShowCode):
                    raise _SignInNeeded
                return
            view.on_event(event)

        with DeviceFlowClient(
            profile, cache=cache, client_secret=secret, on_event=on_event, on_notice=env.say
        ) as client:
            if view is None:
                record = cache.load(profile.cache_key)
                cached = client.options.cached(record, TokenRequest())
                # Nothing cached and nothing to refresh with: don't even ask for a device code.
                if cached is None and (record is None or not record.refresh_token):
                    return None
            try:
                try:
                    token = client.get_token()
                finally:
                    if view is not None:
                        view.close()
            except _SignInNeeded:
                return None
            except KeyboardInterrupt:
                raise CancelledByUserError() from None
        if view is not None:
            view.succeeded(profile.name)
    return token


def _erase(env: Env, profile: Profile, request: CredentialRequest) -> None:
    cache = token_cache(env)
    rejected = request.get("password") or request.get("credential")
    with cache.locked(profile.cache_key):
        record = cache.load(profile.cache_key)
        if record is None:
            return
        keep = tuple(
            e for e in record.tokens if rejected is not None and e.token.access_token != rejected
        )
        if keep != record.tokens:
            cache.save(replace(record, tokens=keep))


@click.command(
    "git-credential",
    epilog="""\b
Configuration (copy-paste):
  git config --global credential.https://git.example.com.helper \\
      '!deviceflow git-credential --profile myapp'
  # or, with the git-credential-deviceflow script on PATH:
  git config --global credential.https://git.example.com.helper 'deviceflow --profile myapp'

Scope the helper to the host that accepts this profile's tokens: git asks every configured
helper for every host it talks to.""",
)
@profile_option
@click.option(
    "--username",
    metavar="NAME",
    help=f"User name sent with the token (default: the one in the URL, else {DEFAULT_USERNAME}; "
    "GitHub tokens want x-access-token).",
)
@click.argument("action", metavar="get|store|erase")
@show_token_option
@click.pass_context
def command(
    ctx: click.Context,
    profile_name: str | None,
    username: str | None,
    action: str,
    show_token: bool,
) -> int:
    """Git credential helper: answer git with this profile's access token."""
    env = env_of(ctx)
    request = parse_request(env.stdin)
    if action not in ("get", "erase"):
        return int(ExitCode.OK)  # store, and operations added to git later: ignore
    if not host_allowed(request):
        if action == "get":
            env.say(
                "deviceflow git-credential: not sending a token over "
                f"{request.get('protocol') or 'an unknown protocol'} to "
                f"{request.get('host') or 'an unknown host'} (HTTPS, or HTTP to this machine only)."
            )
        return int(ExitCode.OK)
    _profiles, profile = resolve_profile(env, profile_name)
    if action == "erase":
        _erase(env, profile, request)
        return int(ExitCode.OK)
    token = _token(env, profile)
    if token is None:
        env.say(
            f"deviceflow git-credential: profile '{profile.name}' needs a sign-in; run "
            f"'deviceflow get-token --profile {profile.name}' in a terminal."
        )
        return int(ExitCode.OK)
    if not token_withheld(env, show_token):
        env.out("".join(line + "\n" for line in answer_lines(request, token, username)))
    return int(ExitCode.OK)

"""``deviceflow get-token``: print an access token, signing in if needed (device code,
interactive browser or client credentials; cli/flows.py picks the flow and the secret).

Options → run → typed result → renderer: ``run`` returns a ``TokenResult``; ``render`` prints the
token (text) or its JSON on stdout, and nothing else goes to stdout. A cached token with more than
a minute left is usually answered by cli/fastpath.py before this module is even imported.

On a terminal the token is not printed unless ``--show-token`` says so (scrollback and screen
shares keep what a terminal shows); a pipe, a file or ``$(…)`` gets it as always.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import click

from deviceflow.cli.common import (
    WITHHELD,
    env_of,
    pick_profile,
    profile_argument,
    profile_option,
    resolve_profile,
    show_token_option,
    split_scopes,
    token_cache,
    token_withheld,
)
from deviceflow.cli.context import Env
from deviceflow.cli.exit_codes import CliError, ExitCode, exit_code_for
from deviceflow.cli.fastpath import token_json
from deviceflow.cli.flows import FLOW_CHOICES, FlowView, client_secret, pick_flow
from deviceflow.cli.signin import SignIn, open_sign_in
from deviceflow.client.errors import CacheCorruptError, CancelledByUserError, DeviceFlowError

__all__ = ["GetTokenOptions", "TokenResult", "command", "render", "run"]


@dataclass(frozen=True, slots=True)
class GetTokenOptions:
    profile: str | None = None
    scopes: tuple[str, ...] = ()
    audience: str | None = None
    output: str = "text"
    force: bool = False
    show_qr: bool = True
    timeout: float | None = None
    sign_in: bool = True  # False: cache or silent refresh only (SignInRequiredError otherwise)
    prompt: bool = True  # False: never ask on stdin (kubectl and docker own it)
    events: bool = False  # --output events: JSON lines on stderr instead of the box or lines
    events_fd: int | None = None  # --events-fd N: JSON lines on descriptor N as well
    # get-token itself: say where the person sees the sign-in (a notice) when stdout is a
    # terminal and the token will not be printed there (--show-token not given).
    show_token: bool | None = None
    flow: str | None = None  # None: the profile's default_flow, else chosen for this machine
    client_secret_stdin: bool = False


@dataclass(frozen=True, slots=True)
class TokenResult:
    profile: str
    access_token: str = field(repr=False)
    token_type: str
    expires_at: float | None
    scope: tuple[str, ...] | None
    id_token: str | None = field(repr=False)


def run(env: Env, options: GetTokenOptions) -> TokenResult:
    with open_sign_in(
        env, show_qr=options.show_qr, events=options.events, events_fd=options.events_fd
    ) as sign_in:
        try:
            return _run(env, options, sign_in)
        except KeyboardInterrupt:
            cancelled = CancelledByUserError()
            _report(env, sign_in, cancelled)
            raise cancelled from None
        except (CliError, DeviceFlowError) as exc:
            _report(env, sign_in, exc)
            raise


def _report(env: Env, sign_in: SignIn, exc: CliError | DeviceFlowError) -> None:
    sign_in.failed(int(exit_code_for(exc)), str(exc))
    if sign_in.events_on_stderr:
        env.failure_reported = True


def _run(env: Env, options: GetTokenOptions, sign_in: SignIn) -> TokenResult:
    from deviceflow.client.sync import DeviceFlowClient

    _profiles, profile = resolve_profile(env, options.profile)
    cache = token_cache(env, notify=sign_in.notice)
    choice = pick_flow(env, options.flow, profile)
    secret = client_secret(
        env, profile, cache, choice.flow, from_stdin=options.client_secret_stdin
    )
    view = FlowView(env, sign_in, choice)
    force = options.force
    with DeviceFlowClient(
        profile,
        cache=cache,
        client_secret=secret,
        on_event=view.on_event,
        on_notice=sign_in.notice,
    ) as client:
        while True:
            try:
                try:
                    token = client.get_token(
                        options.scopes,
                        audience=options.audience,
                        force=force,
                        timeout=options.timeout,
                        sign_in=options.sign_in,
                        flow=choice.flow,
                    )
                finally:
                    view.close()
                break
            except KeyboardInterrupt:
                raise CancelledByUserError() from None
            except CacheCorruptError as exc:
                sign_in.notice(str(exc))
                if force or not options.prompt or not _offer_fresh_sign_in(env):
                    raise CliError(
                        "Not signing in while the token cache is unusable.", ExitCode.CACHE
                    ) from None
                force = True
        key = profile.cache_key_for(choice.flow)
        record = client.options.cache.load(key) if client.options.cache else None
    if options.show_token is not None and token_withheld(env, options.show_token, say=False):
        sign_in.notice(WITHHELD)
    view.succeeded(profile.name)  # last: the events' final line is succeeded or failed
    return TokenResult(
        profile=profile.name,
        access_token=token.access_token,
        token_type=token.token_type,
        expires_at=token.expires_at,
        scope=token.scope,
        id_token=record.id_token if record is not None else token.id_token,
    )


def _offer_fresh_sign_in(env: Env) -> bool:
    if not env.can_prompt:
        return False
    return click.confirm("Sign in again and replace it?", default=False, err=True)


def render(env: Env, result: TokenResult, output: str, *, show_token: bool = False) -> None:
    if token_withheld(env, show_token, say=False):
        return  # run() said so, where the person sees the sign-in
    if output in ("json", "events"):
        env.out(
            token_json(
                access_token=result.access_token,
                token_type=result.token_type,
                expires_at=result.expires_at,
                scope=result.scope,
                id_token=result.id_token,
                profile=result.profile,
                now=time.time(),
            )
        )
    else:
        env.out(result.access_token + "\n")


@click.command(
    "get-token",
    epilog="""\b
Examples:
  deviceflow get-token --flow device-code --profile myapp
  deviceflow get-token --flow interactive-browser myapp
  deviceflow get-token --flow client-credentials ci-bot      # secret stored with the profile
  vault read -field=secret ci | deviceflow get-token --flow client-credentials \
      --client-secret-stdin ci-bot
  deviceflow get-token myapp
  deviceflow get-token --scope https://graph.microsoft.com/User.Read
  TOKEN=$(deviceflow get-token --output json | jq -r .access_token)
  deviceflow get-token --output events 2>events.jsonl   # the sign-in as JSON lines

A cached token valid for more than a minute is printed at once; otherwise the refresh token is
used silently; otherwise the flow signs in: without --flow and a profile default, the browser on a
machine with a display and no SSH session, the device code otherwise (said on stderr). The
device code's instructions appear on stderr (on the terminal, /dev/tty, when stderr is
captured). On a terminal the token itself is printed only with --show-token.""",
)
@profile_argument
@profile_option
@click.option(
    "--flow",
    type=click.Choice(FLOW_CHOICES),
    default=None,
    help="How to sign in (default: the profile's default flow, else interactive-browser on a "
    "machine with a display and no SSH session, device-code otherwise).",
)
@click.option(
    "--client-secret-stdin",
    is_flag=True,
    help="Read the client secret from stdin (one line) for this run; else "
    "$DEVICEFLOW_CLIENT_SECRET, else the one stored with the profile.",
)
@click.option(
    "--scope",
    "-s",
    "scopes",
    multiple=True,
    metavar="SCOPE",
    help="Scope to request; repeat for several (default: the profile's scopes).",
)
@click.option("--audience", metavar="AUDIENCE", help="API audience to request (Auth0).")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json", "events"]),
    default="text",
    show_default=True,
    help="text: the token; json: the token's JSON; events: the JSON on stdout and the sign-in "
    "as JSON lines on stderr (docs/cli.md, Sign-in events).",
)
@click.option(
    "--events-fd",
    type=click.IntRange(min=0),
    metavar="N",
    help="Also write the sign-in events as JSON lines on file descriptor N (e.g. 3 with "
    "'3>events.jsonl').",
)
@show_token_option
@click.option("--force", is_flag=True, help="Ignore cached and refresh tokens; sign in again.")
@click.option("--no-qr", is_flag=True, help="Don't draw the QR code.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Give up waiting for the sign-in after this many seconds (default: when the code "
    "expires).",
)
@click.pass_context
def command(
    ctx: click.Context,
    profile_arg: str | None,
    profile_name: str | None,
    flow: str | None,
    client_secret_stdin: bool,
    scopes: tuple[str, ...],
    audience: str | None,
    output: str,
    events_fd: int | None,
    show_token: bool,
    force: bool,
    no_qr: bool,
    timeout: float | None,
) -> int:
    """Print an access token for a profile (stdout); sign in if needed.

    --output text prints the token alone; --output json prints access_token, token_type,
    expires_at (ISO 8601 UTC), expires_in, scope, id_token (when present) and profile. The
    refresh token is never printed. On a terminal the token is withheld unless --show-token.
    """
    env = env_of(ctx)
    options = GetTokenOptions(
        profile=pick_profile(profile_name, profile_arg),
        scopes=split_scopes(scopes),
        audience=audience,
        output=output,
        force=force,
        show_qr=not no_qr,
        timeout=timeout,
        events=output == "events",
        events_fd=events_fd,
        show_token=show_token,
        flow=flow,
        client_secret_stdin=client_secret_stdin,
    )
    result = run(env, options)
    render(env, result, output, show_token=show_token)
    return int(ExitCode.OK)

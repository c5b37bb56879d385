"""``deviceflow exec``: run a command with the access token in one environment variable.

The token never appears in any process's arguments (``ps`` and /proc/<pid>/cmdline show them to
every user of the machine), nor on stdout or stderr: it is handed over in the environment, which
only the same user (and root) can read.

After the token is in hand (cached, silently refreshed, or after a sign-in drawn on stderr), the
command *replaces* this process (``execvpe``) instead of running as its child. So there is
nothing to forward: signals sent to the pid, or by the terminal to the foreground process group,
reach the command itself; its exit status, including death by a signal (the shell's 128+N), is
the status its parent sees; and no lock or file of ours stays open (Python opens files
non-inheritable, PEP 446, and the cache lock is released before the exec).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping

import click

from deviceflow.cli.common import env_of, profile_option, split_scopes
from deviceflow.cli.exit_codes import CliError, ExitCode

__all__ = ["DEFAULT_ENV_VAR", "child_environment", "command", "valid_env_name"]

DEFAULT_ENV_VAR = "ACCESS_TOKEN"
# POSIX.1-2017 Base Definitions §8.1: portable names are letters, digits and underscore, not
# starting with a digit.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

Exec = Callable[[str, list[str], dict[str, str]], object]


def _execvpe(file: str, args: list[str], env: dict[str, str]) -> object:
    os.execvpe(file, args, env)  # noqa: S606 - running the command is the point


# Replaced by tests that run the command in-process (a real exec would replace pytest).
execvpe: Exec = _execvpe


def valid_env_name(name: str) -> bool:
    return _ENV_NAME.match(name) is not None


def child_environment(environ: Mapping[str, str], name: str, token: str) -> dict[str, str]:
    """This environment plus the token in ``name`` (replacing any value it had)."""
    child = dict(environ)
    child[name] = token
    return child


def _env_var(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not valid_env_name(value):
        raise click.BadParameter(
            "must be a POSIX environment variable name (letters, digits and '_', not starting "
            "with a digit).",
            ctx=ctx,
            param=param,
        )
    return value


@click.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    epilog="""\b
Examples:
  deviceflow exec -- ./deploy.sh
  deviceflow exec --profile myapp --env-var GITHUB_TOKEN -- gh api user
  deviceflow exec -- sh -c 'curl -sS -H @- https://api.example.com/me <<EOF
  Authorization: Bearer $ACCESS_TOKEN
  EOF'

The token goes into one environment variable, never into the command's arguments. Exit
status: the command's own (it replaces deviceflow); 127 when it is not found, 126 when it
cannot be run.""",
)
@profile_option
@click.option(
    "--env-var",
    "env_var",
    default=DEFAULT_ENV_VAR,
    show_default=True,
    metavar="NAME",
    callback=_env_var,
    help="Environment variable that receives the access token.",
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
@click.option("--no-qr", is_flag=True, help="Don't draw the QR code.")
@click.argument("argv", nargs=-1, type=click.UNPROCESSED, metavar="-- COMMAND [ARG]...")
@click.pass_context
def command(
    ctx: click.Context,
    profile_name: str | None,
    env_var: str,
    scopes: tuple[str, ...],
    audience: str | None,
    no_qr: bool,
    argv: tuple[str, ...],
) -> int:
    """Run COMMAND with an access token in $ACCESS_TOKEN (or --env-var NAME).

    The token comes from the cache, a silent refresh, or a device-flow sign-in shown on stderr
    before the command starts; it is never put in the command's arguments.
    """
    from deviceflow.cli.commands.get_token import GetTokenOptions, run

    if not argv:
        raise click.UsageError("Missing the command to run: deviceflow exec -- COMMAND [ARG]...")
    if argv[0].startswith("-"):
        # Unknown options pass through to the command (so its own options need no quoting):
        # one before the command is a misspelt option of ours, not a program to run.
        raise click.UsageError(
            f"No such option: {argv[0]} (the command goes after --: "
            "deviceflow exec [OPTIONS] -- COMMAND [ARG]...)")
    env = env_of(ctx)
    result = run(
        env,
        GetTokenOptions(
            profile=profile_name,
            scopes=split_scopes(scopes),
            audience=audience,
            show_qr=not no_qr,
        ),
    )
    child_env = child_environment(env.environ, env_var, result.access_token)
    # Our buffered output would be lost by the exec (the sign-in view's last lines).
    env.stdout.flush()
    env.stderr.flush()
    try:
        execvpe(argv[0], list(argv), child_env)
    except FileNotFoundError:
        raise CliError(
            f"Command not found: {argv[0]}", ExitCode.COMMAND_NOT_FOUND
        ) from None
    except OSError as exc:
        # Shells answer 126 for a command that exists but cannot be run (not executable, a
        # directory, a bad interpreter line).
        reason = exc.strerror or type(exc).__name__
        raise CliError(
            f"Cannot run {argv[0]}: {reason}.", ExitCode.COMMAND_NOT_EXECUTABLE
        ) from None
    return int(ExitCode.OK)  # only reached when execvpe is a test double

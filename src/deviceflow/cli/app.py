"""The click group behind ``deviceflow`` (lazy commands) and the in-process runner.

``invoke`` turns every outcome into a documented exit code and one plain sentence on stderr:
click usage errors (2), client errors (see exit_codes.py), Ctrl+C (130), anything unexpected (1,
with the traceback only under --debug).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
from collections.abc import Iterator, Sequence

import click

from deviceflow import __version__
from deviceflow.cli.context import Env
from deviceflow.cli.exit_codes import CliError, ExitCode, exit_code_for
from deviceflow.cli.main import COMMANDS, OPERATOR_COMMANDS, USER_COMMANDS
from deviceflow.client.errors import DeviceFlowError

__all__ = ["LazyGroup", "build_cli", "invoke"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LazyGroup(click.Group):
    """A group whose commands are imported only when they run (or their --help is asked)."""

    def __init__(self, *args: object, lazy: dict[str, tuple[str, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.lazy)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.lazy.get(cmd_name)
        if entry is None:
            return None
        module_name, _help = entry
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            raise CliError(
                f"The '{cmd_name}' command is not available in this installation.",
                ExitCode.FAILURE,
            ) from None
        command = module.command
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}.command is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the map: listing commands must not import them.
        sections = (("User commands", USER_COMMANDS), ("Operator commands", OPERATOR_COMMANDS))
        for title, table in sections:
            rows = [(name, help_text) for name, (_module, help_text) in table.items()]
            with formatter.section(title):
                formatter.write_dl(rows)


def _debug_logging(env: Env) -> None:
    handler = logging.StreamHandler(env.stderr)
    handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
    logger = logging.getLogger("deviceflow")
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False


EPILOG = """\b
Examples:
  deviceflow create-profile --name myapp --client-id my-device
  deviceflow get-token --flow device-code --profile myapp
  TOKEN=$(deviceflow get-token --output json | jq -r .access_token)

Environment: DEVICEFLOW_PROFILE, DEVICEFLOW_CONFIG_DIR, DEVICEFLOW_DATA_DIR,
DEVICEFLOW_TOKEN_STORE (auto|keyring|file), DEVICEFLOW_DEBUG. Exit codes: docs/cli.md.
"""


def build_cli() -> click.Group:
    @click.group(
        cls=LazyGroup,
        lazy=COMMANDS,
        context_settings=CONTEXT_SETTINGS,
        epilog=EPILOG,
        invoke_without_command=False,
    )
    @click.version_option(
        __version__, "-V", "--version", prog_name="deviceflow", message="%(prog)s %(version)s"
    )
    @click.option(
        "--debug",
        is_flag=True,
        help="Log HTTP exchanges to stderr (tokens and secrets are always redacted).",
    )
    @click.pass_context
    def cli(ctx: click.Context, debug: bool) -> None:
        """deviceflow: OAuth 2.0 device authorization (RFC 8628) server, CLI and library.

        Get tokens for scripts from any provider with the device flow, from a terminal, an SSH
        session, a container or a Raspberry Pi. Prompts and progress go to stderr; only the token
        (or its JSON) goes to stdout.
        """
        env = ctx.obj if isinstance(ctx.obj, Env) else Env.current()
        try:
            env.debug = debug or env.settings.debug
        except ValueError as exc:  # e.g. DEVICEFLOW_TOKEN_STORE=bogus
            raise CliError(str(exc), ExitCode.CONFIG) from None
        if env.debug:
            _debug_logging(env)
        ctx.obj = env

    return cli


def _show(env: Env, message: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr closed: nothing more to say
        env.say(message)


@contextlib.contextmanager
def _streams(env: Env) -> Iterator[None]:
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = env.stdin, env.stdout, env.stderr
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


def invoke(argv: Sequence[str], *, env: Env | None = None) -> int:
    """Run the CLI in-process and return the exit code."""
    env = env or Env.current()
    group = build_cli()
    try:
        # click writes help, version and prompts to sys.std*: point them at the injected streams.
        with _streams(env):
            result = group.main(
                args=list(argv),
                prog_name="deviceflow",
                standalone_mode=False,
                obj=env,
            )
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort as exc:
        cancelled = isinstance(exc.__cause__, KeyboardInterrupt)
        _show(env, "Cancelled." if cancelled else "Aborted.")
        return int(ExitCode.CANCELLED if cancelled else ExitCode.FAILURE)
    except click.ClickException as exc:
        exc.show(file=env.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        _show(env, "\nCancelled.")
        return int(ExitCode.CANCELLED)
    except (CliError, DeviceFlowError) as exc:
        if not env.failure_reported:
            _show(env, str(exc))
        return int(exit_code_for(exc))
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BrokenPipeError:
        return int(ExitCode.FAILURE)
    except Exception as exc:
        if env.debug:
            import traceback

            traceback.print_exc(file=env.stderr)
        _show(
            env,
            f"Unexpected error ({type(exc).__name__}); run with --debug for the details.",
        )
        return int(ExitCode.FAILURE)
    if isinstance(result, int):
        return result
    return int(ExitCode.OK)

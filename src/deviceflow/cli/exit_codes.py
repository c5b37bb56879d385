"""Exit codes of the ``deviceflow`` command (documented in docs/cli.md).

Stable: scripts branch on them. 2 is click's usage error; 126, 127 and 130 are the shell's
conventions (cannot run, not found, SIGINT = 128 + 2). ``deviceflow exec`` otherwise exits with
its command's own status, which may be any of these numbers.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click

__all__ = ["CliError", "ExitCode", "config_error", "exit_code_for"]


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # anything not listed below
    USAGE = 2  # bad options or arguments, or a needed answer with no terminal to ask on
    CONFIG = 3  # missing/invalid profile or configuration, insecure issuer
    ACCESS_DENIED = 4  # the person denied the sign-in
    EXPIRED = 5  # the device code expired, or --timeout ran out
    NETWORK = 6  # the server could not be reached
    SERVER = 7  # the server refused the request or answered something invalid
    CACHE = 8  # the token cache is unreadable/corrupt, or the required keyring is unavailable
    NOT_A_JWT = 9  # inspect: the token cannot be decoded
    NOT_SIGNED_IN = 10  # status/inspect: no cached token; kube-credential/docker: sign-in needed
    NOT_REVOKED = 11  # logout: forgotten locally, but the server failed to revoke a token
    COMMAND_NOT_EXECUTABLE = 126  # exec: the command exists but cannot be run (shell convention)
    COMMAND_NOT_FOUND = 127  # exec: no such command (shell convention)
    CANCELLED = 130  # Ctrl+C


class CliError(Exception):
    """A failure with its sentence and exit code, raised by commands and shown by main."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILURE) -> None:
        super().__init__(message)
        self.code = code


def config_error(message: str) -> click.ClickException:
    """A configuration refusal shown like click's errors ("Error: …") with exit code 3."""
    import click  # here, not at the top: the cached get-token path imports this module

    class ConfigError(click.ClickException):
        exit_code = ExitCode.CONFIG

    return ConfigError(message)


def exit_code_for(exc: BaseException) -> ExitCode:
    """The documented exit code for a client error."""
    from deviceflow.client import errors

    table: tuple[tuple[type[BaseException], ExitCode], ...] = (
        (CliError, ExitCode.FAILURE),
        (errors.CancelledByUserError, ExitCode.CANCELLED),
        (errors.SignInRequiredError, ExitCode.NOT_SIGNED_IN),
        (errors.AccessDeniedError, ExitCode.ACCESS_DENIED),
        (errors.ExpiredTokenError, ExitCode.EXPIRED),
        (errors.TimedOutError, ExitCode.EXPIRED),
        (errors.CacheError, ExitCode.CACHE),
        (errors.ConfigurationError, ExitCode.CONFIG),
        (errors.NetworkError, ExitCode.NETWORK),
        (errors.DiscoveryError, ExitCode.SERVER),
        (errors.ServerResponseError, ExitCode.SERVER),
        (errors.OAuthError, ExitCode.SERVER),
    )
    if isinstance(exc, CliError):
        return exc.code
    for cls, code in table:
        if isinstance(exc, cls):
            return code
    return ExitCode.FAILURE

"""The ``deviceflow`` command: one entry point for users' and operators' commands.

Commands load lazily from ``COMMANDS`` (name → module, short help): ``deviceflow --help`` imports
none of them, and a cached ``get-token`` is answered by ``fastpath`` before click is even
imported. Each command module exposes a module-level ``command`` (click.Command or click.Group).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from deviceflow.cli.context import Env

__all__ = ["COMMANDS", "OPERATOR_COMMANDS", "USER_COMMANDS", "git_credential_main", "main", "run"]

USER_COMMANDS: dict[str, tuple[str, str]] = {
    "get-token": (
        "deviceflow.cli.commands.get_token",
        "Print an access token; sign in with the device flow when needed.",
    ),
    "create-profile": ("deviceflow.cli.commands.create_profile", "Create a profile."),
    "list-profiles": ("deviceflow.cli.commands.list_profiles", "List profiles."),
    "show-profile": ("deviceflow.cli.commands.show_profile", "Show a profile's settings."),
    "update-profile": ("deviceflow.cli.commands.update_profile", "Change a profile."),
    "delete-profile": (
        "deviceflow.cli.commands.delete_profile",
        "Delete a profile and its cached tokens.",
    ),
    "logout": (
        "deviceflow.cli.commands.logout",
        "Revoke (when the server can) and forget a profile's tokens.",
    ),
    "status": (
        "deviceflow.cli.commands.status",
        "Show each profile: signed in as whom, until when, which storage.",
    ),
    "inspect": (
        "deviceflow.cli.commands.inspect_token",
        "Decode a JWT's header and claims (signature not verified).",
    ),
    "kube-credential": (
        "deviceflow.cli.commands.kube_credential",
        "Print an ExecCredential for kubectl (an exec credential plugin).",
    ),
    "docker-credential": (
        "deviceflow.cli.commands.docker_credential",
        "A docker credential helper (as docker-credential-deviceflow).",
    ),
    "exec": (
        "deviceflow.cli.commands.exec_token",
        "Run a command with the access token in an environment variable.",
    ),
    "git-credential": (
        "deviceflow.cli.commands.git_credential",
        "Git credential helper: give git the access token (get|store|erase).",
    ),
}

OPERATOR_COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("deviceflow.cli.commands.serve", "Run the deviceflow authorization server."),
    "demo": (
        "deviceflow.cli.commands.demo",
        "Run the embedded server and a device login against it.",
    ),
    "user": ("deviceflow.cli.commands.user", "Manage the server's users."),
    "client": (
        "deviceflow.cli.commands.client_admin",
        "Manage the OAuth clients registered with the server.",
    ),
    "db": ("deviceflow.cli.commands.db", "Manage the server's database."),
    "audit": ("deviceflow.cli.commands.audit", "Show the audit log."),
    "keys": ("deviceflow.cli.commands.keys", "Rotate and list the token signing keys."),
    "sessions": (
        "deviceflow.cli.commands.sessions",
        "List and sign out the devices people have signed in.",
    ),
}

COMMANDS: dict[str, tuple[str, str]] = {**USER_COMMANDS, **OPERATOR_COMMANDS}


def run(argv: Sequence[str], *, env: Env | None = None) -> int:
    """Run the CLI in-process and return its exit code (never calls sys.exit)."""
    from deviceflow.cli.app import invoke

    return invoke(list(argv), env=env)


def main() -> None:
    """Console entry point."""
    argv = sys.argv[1:]
    try:
        if argv[:1] == ["get-token"]:
            from deviceflow.cli.fastpath import try_cached_get_token

            code = try_cached_get_token(argv)
            if code is not None:
                sys.exit(code)
        sys.exit(run(argv))
    except KeyboardInterrupt:
        # Ctrl+C before the command's own handler was in place (e.g. while importing).
        sys.stderr.write("\nCancelled.\n")
        sys.exit(130)


def git_credential_main() -> None:
    """``git-credential-deviceflow``: what git runs for ``credential.helper deviceflow``."""
    sys.exit(run(["git-credential", *sys.argv[1:]]))


def __getattr__(name: str) -> object:
    # ``deviceflow.cli.main.cli`` is the click group, built on first access (imports click).
    if name == "cli":
        from deviceflow.cli.app import build_cli

        return build_cli()
    raise AttributeError(f"module 'deviceflow.cli.main' has no attribute '{name}'")

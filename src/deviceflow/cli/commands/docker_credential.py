"""``docker-credential-deviceflow`` (and ``deviceflow docker-credential``): a docker credential
helper that answers with a profile's access token.

The docker-credential-helpers protocol: docker runs ``docker-credential-<name> <action>``, writes
the action's input on stdin and reads its answer on stdout; a failure is a message on stdout and
a non-zero exit, and docker recognises the fixed messages ``credentials not found in native
keychain`` and ``no credentials server URL``.

- ``get``: stdin holds the server URL; the answer is ``{"ServerURL", "Username", "Secret"}`` with
  the access token of the profile that maps that registry (``--docker-registry``), from the cache
  or a silent refresh, else the device flow with its instructions on stderr. An unmapped
  registry is "credentials not found in native keychain", exit 1.
- ``store``: stdin holds the credentials ``docker login`` would save; deviceflow owns the tokens,
  so it checks the JSON, stores nothing and succeeds.
- ``erase``: drops the mapped profile's cached access tokens (``docker logout``); the refresh
  token stays, so the next ``get`` refreshes silently (``deviceflow logout`` forgets it all).
- ``list``: ``{"<registry>": "<username>"}`` for every mapped registry.

Our own failures are one sentence on stderr (docker shows the helper's stderr); the token only
ever appears in ``Secret``. Nothing asks questions: docker owns stdin.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace

import click

from deviceflow import __version__
from deviceflow.cli.common import (
    env_of,
    profile_store,
    show_token_option,
    token_cache,
    token_withheld,
)
from deviceflow.cli.context import Env, isatty
from deviceflow.cli.exit_codes import CliError, ExitCode
from deviceflow.client.profiles import Profile

__all__ = [
    "ACTIONS",
    "MISSING_SERVER_URL",
    "NOT_FOUND",
    "PROGRAM",
    "RegistryCredentials",
    "command",
    "main",
]

PROGRAM = "docker-credential-deviceflow"
ACTIONS = ("get", "store", "erase", "list", "version")
# The protocol's fixed messages (docker-credential-helpers credentials/error.go): docker
# matches them on stdout to tell "no credentials" and "no server URL" from a failure.
NOT_FOUND = "credentials not found in native keychain"
MISSING_SERVER_URL = "no credentials server URL"
MAX_INPUT = 64 * 1024  # a server URL or one credentials object; more is not docker talking


@dataclass(frozen=True, slots=True)
class RegistryCredentials:
    server_url: str
    username: str
    secret: str = field(repr=False)

    def to_json(self) -> str:
        body = {"ServerURL": self.server_url, "Username": self.username, "Secret": self.secret}
        return json.dumps(body, separators=(",", ":")) + "\n"


class ProtocolAnswer(Exception):
    """A fixed protocol message for stdout, with exit 1 (what docker expects from helpers)."""


def _read_input(env: Env) -> str:
    text = env.stdin.read(MAX_INPUT + 1)
    if len(text) > MAX_INPUT:
        raise CliError(f"The input on stdin is over {MAX_INPUT} characters.", ExitCode.USAGE)
    return text


def _server_url(env: Env) -> str:
    server_url = _read_input(env).strip()
    if not server_url:
        raise ProtocolAnswer(MISSING_SERVER_URL)
    return server_url


def _mapped(env: Env, server_url: str) -> Profile:
    profile = profile_store(env).load().for_registry(server_url)
    if profile is None:
        raise ProtocolAnswer(NOT_FOUND)
    return profile


def get(env: Env) -> RegistryCredentials:
    from deviceflow.cli.commands.get_token import GetTokenOptions
    from deviceflow.cli.commands.get_token import run as get_token

    server_url = _server_url(env)
    profile = _mapped(env, server_url)
    result = get_token(env, GetTokenOptions(profile=profile.name, prompt=False))
    return RegistryCredentials(server_url, profile.effective_docker_username, result.access_token)


def store(env: Env) -> None:
    text = _read_input(env)
    try:
        data = json.loads(text)
    except ValueError:
        raise CliError("The credentials on stdin are not JSON.", ExitCode.USAGE) from None
    if not isinstance(data, dict) or not isinstance(data.get("ServerURL"), str):
        raise CliError(
            "The credentials on stdin are not an object with a ServerURL.", ExitCode.USAGE
        )
    profile = profile_store(env).load().for_registry(data["ServerURL"])
    if profile is None:
        env.say(
            "deviceflow stores no passwords and no profile maps this registry; map it with "
            "'deviceflow update-profile --name NAME --docker-registry HOST'."
        )
    else:
        env.say(f"Nothing stored: profile '{profile.name}' provides this registry's token.")


def erase(env: Env) -> None:
    profile = _mapped(env, _server_url(env))
    cache = token_cache(env)
    key = profile.cache_key
    with cache.locked(key):
        record = cache.load(key)
        if record is not None and record.tokens:
            cache.save(replace(record, tokens=()))


def registry_list(env: Env) -> dict[str, str]:
    if not isatty(env.stdin):
        _read_input(env)  # docker writes "unused"; take it so its write never fails
    mapping: dict[str, str] = {}
    for profile in profile_store(env).load().profiles:
        for host in profile.docker_registries:
            mapping[host] = profile.effective_docker_username
    return mapping


@click.command(
    "docker-credential",
    epilog="""\b
Examples (docker runs it as docker-credential-deviceflow; see docs/cli.md, "docker"):
  echo ghcr.io | docker-credential-deviceflow get
  docker-credential-deviceflow list""",
)
@click.argument("action", metavar="get|store|erase|list|version")
@show_token_option
@click.pass_context
def command(ctx: click.Context, action: str, show_token: bool) -> int:
    """A docker credential helper: a profile's access token for the registries it maps."""
    env = env_of(ctx)
    try:
        if action == "get":
            credentials = get(env)
            if not token_withheld(env, show_token):
                env.out(credentials.to_json())
        elif action == "store":
            store(env)
        elif action == "erase":
            erase(env)
        elif action == "list":
            env.out(json.dumps(registry_list(env), separators=(",", ":")) + "\n")
        elif action == "version":
            env.out(f"{PROGRAM} (deviceflow) {__version__}\n")
        else:
            raise CliError(
                f"Unknown credential action; use one of {', '.join(ACTIONS)}.", ExitCode.USAGE
            )
    except ProtocolAnswer as answer:
        env.out(f"{answer}\n")
        return int(ExitCode.FAILURE)
    return int(ExitCode.OK)


def main() -> None:
    """The ``docker-credential-deviceflow`` console script."""
    from deviceflow.cli.main import run

    try:
        sys.exit(run(["docker-credential", *sys.argv[1:]]))
    except KeyboardInterrupt:
        sys.stderr.write("\nCancelled.\n")
        sys.exit(130)


if __name__ == "__main__":
    main()

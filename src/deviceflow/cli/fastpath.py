"""The cached ``get-token`` fast path: answer from the file cache before importing click.

Scripts call ``deviceflow get-token`` in loops, so a cached answer must cost little more than
starting Python. This module imports only ``os``, ``sys``, ``time`` and the C ``_json`` scanner (the
``json`` package would pull in ``re`` and ``enum``, a third of the budget): it reads the
profile index (``.profiles-index.json``, written by ``ProfileStore`` and stamped with the TOML
file's identity) and the profile's token file, and prints a token that is valid for more than a
minute, unless stdout is a terminal (shown there only with ``--show-token``; the full CLI says so
otherwise). Anything unusual (another option, a stale index, the keyring store, an expired or
missing token, any error) returns ``None`` and the full CLI takes over, which gives the same
answer or the proper message. It never writes anything.

The directory rules repeat platformdirs' XDG rules for Linux and the BSDs (a unit test pins them
to platformdirs); other platforms always take the full path.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

__all__ = [
    "dumps_flat",
    "format_expiry",
    "loads",
    "token_json",
    "try_cached_get_token",
    "xdg_dir",
]

MARGIN = 60.0  # "a cached token still valid for more than a minute comes back at once"
INDEX_VERSION = 1
RECORD_VERSION = 1


class _ScannerContext:
    """What ``_json.make_scanner`` reads from ``json.JSONDecoder``; strict JSON, no NaN."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}  # noqa: RUF012 - the C scanner keeps its own memo

    def parse_constant(self, name: str) -> object:
        raise ValueError(f"{name} is not JSON")


def loads(raw: bytes) -> Any:
    """Strict JSON, parsed by the C scanner that ``json.loads`` itself uses."""
    import _json

    text = raw.decode("utf-8").strip()
    try:
        # typeshed types the context as make_scanner itself; any object with its attributes works.
        scanner = _json.make_scanner(_ScannerContext())  # type: ignore[arg-type]
        value, end = scanner(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("trailing data")
    return value


def _json_value(value: object) -> str:
    import _json

    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps_flat(body: Mapping[str, object]) -> str:
    """``json.dumps(body, indent=2)`` for a flat object (str, int, float, bool, None values)."""
    import _json

    if not body:
        return "{}"
    items = [f"  {_json.encode_basestring_ascii(k)}: {_json_value(v)}" for k, v in body.items()]
    return "{\n" + ",\n".join(items) + "\n}"


def format_expiry(expires_at: float | None) -> str | None:
    """ISO 8601 UTC, second precision: 2025-01-31T12:00:00Z."""
    if expires_at is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at))


def token_json(
    *,
    access_token: str,
    token_type: str,
    expires_at: float | None,
    scope: Sequence[str] | None,
    id_token: str | None,
    profile: str,
    now: float,
) -> str:
    """The ``get-token --output json`` document (the refresh token is never printed)."""
    body: dict[str, object] = {
        "access_token": access_token,
        "token_type": token_type,
        "expires_at": format_expiry(expires_at),
        "expires_in": None if expires_at is None else max(0, int(expires_at - now)),
        "scope": None if scope is None else " ".join(scope),
    }
    if id_token:
        body["id_token"] = id_token
    body["profile"] = profile
    return dumps_flat(body) + "\n"


def xdg_dir(env: Mapping[str, str], variable: str, fallback: str) -> str:
    """platformdirs' Unix rule: $XDG_*_HOME if set and not blank, else ~/<fallback>."""
    base = env.get(variable, "").strip()
    if not base:
        base = os.path.expanduser(fallback)
    return os.path.join(base, "deviceflow")


def _parse(argv: Sequence[str]) -> tuple[str | None, list[str], str, bool] | None:
    """(profile, scopes, output, show_token) for the options the fast path understands."""
    show_token = False
    profile: str | None = None
    scopes: list[str] = []
    output = "text"
    positional: str | None = None
    takes_value = {"--profile", "-p", "--scope", "-s", "--output", "-o", "--flow", "--timeout"}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--no-qr", "--show-token"):
            show_token = show_token or arg == "--show-token"
            i += 1
            continue
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
            i += 1
        elif arg in takes_value:
            if i + 1 >= len(argv):
                return None
            name, value = arg, argv[i + 1]
            i += 2
        elif not arg.startswith("-") and positional is None:
            # ``get-token work``: the profile named positionally, as --profile.
            positional = arg
            i += 1
            continue
        else:
            return None
        if name in ("--profile", "-p"):
            profile = value
        elif name in ("--scope", "-s"):
            scopes.extend(value.split())
        elif name in ("--output", "-o"):
            if value not in ("text", "json"):
                return None
            output = value
        elif name == "--flow":
            # A person's tokens only: the client's own (client credentials) are kept elsewhere.
            if value not in ("device-code", "interactive-browser"):
                return None
        elif name == "--timeout":
            try:
                if not float(value) > 0:
                    return None
            except ValueError:
                return None
        else:
            return None
    if positional is not None:
        if profile is not None and profile != positional:
            return None  # the full CLI says this is a usage error
        profile = positional
    return profile, scopes, output, show_token


def _stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def try_cached_get_token(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int | None:
    """Print a cached token and return 0, or return None to run the full CLI."""
    try:
        return _try(argv, os.environ if env is None else env)
    except Exception:
        return None


def _try(argv: Sequence[str], env: Mapping[str, str]) -> int | None:
    if not argv or argv[0] != "get-token":
        return None
    if not (sys.platform.startswith("linux") or "bsd" in sys.platform):
        return None
    parsed = _parse(argv[1:])
    if parsed is None:
        return None
    profile, scopes, output, show_token = parsed
    if not show_token and os.isatty(1):
        return None  # a terminal: the full CLI withholds the token and says how to get it
    store = env.get("DEVICEFLOW_TOKEN_STORE", "").strip().lower() or "auto"
    if store not in ("auto", "file"):
        return None
    if env.get("DEVICEFLOW_DEBUG", "").strip().lower() in ("1", "true", "yes", "on"):
        return None

    config_dir = env.get("DEVICEFLOW_CONFIG_DIR", "").strip()
    config_dir = os.path.expanduser(config_dir) if config_dir else xdg_dir(
        env, "XDG_CONFIG_HOME", "~/.config"
    )
    with open(os.path.join(config_dir, ".profiles-index.json"), "rb") as handle:
        index = loads(handle.read())
    if index.get("version") != INDEX_VERSION:
        return None
    if index.get("stamp") != _stamp(os.path.join(config_dir, "profiles.toml")):
        return None
    name = profile or env.get("DEVICEFLOW_PROFILE", "").strip() or index.get("default")
    entry = index["profiles"].get(name) if isinstance(name, str) else None
    if not isinstance(entry, dict):
        return None
    # The same scopes the full CLI would ask for (Profile.scopes_for).
    wanted = set(scopes) | set(entry["always_scopes"]) if scopes else set(entry["scopes"])
    audience = entry["audience"]

    data_dir = env.get("DEVICEFLOW_DATA_DIR", "").strip()
    data_dir = os.path.expanduser(data_dir) if data_dir else xdg_dir(
        env, "XDG_DATA_HOME", "~/.local/share"
    )
    with open(os.path.join(data_dir, "tokens", entry["name"] + ".json"), "rb") as handle:
        record = loads(handle.read())
    if record.get("version") != RECORD_VERSION or record.get("profile") != name:
        return None
    now = time.time()
    for item in record["tokens"]:
        expires_at = item["expires_at"]
        if item["audience"] != audience or not wanted <= set(item["requested_scopes"]):
            continue
        if expires_at is not None and expires_at - now <= MARGIN:
            continue
        access_token = item["access_token"]
        if not isinstance(access_token, str) or not access_token:
            return None
        if output == "json":
            text = token_json(
                access_token=access_token,
                token_type=item["token_type"],
                expires_at=expires_at,
                scope=item["scope"],
                id_token=record.get("id_token"),
                profile=name,
                now=now,
            )
        else:
            text = access_token + "\n"
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            return 1
        return 0
    return None

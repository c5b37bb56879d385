"""Client-side settings (the CLI and the library), read from the environment.

A plain frozen dataclass rather than a pydantic-settings model: the CLI reads these on every run,
including the cached ``get-token`` that must answer in tens of milliseconds, and importing pydantic
costs more than that whole budget. Each field still carries its description (``metadata``), and
``document()`` renders the same table shape as the server settings for docs/configuration.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

__all__ = ["APP_NAME", "TOKEN_STORES", "ClientSettings", "document"]

APP_NAME = "deviceflow"
TOKEN_STORES = ("auto", "keyring", "file")


def _user_config_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def _user_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True, slots=True)
class ClientSettings:
    config_dir: Path = field(
        default_factory=_user_config_dir,
        metadata={
            "env": "DEVICEFLOW_CONFIG_DIR",
            "default": "the user config dir (~/.config/deviceflow on Linux)",
            "description": "Directory holding profiles.toml.",
        },
    )
    data_dir: Path = field(
        default_factory=_user_data_dir,
        metadata={
            "env": "DEVICEFLOW_DATA_DIR",
            "default": "the user data dir (~/.local/share/deviceflow on Linux)",
            "description": "Directory holding token cache files (0700) and lock files.",
        },
    )
    token_store: str = field(
        default="auto",
        metadata={
            "env": "DEVICEFLOW_TOKEN_STORE",
            "default": "auto",
            "description": "Where tokens are kept: `auto` (the OS keyring when one answers "
            "within 3 seconds, else 0600 files, announced once), `keyring` (required) or `file`.",
        },
    )
    profile: str | None = field(
        default=None,
        metadata={
            "env": "DEVICEFLOW_PROFILE",
            "default": "",
            "description": "Profile used when a command gets no --profile.",
        },
    )
    client_secret: str | None = field(
        default=None,
        repr=False,
        metadata={
            "env": "DEVICEFLOW_CLIENT_SECRET",
            "default": "",
            "description": "The client secret for `get-token` (client credentials; Google and "
            "GitHub browser sign-ins), instead of the one stored with the profile. Never "
            "accepted as a command-line option.",
        },
    )
    debug: bool = field(
        default=False,
        metadata={
            "env": "DEVICEFLOW_DEBUG",
            "default": "0",
            "description": "Same as --debug: log HTTP exchanges to stderr (tokens redacted).",
        },
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientSettings:
        env = os.environ if environ is None else environ

        def path(name: str) -> Path | None:
            value = env.get(name, "").strip()
            return Path(value).expanduser() if value else None

        store = env.get("DEVICEFLOW_TOKEN_STORE", "").strip().lower() or "auto"
        if store not in TOKEN_STORES:
            raise ValueError(
                f"DEVICEFLOW_TOKEN_STORE must be one of {', '.join(TOKEN_STORES)}, not '{store}'."
            )
        config_dir = path("DEVICEFLOW_CONFIG_DIR") or _user_config_dir()
        data_dir = path("DEVICEFLOW_DATA_DIR") or _user_data_dir()
        return cls(
            config_dir=config_dir,
            data_dir=data_dir,
            token_store=store,
            profile=env.get("DEVICEFLOW_PROFILE", "").strip() or None,
            client_secret=env.get("DEVICEFLOW_CLIENT_SECRET", "").strip() or None,
            debug=env.get("DEVICEFLOW_DEBUG", "").strip().lower() in ("1", "true", "yes", "on"),
        )


def document() -> str:
    """Markdown table of the client settings, for docs/configuration.md."""
    lines = [
        "## Client (`deviceflow get-token` and the other user commands)",
        "",
        "| environment | default | description |",
        "| --- | --- | --- |",
    ]
    for item in fields(ClientSettings):
        meta = item.metadata
        default = meta.get("default") or "—"
        shown = default if default.startswith("the ") or default == "—" else f"`{default}`"
        lines.append(f"| `{meta['env']}` | {shown} | {meta['description']} |")
    return "\n".join(lines) + "\n"

"""Opening the configured database the same way everywhere (server, operator commands, demo):
migrate to the newest revision when asked, then open the pooled store. For the server, also the
start-up checks on key material: no file with keys open to other users, and the key-encryption
key the settings name (docs/security.md, "Secrets at rest")."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from ..config.server import ServerSettings
from ..storage.files import ExposedFileError, refuse_exposed, sqlite_files
from ..storage.interface import Store
from .network import HostingList, OfflineLookup
from .network.hosting import HostingListError
from .network.lookup import NetworkDatabaseError
from .notifications.webhooks import WebhookSecretError
from .secretbox import SECRET_KEY_ENV, KeyFile, KeySource, SecretBox, SecretKeyError

STARTUP_REFUSALS: Final = (ExposedFileError, SecretKeyError, WebhookSecretError,
                           NetworkDatabaseError, HostingListError)
"""Failures whose message is the one sentence an operator needs (``deviceflow serve`` exits 3)."""


async def open_store(db_url: str, *, migrate: bool = True) -> Store:
    from ..storage.sql.engine import create_store, upgrade

    if migrate:
        await upgrade(db_url)
    return create_store(db_url)


def key_source(settings: ServerSettings) -> KeySource:
    """``DEVICEFLOW_SECRET_KEY`` when set, else the key file (``secret_key_file``)."""
    if settings.secret_key is not None:
        return SecretBox.from_text(settings.secret_key.get_secret_value(), SECRET_KEY_ENV)
    return KeyFile(settings.effective_secret_key_file)


def refuse_exposed_key_material(settings: ServerSettings) -> None:
    """Raise ``ExposedFileError`` when the SQLite database (or its -wal, -shm, -journal) or the
    key file can be read by other local users: with them one signs tokens and forges sessions.
    Called before the database is opened, so a refused start touches nothing."""
    from ..storage.sql.engine import sqlite_file

    database = sqlite_file(settings.effective_db)
    files = sqlite_files(database) if database is not None else ()
    if settings.secret_key is None:
        files = (*files, settings.effective_secret_key_file)
    refuse_exposed(*files)


def network_lookup(settings: ServerSettings) -> OfflineLookup:
    """The offline network lookup the settings name (docs/operator.md, "Network databases");
    a missing or broken file is a start-up refusal of one sentence."""
    def path(value: str | None) -> Path | None:
        return Path(value).expanduser() if value else None

    return OfflineLookup(
        asn_database=path(settings.network_asn_database),
        country_database=path(settings.network_country_database),
        hosting=HostingList.load(path(settings.hosting_networks_file)),
    )


__all__ = [
    "STARTUP_REFUSALS",
    "key_source",
    "network_lookup",
    "open_store",
    "refuse_exposed_key_material",
]

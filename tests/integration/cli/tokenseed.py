"""Pre-fill a subprocess CLI's token cache (a profile on the fake server and one cached token)."""

from __future__ import annotations

import time

from tests.integration.cli.clikit import Cli
from tests.integration.cli.fake_oauth import FakeOAuthServer

from deviceflow.client.cache import CacheRecord, StoreKind, TokenCache
from deviceflow.client.profiles import ProfileStore
from deviceflow.client.tokens import TokenSet


def seed(
    cli: Cli,
    server: FakeOAuthServer,
    *,
    access_token: str = "at-seeded",
    expires_in: float = 3600,
    refresh_token: str | None = "rt-seeded",
    profile: str = "p",
) -> None:
    """create-profile on ``server`` and cache ``access_token``; the server knows both tokens."""
    created = cli.run(
        "create-profile", "--name", profile, "--issuer", server.issuer, "--client-id", "cli"
    )
    assert created.returncode == 0, created.stderr
    chosen = ProfileStore(cli.config_dir).load().get(profile)
    now = time.time()
    token = TokenSet(
        access_token=access_token,
        expires_at=now + expires_in,
        refresh_token=refresh_token,
        issued_at=now,
    )
    record = CacheRecord(chosen.cache_key).with_token(
        chosen.scopes_for(()), chosen.audience, token, now=now
    )
    TokenCache(cli.data_dir, StoreKind.FILE).save(record)
    with server.lock:
        server.access_tokens.add(access_token)
        if refresh_token:
            server.refresh_tokens.add(refresh_token)


def cached_record(cli: Cli, profile: str = "p") -> CacheRecord | None:
    chosen = ProfileStore(cli.config_dir).load().get(profile)
    return TokenCache(cli.data_dir, StoreKind.FILE).load(chosen.cache_key)

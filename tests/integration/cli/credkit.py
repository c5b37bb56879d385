"""Shared by the kubectl and docker credential helper tests: a profile against the fake OAuth
server and a token cache filled in directly (no sign-in needed to set the scene)."""

from __future__ import annotations

import time

from tests.integration.cli.clikit import Cli
from tests.integration.cli.fake_oauth import FakeOAuthServer

from deviceflow.client.cache import CacheRecord, StoreKind, TokenCache
from deviceflow.client.profiles import ProfileStore
from deviceflow.client.tokens import TokenSet


def make_profile(cli: Cli, server: FakeOAuthServer, name: str, *options: str) -> None:
    created = cli.run(
        "create-profile", "--name", name, "--issuer", server.issuer, "--client-id", "cli", *options
    )
    assert created.returncode == 0, created.stderr


def fill_cache(
    cli: Cli,
    server: FakeOAuthServer,
    name: str,
    *,
    access_token: str,
    expires_in: float,
    refresh_token: str | None,
    server_knows_it: bool = True,
) -> float:
    """Write a cache record for profile ``name``; the refresh token is registered with the fake
    server (unless ``server_knows_it`` is false: then it answers invalid_grant). Returns the
    access token's expiry."""
    profile = ProfileStore(cli.config_dir).load().get(name)
    expires_at = time.time() + expires_in
    token = TokenSet(access_token=access_token, expires_at=expires_at)
    record = CacheRecord(profile.cache_key, refresh_token=refresh_token).with_token(
        profile.effective_scopes, None, token, now=time.time() - 7200
    )
    TokenCache(cli.data_dir, StoreKind.FILE).save(record)
    if refresh_token is not None and server_knows_it:
        server.refresh_tokens.add(refresh_token)
    return expires_at


def cached_record(cli: Cli, name: str) -> CacheRecord | None:
    profile = ProfileStore(cli.config_dir).load().get(name)
    return TokenCache(cli.data_dir, StoreKind.FILE).load(profile.cache_key)


def no_traceback(stderr: str) -> bool:
    return "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


__all__ = ["cached_record", "fill_cache", "make_profile", "no_traceback"]

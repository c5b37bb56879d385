"""Token store selection: the keyring when one answers, files otherwise (announced once), the
keyring made mandatory, and records keyed by issuer, client and profile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import pytest

from deviceflow.client.cache import CacheKey, CacheRecord, StoreKind, TokenCache
from deviceflow.client.errors import CacheCorruptError, KeyringUnavailableError
from deviceflow.client.tokens import TokenSet


class MemoryKeyring(keyring.backend.KeyringBackend):
    priority = 10

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.items:
            import keyring.errors

            raise keyring.errors.PasswordDeleteError(username)
        del self.items[(service, username)]


def unregister(cls: type[keyring.backend.KeyringBackend]) -> None:
    """Defining a KeyringBackend subclass registers it for keyring's own backend search; a test
    backend must never become the process's keyring by accident."""
    keyring.backend.KeyringBackend._classes.discard(cls)


unregister(MemoryKeyring)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        keyring.set_keyring(previous)


KEY = CacheKey("https://id.example.com", "client", "p")


def record(key: CacheKey = KEY, token: str = "at") -> CacheRecord:
    now = time.time()
    return CacheRecord(key).with_token(
        ("openid",),
        None,
        TokenSet(access_token=token, expires_at=now + 3600, refresh_token="rt"),
        now=now,
    )


def test_auto_uses_the_keyring_when_it_answers(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    notices: list[str] = []
    cache = TokenCache(tmp_path, StoreKind.AUTO, notify=notices.append)
    cache.save(record())
    assert ("deviceflow", KEY.name) in memory_keyring.items
    assert not (tmp_path / "tokens").exists()
    loaded = cache.load(KEY)
    assert loaded is not None
    assert loaded.refresh_token == "rt"
    assert "keyring" in cache.where(KEY)
    assert notices == []
    assert cache.delete(KEY) == [f"the system keyring (service 'deviceflow', entry '{KEY.name}')"]


def test_auto_falls_back_to_files_and_says_so_once(tmp_path: Path, no_keyring: None) -> None:
    notices: list[str] = []
    TokenCache(tmp_path, StoreKind.AUTO, notify=notices.append).save(record())
    TokenCache(tmp_path, StoreKind.AUTO, notify=notices.append).save(record(token="at2"))
    assert len(notices) == 1
    assert str(tmp_path / "tokens") in notices[0]
    assert "DEVICEFLOW_TOKEN_STORE=keyring" in notices[0]
    assert (tmp_path / "tokens" / f"{KEY.name}.json").exists()


def test_a_file_record_stays_in_its_file(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    TokenCache(tmp_path, StoreKind.FILE).save(record())
    cache = TokenCache(tmp_path, StoreKind.AUTO)
    assert cache.where(KEY).endswith(".json")
    assert memory_keyring.items == {}


def test_keyring_mandatory(tmp_path: Path, no_keyring: None) -> None:
    with pytest.raises(KeyringUnavailableError, match="no system keyring answered"):
        TokenCache(tmp_path, StoreKind.KEYRING).save(record())


def test_keyring_probe_has_a_timeout(tmp_path: Path) -> None:
    class Hanging(MemoryKeyring):
        def get_password(self, service: str, username: str) -> str | None:
            time.sleep(5)
            return None

    unregister(Hanging)

    previous = keyring.get_keyring()
    keyring.set_keyring(Hanging())
    try:
        cache = TokenCache(tmp_path, StoreKind.AUTO, keyring_timeout=0.2)
        started = time.monotonic()
        cache.save(record())
        assert time.monotonic() - started < 2
        assert (tmp_path / "tokens" / f"{KEY.name}.json").exists()
    finally:
        keyring.set_keyring(previous)


def test_records_are_keyed_by_issuer_client_and_profile(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path, StoreKind.FILE)
    cache.save(record())
    for other in (
        CacheKey("https://evil.example.com", "client", "p"),
        CacheKey("https://id.example.com", "other", "p"),
        CacheKey("https://id.example.com", "client", "q"),
    ):
        assert other.name != KEY.name
        assert cache.load(other) is None


def test_a_record_copied_under_another_key_is_refused(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path, StoreKind.FILE)
    cache.save(record())
    other = CacheKey("https://evil.example.com", "client", "p")
    source = tmp_path / "tokens" / f"{KEY.name}.json"
    (tmp_path / "tokens" / f"{other.name}.json").write_bytes(source.read_bytes())
    with pytest.raises(CacheCorruptError, match="another issuer"):
        cache.load(other)


def test_refresh_rotation_and_fresh_logins(tmp_path: Path) -> None:
    now = time.time()
    first = record()
    rotated = first.with_token(
        ("openid",),
        None,
        TokenSet(access_token="at2", expires_at=now + 60, refresh_token="rt2"),
        now=now,
    )
    assert rotated.refresh_token == "rt2"
    kept = first.with_token(
        ("openid",), None, TokenSet(access_token="at3", expires_at=now + 90), now=now
    )
    assert kept.refresh_token == "rt"  # RFC 6749 §6: no new refresh token → keep the old one
    assert kept.find(("openid",), None, now=now) is not None
    assert kept.find(("openid",), None, now=now + 40) is None  # under a minute left

"""The key-encryption key and the sealing of server secrets (docs/security.md, "Secrets at
rest"): AES-256-GCM with the secret's name as associated data, a versioned format, a key from
base64url text or a 0600 key file that two workers create once."""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from deviceflow.server.secretbox import (
    SEALED_PREFIX,
    InvalidKeyError,
    KeyFile,
    MissingKeyError,
    SecretBox,
    SecretKeyError,
    WrongKeyError,
    generate_key_text,
    parse_key,
)
from deviceflow.storage.files import ExposedFileError


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000: whatever mode we get is the mode we asked for."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sealed_value_is_versioned_and_hides_the_plaintext() -> None:
    box = SecretBox.generate()
    plaintext = b"\x00" * 16 + b"hmac key material"
    sealed = box.seal("hmac_secret", plaintext)
    assert sealed.startswith(SEALED_PREFIX)
    assert plaintext not in sealed
    assert box.open("hmac_secret", sealed) == plaintext
    assert box.seal("hmac_secret", plaintext) != sealed  # a fresh nonce each time


def test_a_sealed_value_does_not_open_under_another_name() -> None:
    # Associated data = the name: swapping rows (the HMAC key into the session key's place) fails.
    box = SecretBox.generate()
    sealed = box.seal("hmac_secret", b"k" * 32)
    with pytest.raises(WrongKeyError):
        box.open("session_secret", sealed)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: s[:-1] + bytes([s[-1] ^ 1]),
        lambda s: s[: len(SEALED_PREFIX) + 12],
        lambda s: s[: len(SEALED_PREFIX)],
    ],
    ids=["flipped-tag-bit", "nonce-only", "prefix-only"],
)
def test_a_changed_value_is_refused(tamper: object) -> None:
    box = SecretBox.generate()
    sealed = box.seal("n", b"secret")
    with pytest.raises(WrongKeyError):
        box.open("n", tamper(sealed))  # type: ignore[operator]


def test_the_wrong_key_is_refused_with_a_sentence_naming_its_source() -> None:
    sealed = SecretBox.generate().seal("hmac_secret", b"secret")
    other = SecretBox.generate("/srv/deviceflow/deviceflow.key")
    with pytest.raises(WrongKeyError, match=re.escape("/srv/deviceflow/deviceflow.key")) as info:
        other.open("hmac_secret", sealed)
    assert "restore that key" in str(info.value)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(SecretKeyError, match="unknown format"):
        SecretBox.generate().open("n", b"plain old bytes")


def test_key_text_round_trips() -> None:
    text = generate_key_text()
    assert len(parse_key(text, "x")) == 32
    assert parse_key(text + "=", "x") == parse_key(text, "x")  # padding is optional
    assert parse_key(f"  {text}\n", "x") == parse_key(text, "x")


@pytest.mark.parametrize(
    "text",
    ["", "short", "A" * 42, "A" * 44 + "AAAA", "not base64 at all !!!!!!!!!!!!!!!!!!!!!!!!!!"],
    ids=["empty", "short", "31-bytes", "36-bytes", "not-base64"],
)
def test_a_malformed_key_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(InvalidKeyError, match="DEVICEFLOW_SECRET_KEY must hold 32") as info:
        SecretBox.from_text(text)
    if text:
        assert text not in str(info.value)


def test_a_key_file_is_created_0600_in_a_0700_directory(
    tmp_path: Path, open_umask: None
) -> None:
    path = tmp_path / "new" / "dir" / "deviceflow.key"
    box = KeyFile(path).load(create=True)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(path.parent.parent) == 0o700
    assert KeyFile(path).load(create=False).key == box.key  # read back, not made again
    assert box.source == str(path)


def test_a_missing_key_file_is_an_error_when_it_may_not_be_created(tmp_path: Path) -> None:
    path = tmp_path / "deviceflow.key"
    with pytest.raises(MissingKeyError, match="restore it from your backup") as info:
        KeyFile(path).load(create=False)
    assert str(path) in str(info.value)
    assert not path.exists()


def test_an_exposed_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deviceflow.key"
    KeyFile(path).load(create=True)
    path.chmod(0o644)
    with pytest.raises(ExposedFileError) as info:
        KeyFile(path).load(create=False)
    assert str(info.value) == (
        f"{path} is readable by other users (mode 0644); run: chmod 600 {path}"
    )


def test_workers_creating_the_key_file_at_once_agree(tmp_path: Path) -> None:
    path = tmp_path / "deviceflow.key"
    n = 8
    barrier = threading.Barrier(n)
    keys: list[bytes] = []

    def start() -> None:
        barrier.wait()
        keys.append(KeyFile(path).load(create=True).key)

    threads = [threading.Thread(target=start) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == n
    assert len(set(keys)) == 1

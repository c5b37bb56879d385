"""Server secrets at rest: AES-256-GCM under a key-encryption key (KEK) kept outside the database.

The KEK comes from ``DEVICEFLOW_SECRET_KEY`` (32 random bytes, base64url) or from a 0600 key file
created on first start. A stored value is ``aesgcm1:`` + 12-byte nonce + ciphertext and tag; the
associated data is the secret's name, so a sealed value moved to another row does not open
(NIST SP 800-38D; ``cryptography``'s ``AESGCM``). A database dump without the KEK yields no
usable key, and a missing or wrong KEK is an error, never a reason to make new secrets: new
secrets would end every token and session and hide the loss (docs/operator.md)."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..storage.files import PRIVATE_FILE_MODE, make_private_dir, refuse_exposed

KEY_BYTES: Final = 32
SEALED_PREFIX: Final = b"aesgcm1:"
"""Version prefix of a sealed value: a later format gets a new prefix beside this one."""
SECRET_KEY_ENV: Final = "DEVICEFLOW_SECRET_KEY"
_NONCE_BYTES: Final = 12
_READ_WAIT: Final = 5.0  # seconds to wait for a key file another worker is writing


class SecretKeyError(Exception):
    """The key-encryption key is missing, malformed or wrong. The message is one sentence for
    the operator and never contains key material."""


class MissingKeyError(SecretKeyError):
    """The database holds encrypted secrets and the KEK that sealed them is not there."""


class WrongKeyError(SecretKeyError):
    """The KEK given does not open the secrets in the database."""


class InvalidKeyError(SecretKeyError):
    """The KEK is not 32 bytes of base64url."""


def generate_key_text() -> str:
    """A fresh KEK in its text form: 32 random bytes, base64url without padding (what
    ``python -c 'import secrets; print(secrets.token_urlsafe(32))'`` prints)."""
    return secrets.token_urlsafe(KEY_BYTES)


def parse_key(text: str, source: str) -> bytes:
    """The 32 bytes of a KEK written as base64url (padding optional)."""
    cleaned = text.strip()
    try:
        key = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise InvalidKeyError(
            f"{source} must hold {KEY_BYTES} random bytes in base64url (generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return key


class KeySource(Protocol):
    """Where the KEK comes from; ``create`` allows making it (only when no secret in the
    database is sealed yet)."""

    def load(self, *, create: bool) -> SecretBox: ...


@dataclass(frozen=True, slots=True)
class SecretBox:
    """Seals and opens server secrets under one KEK. Also a ``KeySource`` of itself."""

    key: bytes = field(repr=False)
    source: str = SECRET_KEY_ENV
    """Where the key came from, for error messages."""

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise InvalidKeyError(f"the key from {self.source} must be {KEY_BYTES} bytes")

    @classmethod
    def generate(cls, source: str = "a generated key") -> SecretBox:
        return cls(secrets.token_bytes(KEY_BYTES), source)

    @classmethod
    def from_text(cls, text: str, source: str = SECRET_KEY_ENV) -> SecretBox:
        return cls(parse_key(text, source), source)

    def load(self, *, create: bool) -> SecretBox:
        return self

    def seal(self, name: str, plaintext: bytes) -> bytes:
        # A random 96-bit nonce per value: a few secrets per database, far from the 2^32
        # messages per key that SP 800-38D §8.3 allows with random nonces.
        nonce = os.urandom(_NONCE_BYTES)
        return SEALED_PREFIX + nonce + AESGCM(self.key).encrypt(nonce, plaintext, name.encode())

    def open(self, name: str, sealed: bytes) -> bytes:
        if not sealed.startswith(SEALED_PREFIX):
            raise SecretKeyError(f"the server secret {name!r} is stored in an unknown format")
        body = sealed[len(SEALED_PREFIX):]
        nonce, ciphertext = body[:_NONCE_BYTES], body[_NONCE_BYTES:]
        try:
            return AESGCM(self.key).decrypt(nonce, ciphertext, name.encode())
        except (InvalidTag, ValueError):
            raise WrongKeyError(
                f"the server secrets in the database cannot be decrypted with the key from "
                f"{self.source}: it is not the key they were encrypted with; restore that key "
                f"(the key file or {SECRET_KEY_ENV}) from the backup that goes with this database"
            ) from None


@dataclass(frozen=True, slots=True)
class KeyFile:
    """A KEK in a 0600 file, made on first start. Of several workers starting at once, one
    creates it (O_CREAT|O_EXCL) and the others read what it wrote."""

    path: Path

    def load(self, *, create: bool) -> SecretBox:
        refuse_exposed(self.path)
        deadline = time.monotonic() + _READ_WAIT
        while True:
            text = self._read()
            if text is None:
                if not create:
                    raise MissingKeyError(
                        f"the database holds encrypted server secrets but the key file "
                        f"{self.path} is missing; restore it from your backup (or set "
                        f"{SECRET_KEY_ENV} to its value), since no new key can decrypt them"
                    )
                if self._create():
                    continue
            elif text.strip() or time.monotonic() > deadline:
                return SecretBox.from_text(text, str(self.path))
            time.sleep(0.02)  # another worker created the file and is still writing it

    def _read(self) -> str | None:
        try:
            return self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            return ""

    def _create(self) -> bool:
        make_private_dir(self.path.parent)
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, PRIVATE_FILE_MODE)
        except FileExistsError:
            return False
        try:
            os.fchmod(fd, PRIVATE_FILE_MODE)  # the umask may have taken our own bits
            os.write(fd, (generate_key_text() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return True


__all__ = [
    "KEY_BYTES",
    "SEALED_PREFIX",
    "SECRET_KEY_ENV",
    "InvalidKeyError",
    "KeyFile",
    "KeySource",
    "MissingKeyError",
    "SecretBox",
    "SecretKeyError",
    "WrongKeyError",
    "generate_key_text",
    "parse_key",
]

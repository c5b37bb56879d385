"""Device codes, user codes and their keyed hashes (RFC 8628 §3.2, §5.1, §6.1).

Device codes carry 256 bits from ``secrets``. User codes are 8 characters from a 20-letter
alphabet without vowels (no words spelt by accident) and without characters easily confused,
shown as ``XXXX-XXXX``. Every code is stored only as HMAC-SHA-256 under the server secret, with a
distinct label per kind so that a hash of one kind can never match another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Protocol

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
DEVICE_CODE_BYTES = 32

_ALPHABET_SET = frozenset(USER_CODE_ALPHABET)
# RFC 8628 §6.1: "the authorization server should ... ignore characters like punctuation that are
# not in the character set"; we drop whitespace and dashes and fold case.
_IGNORED = str.maketrans("", "", " \t\r\n-–—_.")


class CodeSource(Protocol):
    """Randomness for new codes, injected so the core stays deterministic under test."""

    def device_code(self) -> str: ...
    def user_code(self) -> str: ...
    def token(self) -> str: ...


class SecretsCodeSource:
    """The production code source: everything from the OS CSPRNG via ``secrets``."""

    def device_code(self) -> str:
        return secrets.token_urlsafe(DEVICE_CODE_BYTES)

    def user_code(self) -> str:
        return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))

    def token(self) -> str:
        return secrets.token_urlsafe(DEVICE_CODE_BYTES)


def normalize_user_code(raw: str) -> str | None:
    """The canonical form of what a person typed, or None when it cannot be a user code.

    RFC 8628 §6.1: case-insensitive, spaces and dashes ignored."""
    code = raw.translate(_IGNORED).upper()
    if len(code) != USER_CODE_LENGTH or not _ALPHABET_SET.issuperset(code):
        return None
    return code


def format_user_code(code: str) -> str:
    """``WDJBMJHT`` → ``WDJB-MJHT``: two groups of four are easier to read and type (§6.1)."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def display_user_code(raw: str) -> str:
    """What a person typed, shown back to them: ``wdjb mjht`` → ``WDJB-MJHT`` when it has the
    shape of a user code, else the text as typed (trimmed) so they can see what to correct."""
    normalized = normalize_user_code(raw)
    return format_user_code(normalized) if normalized is not None else raw.strip()


class CodeHasher:
    """HMAC-SHA-256 under the server secret, one label per kind of secret."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the server secret must be at least 32 bytes")
        self._key = key

    def _mac(self, label: bytes, value: str) -> str:
        return hmac.new(self._key, label + b"\x00" + value.encode(), hashlib.sha256).hexdigest()

    def device_code(self, device_code: str) -> str:
        return self._mac(b"device_code", device_code)

    def user_code(self, normalized_user_code: str) -> str:
        return self._mac(b"user_code", normalized_user_code)

    def refresh_token(self, refresh_token: str) -> str:
        return self._mac(b"refresh_token", refresh_token)

    def authorization_code(self, code: str) -> str:
        return self._mac(b"authorization_code", code)

    def browser_session(self, session_id: str) -> str:
        return self._mac(b"browser_session", session_id)

    def recovery_code(self, normalized_code: str) -> str:
        return self._mac(b"recovery_code", normalized_code)


def hash_client_secret(secret: str) -> str:
    """Client secrets are 256-bit random strings we generate, so a plain SHA-256 resists guessing
    as well as a slow hash would, and keeps client authentication off the CPU profile."""
    return hashlib.sha256(b"client_secret\x00" + secret.encode()).hexdigest()


def verify_client_secret(secret: str, secret_hash: str) -> bool:
    """Constant-time comparison (RFC 6749 §10.10 and RFC 8628 §5.1 guessing concerns)."""
    return hmac.compare_digest(hash_client_secret(secret), secret_hash)

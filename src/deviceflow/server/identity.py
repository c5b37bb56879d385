"""People who may sign in: passwords hashed with argon2id (RFC 9106 recommended parameters via
argon2-cffi's defaults) and verified in constant time, with the same work for unknown users."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """True when ``password`` matches. With no user (hash None) a dummy hash is verified anyway,
    so an unknown username costs the same time as a wrong password (no user enumeration)."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_user_id() -> str:
    """A stable, opaque ``sub``: never derived from the username, so renames don't re-key."""
    return secrets.token_hex(16)


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)

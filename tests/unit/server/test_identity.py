"""Passwords with argon2id (RFC 9106) and the same work for unknown users."""

from __future__ import annotations

import re

import pytest

from deviceflow.server import identity

ARGON2ID = re.compile(r"^\$argon2id\$v=19\$m=65536,t=3,p=4\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")


@pytest.fixture(scope="module")
def stored() -> str:
    """One hash for the module: argon2id is deliberately slow."""
    return identity.hash_password("correct horse")


def test_hash_is_argon2id_with_rfc_9106_parameters(stored: str) -> None:
    assert stored.startswith("$argon2id$")
    assert ARGON2ID.match(stored)
    assert "correct horse" not in stored


def test_hashes_are_salted(stored: str) -> None:
    assert identity.hash_password("correct horse") != stored


@pytest.mark.parametrize(
    ("password", "ok"),
    [("correct horse", True), ("Correct horse", False)],
    ids=["right", "case"],
)
def test_verify(stored: str, password: str, ok: bool) -> None:
    assert identity.verify_password(password, stored) is ok


@pytest.mark.parametrize("malformed", ["", "not-a-hash", "$argon2id$v=19$broken"],
                         ids=["empty", "garbage", "truncated"])
def test_malformed_stored_hash_never_verifies(malformed: str) -> None:
    assert identity.verify_password("anything", malformed) is False


class SpyHasher:
    def __init__(self, real: object) -> None:
        self.real = real
        self.verified: list[str] = []

    def verify(self, hashed: str, password: str) -> bool:
        self.verified.append(hashed)
        return self.real.verify(hashed, password)  # type: ignore[attr-defined,no-any-return]


def test_unknown_user_still_verifies_a_dummy_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """No user enumeration by timing: a missing user costs one argon2id verification too."""
    spy = SpyHasher(identity._hasher)
    monkeypatch.setattr(identity, "_hasher", spy)
    assert identity.verify_password("whatever", None) is False
    assert spy.verified == [identity._DUMMY_HASH]
    assert identity._DUMMY_HASH.startswith("$argon2id$")


def test_dummy_hash_password_is_not_guessable() -> None:
    assert identity.verify_password("", None) is False


def test_user_ids_are_opaque_random_and_unique() -> None:
    ids = {identity.new_user_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_client_secrets_carry_256_bits() -> None:
    secrets_ = {identity.new_client_secret() for _ in range(100)}
    assert len(secrets_) == 100
    assert all(len(s) >= 43 for s in secrets_)

"""Server secrets and signing keys: created once, kept in the store, reused ever after; JWKS with
public members only (RFC 7517 §4–5, RFC 7518 §6)."""

from __future__ import annotations

import anyio
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from deviceflow.protocol.tokens import ACCESS_TOKEN_TYP
from deviceflow.server.keys import (
    HMAC_SECRET_NAME,
    SESSION_SECRET_NAME,
    SIGNING_KEY_PREFIX,
    KeyRing,
    TokenVerificationError,
    load_keyring,
)
from deviceflow.server.secretbox import SecretBox
from deviceflow.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

PUBLIC_MEMBERS = {
    "RSA": {"kty", "n", "e", "kid", "alg", "use"},
    "EC": {"kty", "crv", "x", "y", "kid", "alg", "use"},
}
KEK = SecretBox.generate()
CLAIMS: dict[str, object] = {"iss": "https://a.example", "sub": "u1", "exp": 4_000_000_000}


def kids(ring: KeyRing) -> list[str]:
    return [str(k["kid"]) for k in ring.jwks["keys"]]  # type: ignore[attr-defined]


async def test_keys_are_created_once_and_reused() -> None:
    store = MemoryStore()
    first = await load_keyring(store, KEK)
    second = await load_keyring(store, KEK)
    assert kids(first) == kids(second)
    assert first.jwks == second.jwks
    assert first.session_secret == second.session_secret
    # Same HMAC secret: a code hashed before a restart is found after it.
    assert first.hasher.device_code("dc") == second.hasher.device_code("dc")
    async with store.unit_of_work() as uow:
        names = await uow.secrets.names()
    assert set(names) == {HMAC_SECRET_NAME, SESSION_SECRET_NAME, SIGNING_KEY_PREFIX + "RS256"}


async def test_separate_stores_get_separate_keys() -> None:
    first, second = await load_keyring(MemoryStore(), KEK), await load_keyring(MemoryStore(), KEK)
    assert kids(first) != kids(second)
    assert first.hasher.device_code("dc") != second.hasher.device_code("dc")


async def test_concurrent_first_starts_agree_on_one_key() -> None:
    store = MemoryStore()
    rings: list[KeyRing] = []

    async def start() -> None:
        rings.append(await load_keyring(store, KEK))

    async with anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(start)
    assert len({tuple(kids(r)) for r in rings}) == 1


async def test_secrets_are_256_bits() -> None:
    store = MemoryStore()
    ring = await load_keyring(store, KEK)
    async with store.unit_of_work() as uow:
        stored = await uow.secrets.get(HMAC_SECRET_NAME)
    assert stored is not None
    assert len(KEK.open(HMAC_SECRET_NAME, stored.value)) == 32
    assert len(ring.session_secret) == 32


@pytest.mark.parametrize(
    ("signing", "extra", "expected"),
    [
        ("RS256", (), [("RSA", "RS256")]),
        ("ES256", (), [("EC", "ES256")]),
        ("RS256", ("ES256",), [("RSA", "RS256"), ("EC", "ES256")]),
        ("RS256", ("RS256",), [("RSA", "RS256")]),
    ],
    ids=["rs256", "es256", "rs256-plus-es256", "duplicate-extra"],
)
async def test_jwks_has_only_public_members_with_kid_alg_use(
    signing: str, extra: tuple[str, ...], expected: list[tuple[str, str]]
) -> None:
    ring = await load_keyring(MemoryStore(), KEK, signing, extra)
    keys = ring.jwks["keys"]
    assert isinstance(keys, list)
    assert [(k["kty"], k["alg"]) for k in keys] == expected
    for key in keys:
        assert set(key) == PUBLIC_MEMBERS[key["kty"]], "no private member (d, p, q, …)"
        assert key["use"] == "sig"
        assert key["kid"]
    assert len(set(kids(ring))) == len(keys)
    assert ring.signer.alg == signing
    assert ring.algorithms == tuple(alg for _, alg in expected)


async def test_extra_key_added_later_keeps_the_first() -> None:
    store = MemoryStore()
    first = await load_keyring(store, KEK)
    both = await load_keyring(store, KEK, "RS256", ("ES256",))
    assert kids(both)[0] == kids(first)[0]
    assert len(kids(both)) == 2


async def test_unsupported_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        await load_keyring(MemoryStore(), KEK, "HS256")
    with pytest.raises(ValueError, match="unsupported"):
        await load_keyring(MemoryStore(), KEK, "RS256", ("PS512",))


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_signed_tokens_verify_against_the_published_jwks(alg: str) -> None:
    ring = await load_keyring(MemoryStore(), KEK, alg)
    token = ring.signer.sign(CLAIMS, ACCESS_TOKEN_TYP)
    decoded = jwt.decode(token, KeySet.import_key_set(ring.jwks), algorithms=[alg])
    assert decoded.header == {"alg": alg, "kid": kids(ring)[0], "typ": "at+jwt"}
    assert decoded.claims == CLAIMS
    assert ring.verify(token, ACCESS_TOKEN_TYP) == CLAIMS


async def test_verify_refuses_wrong_typ_garbage_and_foreign_keys() -> None:
    ring = await load_keyring(MemoryStore(), KEK)
    other = await load_keyring(MemoryStore(), KEK)
    token = ring.signer.sign(CLAIMS, "JWT")
    with pytest.raises(TokenVerificationError, match="typ"):
        ring.verify(token, ACCESS_TOKEN_TYP)
    for bad in ("", "garbage", "a.b.c", other.signer.sign(CLAIMS, ACCESS_TOKEN_TYP),
                token[:-4] + "AAAA"):
        with pytest.raises(TokenVerificationError):
            ring.verify(bad, ACCESS_TOKEN_TYP)

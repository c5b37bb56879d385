"""Server secrets and signing keys: created once, kept in the store, reused ever after; JWKS with
public members only (RFC 7517 §4–5, RFC 7518 §6)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import anyio
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from deviceflow.protocol.tokens import ACCESS_TOKEN_TYP
from deviceflow.server import keys as keys_module
from deviceflow.server.keys import (
    HMAC_SECRET_NAME,
    SESSION_SECRET_NAME,
    SIGNING_KEY_PREFIX,
    KeyRing,
    TokenVerificationError,
    load_keyring,
)
from deviceflow.server.secretbox import (
    SEALED_PREFIX,
    KeyFile,
    MissingKeyError,
    SecretBox,
    WrongKeyError,
)
from deviceflow.storage.interface import SecretEncryption, StoredSecret
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


# --- secrets at rest (docs/security.md) ----------------------------------------------------------


async def raw_rows(store: MemoryStore) -> dict[str, StoredSecret]:
    async with store.unit_of_work() as uow:
        found = {name: await uow.secrets.get(name) for name in await uow.secrets.names()}
    return {name: secret for name, secret in found.items() if secret is not None}


def private_material(name: str, plaintext: bytes) -> list[bytes]:
    """What a reader of the store must not find in a row: the secret itself and, for a signing
    key, every private JWK member."""
    if not name.startswith(SIGNING_KEY_PREFIX):
        return [plaintext]
    jwk = json.loads(plaintext)
    members = [str(jwk[m]).encode() for m in ("d", "p", "q", "dp", "dq", "qi") if m in jwk]
    assert members
    return [plaintext, *members]


async def test_every_secret_is_sealed_at_rest() -> None:
    store = MemoryStore()
    ring = await load_keyring(store, KEK, "RS256", ("ES256",))
    rows = await raw_rows(store)
    assert set(rows) == {HMAC_SECRET_NAME, SESSION_SECRET_NAME, SIGNING_KEY_PREFIX + "RS256",
                         SIGNING_KEY_PREFIX + "ES256"}
    assert KEK.open(SESSION_SECRET_NAME, rows[SESSION_SECRET_NAME].value) == ring.session_secret
    for name, row in rows.items():
        assert row.encryption is SecretEncryption.AES_256_GCM
        assert row.value.startswith(SEALED_PREFIX)
        for secret in private_material(name, KEK.open(name, row.value)):
            assert secret not in row.value, name
        with pytest.raises(WrongKeyError):  # without the KEK, the rows are noise
            SecretBox.generate().open(name, row.value)


async def test_a_wrong_kek_is_an_error_and_changes_nothing() -> None:
    store = MemoryStore()
    await load_keyring(store, KEK)
    before = await raw_rows(store)
    with pytest.raises(WrongKeyError, match="not the key they were encrypted with"):
        await load_keyring(store, SecretBox.generate("/data/deviceflow.key"))
    assert await raw_rows(store) == before  # never regenerated


async def test_a_missing_key_file_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    store = MemoryStore()
    key_file = KeyFile(tmp_path / "deviceflow.key")
    first = await load_keyring(store, key_file)
    before = await raw_rows(store)
    backup = key_file.path.read_bytes()
    key_file.path.unlink()
    with pytest.raises(MissingKeyError, match="is missing; restore it from your backup"):
        await load_keyring(store, key_file)
    assert not key_file.path.exists()  # no new key that would then be "the wrong one"
    assert await raw_rows(store) == before
    # Restoring the file from the backup is the recovery: the same keys again.
    key_file.path.write_bytes(backup)
    key_file.path.chmod(0o600)
    again = await load_keyring(store, key_file)
    assert kids(again) == kids(first)
    assert again.hasher.device_code("dc") == first.hasher.device_code("dc")


async def plaintext_store(algs: tuple[str, ...] = ("RS256",)) -> tuple[MemoryStore, KeyRing]:
    """A store as deviceflow 0.1 left it: the secrets in plaintext; and the ring 0.1 used."""
    store = MemoryStore()
    hmac_secret, session_secret = secrets.token_bytes(32), secrets.token_bytes(32)
    keys = {alg: keys_module.generate_key(alg) for alg in algs}
    rows = {HMAC_SECRET_NAME: hmac_secret, SESSION_SECRET_NAME: session_secret} | {
        SIGNING_KEY_PREFIX + alg: json.dumps(key.as_dict(private=True)).encode()
        for alg, key in keys.items()}
    async with store.unit_of_work() as uow:
        for name, value in rows.items():
            await uow.secrets.add_if_absent(name, StoredSecret(value, SecretEncryption.NONE))
        await uow.commit()
    return store, KeyRing(hmac_secret, session_secret, dict(keys), algs[0])


async def test_plaintext_secrets_of_0_1_are_sealed_and_stay_the_same_keys() -> None:
    store, old = await plaintext_store(("RS256", "ES256"))
    token = old.signer.sign(CLAIMS, ACCESS_TOKEN_TYP)
    ring = await load_keyring(store, KEK, "RS256", ("ES256",))
    for row in (await raw_rows(store)).values():
        assert row.encryption is SecretEncryption.AES_256_GCM
    assert ring.verify(token, ACCESS_TOKEN_TYP) == CLAIMS  # signed before, verifies after
    assert ring.hasher.device_code("dc") == old.hasher.device_code("dc")
    assert ring.hasher.user_code("BCDFGHJK") == old.hasher.user_code("BCDFGHJK")
    assert ring.session_secret == old.session_secret
    assert ring.jwks == old.jwks


async def test_workers_sealing_0_1_secrets_at_once_agree() -> None:
    store, old = await plaintext_store()
    rings: list[KeyRing] = []

    async def start() -> None:
        rings.append(await load_keyring(store, KEK))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(start)
    assert {tuple(kids(r)) for r in rings} == {tuple(kids(old))}
    assert {r.hasher.device_code("dc") for r in rings} == {old.hasher.device_code("dc")}
    for name, row in (await raw_rows(store)).items():
        assert row.encryption is SecretEncryption.AES_256_GCM
        KEK.open(name, row.value)  # sealed once: it opens (sealed twice, it would not)


async def test_a_reload_that_cannot_open_a_new_key_keeps_the_ring_as_it_was() -> None:
    # A worker whose reload fails goes on signing and verifying with the keys it had.
    from deviceflow.server.rotation import rotate_signing_key

    store = MemoryStore()
    ring = await load_keyring(store, KEK, clock=lambda: 1_800_000_000.0)
    before = ring.jwks
    await rotate_signing_key(store, KEK, "RS256", now=1_800_000_000.0, activation_delay=120,
                             token_lifetime=3600)
    async with store.unit_of_work() as uow:
        [name] = [n for n in await uow.secrets.names() if n.count(":") == 2]  # the new key
    # Damaged in the database (the memory store's state stands for a bad row).
    store._state.secrets[name] = StoredSecret(b"aesgcm1:broken", SecretEncryption.AES_256_GCM)
    with pytest.raises(WrongKeyError):
        await ring.reload(store)
    assert ring.jwks == before
    assert ring.verify(ring.signer.sign(CLAIMS, ACCESS_TOKEN_TYP), ACCESS_TOKEN_TYP) == CLAIMS

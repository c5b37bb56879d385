"""Signing-key rotation (``deviceflow keys rotate``) and the key list (``deviceflow keys list``).

A rotation publishes the new key at once and lets it sign only ``activation_delay`` later
(twice ``signing_key_reload_interval``): by then every worker has re-read the keys, so the new
``kid`` is in every worker's JWKS before any token carries it, and a resource server that
refetches JWKS on an unknown ``kid`` (or whose cached copy's ``max-age`` ran out) finds it. The
old key signs until that moment and stays in JWKS until every token it signed has expired: the
longer of the access and ID token lifetimes after it stopped signing. That moment is computed
here, from the lifetimes the command is given (the servers' settings), and stored, so every
server and ``keys list`` agree on it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..protocol.audit import AuditActor, AuditEventType
from ..storage.interface import SigningKeyRecord, Store
from .keys import (
    SIGNING_KEY_PREFIX,
    SUPPORTED_ALGS,
    KeyState,
    generate_key,
    key_state,
    load_keyring,
    open_kek,
    sealed_secret,
)
from .secretbox import KeySource
from .service.audit import AuditService


class RotationConflictError(Exception):
    """Another rotation of the same algorithm was stored first; this one changed nothing."""


@dataclass(frozen=True, slots=True)
class Rotation:
    """The outcome of ``rotate_signing_key``: the key that stops signing (with its end and
    retirement times) and the new key (signing from its ``active_from``)."""

    previous: SigningKeyRecord
    successor: SigningKeyRecord


@dataclass(frozen=True, slots=True)
class KeyListing:
    record: SigningKeyRecord
    state: KeyState

    @property
    def until(self) -> float | None:
        """The moment the state ends: signing starts, signing ends, or retirement."""
        if self.state is KeyState.PUBLISHED:
            return self.record.active_from
        if self.state is KeyState.ACTIVE:
            return self.record.signs_until
        if self.state is KeyState.RETIRING:
            return self.record.retire_after
        return None


async def rotate_signing_key(store: Store, kek: KeySource, alg: str, *, now: float,
                             activation_delay: float, token_lifetime: float) -> Rotation:
    """Add a new key for ``alg`` that signs from ``now + activation_delay``; the current
    newest key signs until then and is retired ``token_lifetime`` seconds after.

    One compare-and-set in storage (``SigningKeyRepository.rotate``): of two rotations at once
    exactly one is stored and the other raises ``RotationConflictError``, so an algorithm never
    has two newest keys."""
    if alg not in SUPPORTED_ALGS:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    # Exactly what a server start does: check the KEK, seal 0.1 rows, adopt the existing key.
    await load_keyring(store, kek, alg, clock=lambda: now)
    box, _ = await open_kek(store, kek)
    key = generate_key(alg)
    active_from = now + activation_delay
    successor = SigningKeyRecord(
        kid=str(key.kid), alg=alg, secret_name=f"{SIGNING_KEY_PREFIX}{alg}:{key.kid}",
        created_at=now, active_from=active_from)
    async with store.unit_of_work() as uow:
        current = _newest(await uow.signing_keys.list(), alg)
        sealed = sealed_secret(box, successor.secret_name,
                         json.dumps(key.as_dict(private=True)).encode())
        await uow.secrets.add_if_absent(successor.secret_name, sealed)
        retire_after = active_from + token_lifetime
        if current is None or not await uow.signing_keys.rotate(
                current.kid, active_from, retire_after, successor):
            raise RotationConflictError(
                f"another rotation of the {alg} key was stored at the same time; nothing was "
                "changed by this one (see: deviceflow keys list)")
        audit = AuditService(store, lambda: now)
        event = await audit.append(
            uow, AuditEventType.KEY_ROTATED, actor=AuditActor.OPERATOR,
            detail=f"{alg}: {successor.kid} signs from {active_from:.0f}, "
                   f"{current.kid} retired after {retire_after:.0f}")
        await uow.commit()
    audit.emit(event)
    return Rotation(replace(current, signs_until=active_from, retire_after=retire_after),
                    successor)


def _newest(records: Sequence[SigningKeyRecord], alg: str) -> SigningKeyRecord | None:
    return next((r for r in records if r.alg == alg and r.signs_until is None), None)


async def list_signing_keys(store: Store, kek: KeySource, algs: tuple[str, ...], *,
                            now: float) -> list[KeyListing]:
    """Every signing key with its state at ``now``. Adopts a database's first keys the way a
    server start does (so a database from before rotation lists its key too)."""
    await load_keyring(store, kek, algs[0], algs[1:], clock=lambda: now)
    async with store.unit_of_work(read_only=True) as uow:
        records = await uow.signing_keys.list()
    return [KeyListing(r, key_state(r, now)) for r in records]


__all__ = [
    "KeyListing",
    "Rotation",
    "RotationConflictError",
    "list_signing_keys",
    "rotate_signing_key",
]

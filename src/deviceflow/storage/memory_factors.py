"""The memory store's second factors (``FactorRepository``), kept beside ``memory.py``.

Each method runs without an ``await`` between its test and its write, so in one event loop the
compare-and-sets are atomic as the SQL ``UPDATE … WHERE`` ones are."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..protocol.models import Timestamp
from .interface import TotpFactor


class FactorState:
    def __init__(self) -> None:
        self.totp: dict[str, TotpFactor] = {}
        self.recovery: dict[str, tuple[str, Timestamp | None]] = {}  # hash → (user, used_at)


class MemoryFactors:
    def __init__(self, state: FactorState) -> None:
        self._s = state

    async def get_totp(self, user_id: str) -> TotpFactor | None:
        return self._s.totp.get(user_id)

    async def set_pending_totp(self, factor: TotpFactor) -> bool:
        stored = self._s.totp.get(factor.user_id)
        if stored is not None and stored.active:
            return False
        self._s.totp[factor.user_id] = dataclasses.replace(factor, active=False)
        return True

    async def activate_totp(self, user_id: str, step: int, recovery_hashes: Sequence[str]) -> bool:
        stored = self._s.totp.get(user_id)
        if stored is None or stored.active or stored.last_step >= step:
            return False
        self._s.totp[user_id] = dataclasses.replace(stored, active=True, last_step=step)
        self._drop_recovery(user_id)
        for code_hash in recovery_hashes:
            self._s.recovery[code_hash] = (user_id, None)
        return True

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        stored = self._s.totp.get(user_id)
        if stored is None or not stored.active or stored.last_step >= step:
            return False
        self._s.totp[user_id] = dataclasses.replace(stored, last_step=step)
        return True

    async def use_recovery_code(self, user_id: str, code_hash: str, now: Timestamp) -> bool:
        found = self._s.recovery.get(code_hash)
        if found is None or found[0] != user_id or found[1] is not None:
            return False
        self._s.recovery[code_hash] = (user_id, now)
        return True

    async def recovery_codes_left(self, user_id: str) -> int:
        return sum(1 for who, used in self._s.recovery.values() if who == user_id and used is None)

    async def remove(self, user_id: str) -> bool:
        self._drop_recovery(user_id)
        return self._s.totp.pop(user_id, None) is not None

    def _drop_recovery(self, user_id: str) -> None:
        for key in [k for k, (who, _) in self._s.recovery.items() if who == user_id]:
            del self._s.recovery[key]


__all__ = ["FactorState", "MemoryFactors"]

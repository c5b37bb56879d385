"""Remembered consent in the memory store (``ConsentRepository``). The merge is a set union
with no ``await`` between its read and its write, so it is atomic under asyncio, as the SQL
store's ``INSERT … ON CONFLICT DO NOTHING`` is in the database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..protocol.consent import Consent
from ..protocol.models import Timestamp

ConsentState = dict[tuple[str, str], dict[str, Timestamp]]
"""(user id, client id) → granted scope → when first granted (``""``: the client approved)."""


def _consent(user_id: str, client_id: str, scopes: dict[str, Timestamp]) -> Consent:
    times = scopes.values()
    return Consent(user_id=user_id, client_id=client_id,
                   scopes=frozenset(s for s in scopes if s), granted_at=min(times),
                   updated_at=max(times))


class MemoryConsents:
    def __init__(self, state: ConsentState) -> None:
        self._s = state

    async def grant(self, user_id: str, client_id: str, scopes: Iterable[str],
                    now: Timestamp) -> None:
        held = self._s.setdefault((user_id, client_id), {})
        for scope in ("", *scopes):
            held.setdefault(scope, now)

    async def get(self, user_id: str, client_id: str) -> Consent | None:
        held = self._s.get((user_id, client_id))
        return _consent(user_id, client_id, held) if held else None

    async def for_user(self, user_id: str) -> Sequence[Consent]:
        return [_consent(user, client, held)
                for (user, client), held in sorted(self._s.items())
                if user == user_id and held]

    async def withdraw(self, user_id: str, client_id: str) -> bool:
        return self._s.pop((user_id, client_id), None) is not None

    async def forget_client(self, client_id: str) -> int:
        doomed = [key for key in self._s if key[1] == client_id]
        for key in doomed:
            del self._s[key]
        return len(doomed)


__all__ = ["ConsentState", "MemoryConsents"]

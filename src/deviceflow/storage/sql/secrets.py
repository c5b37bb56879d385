"""SQL repository of the server's secrets (signing/HMAC keys), sealed by compare-and-set."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..interface import (
    AlreadyExistsError,
    SecretEncryption,
    StorageError,
    StoredSecret,
)
from . import tables as t
from .dml import insert as _insert
from .dml import insert_unless_taken as _insert_unless_taken

_c = t.clients
_u = t.users
_d = t.device_authorizations
_r = t.refresh_tokens
_s = t.server_secrets


# ---------------------------------------------------------------------------------------- secrets

_SECRET_GET = select(_s.c.value, _s.c.encryption).where(_s.c.name == bindparam("b_name"))
_SECRET_INSERT = _insert_unless_taken(_s)
_SECRET_NAMES = select(_s.c.name).order_by(_s.c.name)
# Compare-and-set on the plaintext marker: of two workers sealing 0.1's rows at once, the second
# UPDATE waits for the first (row lock, or SQLite's write lock) and then matches nothing.
_SECRET_SEAL = (
    update(_s)
    .where(_s.c.name == bindparam("b_name"), _s.c.encryption == SecretEncryption.NONE.value)
    .values(value=bindparam("b_value"), encryption=bindparam("b_encryption"))
)


class SqlSecrets:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, name: str) -> StoredSecret | None:
        row = (await self._conn.execute(_SECRET_GET, {"b_name": name})).first()
        return None if row is None else StoredSecret(bytes(row.value),
                                                     SecretEncryption(row.encryption))

    async def add_if_absent(self, name: str, secret: StoredSecret) -> StoredSecret:
        """Store ``secret`` unless ``name`` exists; return whichever is stored.

        Two workers starting at once agree on one secret: the losing INSERT waits for the
        winner's row (PostgreSQL) or its write lock (SQLite), inserts nothing, and then reads
        the winner's committed value."""
        values = {"name": name, "value": secret.value, "encryption": secret.encryption.value}
        try:
            await _insert(self._conn, _SECRET_INSERT, values, name)
        except AlreadyExistsError:
            stored = await self.get(name)
            if stored is None:  # pragma: no cover - the port has no way to delete a secret
                raise StorageError(f"secret {name!r} vanished while being created") from None
            return stored
        return secret

    async def seal(self, name: str, sealed: StoredSecret) -> bool:
        result = await self._conn.execute(_SECRET_SEAL, {
            "b_name": name, "b_value": sealed.value, "b_encryption": sealed.encryption.value})
        return result.rowcount == 1

    async def names(self) -> Sequence[str]:
        return list((await self._conn.execute(_SECRET_NAMES)).scalars())

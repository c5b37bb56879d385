"""SQL repository of device authorizations: issue, look up, and the compare-and-set transitions
(RFC 8628 §3.5 single use) whose rowcount decides between concurrent callers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ...protocol.models import (
    DeviceAuthorization,
    DeviceStatus,
    RequestOrigin,
    Timestamp,
)
from ...protocol.proximity import NetworkFacts
from . import tables as t
from .dml import amr_of, amr_text
from .dml import insert as _insert
from .dml import insert_unless_taken as _insert_unless_taken
from .dml import purge as _purge
from .dml import purge_statement as _purge_statement
from .dml import split_words as _split

_c = t.clients
_u = t.users
_d = t.device_authorizations
_r = t.refresh_tokens
_s = t.server_secrets


# -------------------------------------------------------------------------- device authorizations

_DEVICE_BY_DEVICE_CODE = select(_d).where(_d.c.device_code_hash == bindparam("b_device_code_hash"))
_DEVICE_BY_USER_CODE = select(_d).where(_d.c.user_code_hash == bindparam("b_user_code_hash"))
_DEVICE_INSERT = _insert_unless_taken(_d)

_POLL_SET: dict[str, Any] = {
    "last_polled_at": bindparam("b_last_polled_at"),
    "interval": bindparam("b_interval"),
}
_POLL_WHERE = (
    _d.c.device_code_hash == bindparam("b_device_code_hash"),
    _d.c.status == DeviceStatus.PENDING.value,
)
# Two statements rather than IS NOT DISTINCT FROM, which SQLite spells IS: ``= NULL`` is never
# true, so the first poll (no stored poll time yet) needs its own ``IS NULL`` form.
_POLL_AFTER_POLL = (
    update(_d)
    .where(*_POLL_WHERE, _d.c.last_polled_at == bindparam("b_expected_last_polled_at"))
    .values(_POLL_SET)
)
_POLL_FIRST = update(_d).where(*_POLL_WHERE, _d.c.last_polled_at.is_(None)).values(_POLL_SET)

_DEVICE_TRANSITION = (
    update(_d)
    .where(
        _d.c.device_code_hash == bindparam("b_device_code_hash"),
        _d.c.status == bindparam("b_expected"),
    )
    .values(
        status=bindparam("b_status"),
        user_id=bindparam("b_user_id"),
        auth_time=bindparam("b_auth_time"),
        decided_at=bindparam("b_decided_at"),
        amr=bindparam("b_amr"),
        last_polled_at=bindparam("b_last_polled_at"),
    )
)
_DEVICE_PURGE = _purge_statement(_d, _d.c.device_code_hash)

_a = t.code_accounts
_ACCOUNT_INSERT = _insert_unless_taken(_a)
# The row lock of this UPDATE orders racing accounts: each reads the count its own bump made.
_ACCOUNT_BUMP = (
    update(_d).where(_d.c.device_code_hash == bindparam("b_device_code_hash"))
    .values(accounts_tried=_d.c.accounts_tried + 1).returning(_d.c.accounts_tried)
)
_ACCOUNT_COUNT = select(_d.c.accounts_tried).where(
    _d.c.device_code_hash == bindparam("b_device_code_hash"))
_ACCOUNT_PURGE = delete(_a).where(_a.c.expires_at < bindparam("b_before"))


def _network(row: Row[Any]) -> NetworkFacts | None:
    if row.net_local is None:
        return None
    return NetworkFacts(
        row.ip_address, country=row.net_country, country_name=row.net_country_name,
        asn=row.net_asn, as_org=row.net_as_org, hosting=row.net_hosting,
        local=bool(row.net_local),
    )


def _network_values(facts: NetworkFacts | None) -> dict[str, Any]:
    if facts is None:
        return dict.fromkeys(("net_country", "net_country_name", "net_asn", "net_as_org",
                              "net_hosting", "net_local"))
    return {
        "net_country": facts.country, "net_country_name": facts.country_name,
        "net_asn": facts.asn, "net_as_org": facts.as_org, "net_hosting": facts.hosting,
        "net_local": int(facts.local),
    }


def _device(row: Row[Any]) -> DeviceAuthorization:
    return DeviceAuthorization(
        device_code_hash=row.device_code_hash,
        user_code_hash=row.user_code_hash,
        client_id=row.client_id,
        scope=_split(row.scope),
        status=DeviceStatus(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
        interval=row.interval,
        origin=RequestOrigin(ip_address=row.ip_address, user_agent=row.user_agent),
        last_polled_at=row.last_polled_at,
        user_id=row.user_id,
        auth_time=row.auth_time,
        decided_at=row.decided_at,
        network=_network(row),
        amr=amr_of(row.amr),
    )


class SqlDeviceAuthorizations:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, record: DeviceAuthorization) -> None:
        """Insert; ``AlreadyExistsError`` when the user code hash (or device code hash) is taken,
        and the transaction stays usable so the service can retry with a fresh code."""
        values = {
            "device_code_hash": record.device_code_hash,
            "user_code_hash": record.user_code_hash,
            "client_id": record.client_id,
            "scope": " ".join(record.scope),
            "status": record.status.value,
            "created_at": record.created_at,
            "expires_at": record.expires_at,
            "interval": record.interval,
            "ip_address": record.origin.ip_address,
            "user_agent": record.origin.user_agent,
            "last_polled_at": record.last_polled_at,
            "user_id": record.user_id,
            "auth_time": record.auth_time,
            "decided_at": record.decided_at,
            "amr": amr_text(record.amr),
            **_network_values(record.network),
        }
        await _insert(self._conn, _DEVICE_INSERT, values, "code collision")

    async def get_by_device_code(self, device_code_hash: str) -> DeviceAuthorization | None:
        params = {"b_device_code_hash": device_code_hash}
        row = (await self._conn.execute(_DEVICE_BY_DEVICE_CODE, params)).first()
        return None if row is None else _device(row)

    async def get_by_user_code(self, user_code_hash: str) -> DeviceAuthorization | None:
        params = {"b_user_code_hash": user_code_hash}
        row = (await self._conn.execute(_DEVICE_BY_USER_CODE, params)).first()
        return None if row is None else _device(row)

    async def transition(self, record: DeviceAuthorization, expected: DeviceStatus) -> bool:
        """Move to ``record.status`` with its decision fields only if the stored status is still
        ``expected``; exactly one of any number of concurrent callers gets True.

        Carries out single use: a device code is exchanged for tokens once, as an authorization
        code is (RFC 6749 §4.1.2: "The client MUST NOT use the authorization code more than
        once"), and a pending request is decided once (pending → approved | denied). The row
        lock makes each loser re-check the status after the winner commits and update 0 rows."""
        params = {
            "b_device_code_hash": record.device_code_hash,
            "b_expected": expected.value,
            "b_status": record.status.value,
            "b_user_id": record.user_id,
            "b_auth_time": record.auth_time,
            "b_decided_at": record.decided_at,
            "b_amr": amr_text(record.amr),
            "b_last_polled_at": record.last_polled_at,
        }
        result = await self._conn.execute(_DEVICE_TRANSITION, params)
        return result.rowcount == 1

    async def note_account(self, device_code_hash: str, user_id: str,
                           expires_at: Timestamp) -> int:
        """Insert (code, account) unless there; only a new pair bumps the code's counter, in
        one UPDATE … RETURNING whose row lock serialises racing accounts (hit-then-test)."""
        inserted = await self._conn.execute(_ACCOUNT_INSERT[self._conn.dialect.name], {
            "device_code_hash": device_code_hash, "user_id": user_id, "expires_at": expires_at})
        params = {"b_device_code_hash": device_code_hash}
        if inserted.rowcount == 1:
            count = (await self._conn.execute(_ACCOUNT_BUMP, params)).scalar()
        else:
            count = (await self._conn.execute(_ACCOUNT_COUNT, params)).scalar()
        return int(count or 0)

    async def purge(self, expired_before: Timestamp, limit: int) -> int:
        """Delete up to ``limit`` records whose ``expires_at`` is before ``expired_before``,
        and the accounts noted for codes expired by then (a few rows per code)."""
        await self._conn.execute(_ACCOUNT_PURGE, {"b_before": expired_before})
        return await _purge(self._conn, _DEVICE_PURGE, expired_before, limit)

"""The person's side of the flow (RFC 8628 §3.3): which codes can be acted on, and decisions."""

from __future__ import annotations

import dataclasses

import pytest

from deviceflow.protocol.models import DeviceAuthorization, DeviceStatus, RequestOrigin
from deviceflow.protocol.verification import Decision, decide, is_actionable

CREATED = 1_800_000_000.0
RECORD = DeviceAuthorization(
    device_code_hash="d", user_code_hash="u", client_id="tv", scope=("openid",),
    status=DeviceStatus.PENDING, created_at=CREATED, expires_at=CREATED + 600, interval=5,
    origin=RequestOrigin("203.0.113.5", "ua"),
)


def with_status(status: DeviceStatus) -> DeviceAuthorization:
    return dataclasses.replace(RECORD, status=status)


@pytest.mark.parametrize(
    ("record", "now", "actionable"),
    [
        (RECORD, CREATED + 1, True),
        (RECORD, CREATED + 599.9, True),
        (RECORD, CREATED + 600, False),
        (None, CREATED, False),
        (with_status(DeviceStatus.APPROVED), CREATED + 1, False),
        (with_status(DeviceStatus.DENIED), CREATED + 1, False),
        (with_status(DeviceStatus.REDEEMED), CREATED + 1, False),
    ],
    ids=["pending", "last-moment", "expired", "unknown", "approved", "denied", "redeemed"],
)
def test_only_pending_unexpired_codes_are_actionable(
    record: DeviceAuthorization | None, now: float, actionable: bool
) -> None:
    assert is_actionable(record, now) is actionable


@pytest.mark.parametrize(
    ("decision", "status"),
    [(Decision.APPROVE, DeviceStatus.APPROVED), (Decision.DENY, DeviceStatus.DENIED)],
    ids=["approve", "deny"],
)
def test_decide_records_who_and_when(decision: Decision, status: DeviceStatus) -> None:
    new = decide(RECORD, decision, "u1", CREATED + 5, CREATED + 9)
    assert (new.status, new.user_id, new.auth_time, new.decided_at) == (
        status, "u1", CREATED + 5, CREATED + 9)
    assert RECORD.status is DeviceStatus.PENDING  # records are values

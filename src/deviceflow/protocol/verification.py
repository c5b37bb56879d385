"""The end-user side of the device flow (RFC 8628 §3.3): looking a code up and recording the
person's decision. The rules that make the page no oracle live here."""

from __future__ import annotations

import dataclasses
from enum import StrEnum

from .models import PASSWORD_AMR, DeviceAuthorization, DeviceStatus, Timestamp


class Decision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


def is_actionable(record: DeviceAuthorization | None, now: Timestamp) -> bool:
    """A code can be acted on only while pending and unexpired. Unknown, expired, used and denied
    codes are deliberately indistinguishable to the person typing (RFC 8628 §5.1)."""
    return record is not None and record.status is DeviceStatus.PENDING and now < record.expires_at


def decide(
    record: DeviceAuthorization, decision: Decision, user_id: str, auth_time: Timestamp,
    now: Timestamp, amr: tuple[str, ...] = PASSWORD_AMR,
) -> DeviceAuthorization:
    """The record after the person's decision; storage applies it only if still pending.
    ``amr`` (RFC 8176) says how the person had signed in, for the tokens."""
    status = DeviceStatus.APPROVED if decision is Decision.APPROVE else DeviceStatus.DENIED
    return dataclasses.replace(
        record, status=status, user_id=user_id, auth_time=auth_time, decided_at=now, amr=amr
    )

"""The audit log's vocabulary: which security-relevant events are recorded, and what one record
holds. Pure values; the service records them (``server/service/audit.py``) and storage keeps them
append-only (``storage.interface.AuditLogRepository``).

A record never holds a secret: no device code, user code, token, password or client secret, and
no hash of one either (a code's HMAC would only help someone who holds a copy of the database
test guesses). ``family_id`` is a hash of the device code's HMAC taken once more
(``grants.device_code.family_id``), the id that links a request to its approval and tokens."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .models import Timestamp


class AuditEventType(StrEnum):
    DEVICE_AUTHORIZATION_REQUESTED = "device_authorization_requested"
    CODE_ENTRY_REFUSED = "code_entry_refused"
    """A typed user code that is unknown, expired, used or denied (RFC 8628 §5.1 guesses)."""
    CODE_ENTRY_THROTTLED = "code_entry_throttled"
    SIGN_IN_SUCCEEDED = "sign_in_succeeded"
    SIGN_IN_FAILED = "sign_in_failed"
    SIGN_IN_THROTTLED = "sign_in_throttled"
    FACTOR_ENROLLED = "factor_enrolled"
    """A second factor (an authenticator app) was confirmed by its owner."""
    FACTOR_FAILED = "factor_failed"
    """A verification code or recovery code was refused after a correct password."""
    FACTOR_RESET = "factor_reset"
    """An operator removed a person's second factors (``deviceflow user mfa --reset``)."""
    RECOVERY_CODE_USED = "recovery_code_used"
    APPROVED = "approved"
    DENIED = "denied"
    TOKENS_ISSUED = "tokens_issued"
    """``grant_type`` names the grant that issued them."""
    REFRESHED = "refreshed"
    REFRESH_REUSE_DETECTED = "refresh_reuse_detected"
    """A rotated refresh token presented outside the grace window: its family was revoked."""
    REVOKED = "revoked"
    """Tokens or a sign-in revoked; ``actor`` says by whom."""
    KEY_ROTATED = "key_rotated"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    """A person withdrew a remembered consent (issue 11); that client's devices of theirs were
    signed out in the same transaction (their own ``revoked`` rows)."""
    PROXIMITY_ASSESSED = "proximity_assessed"
    """A risk judgement at consent (RFC 10027 §6.1.1); ``detail`` holds the level, the
    reasons and the policy: ``risk=high reasons=hosting_device policy=warn``."""


class AuditActor(StrEnum):
    """Who caused a ``revoked`` (or any operator-side) event."""

    PERSON = "person"  # the signed-in user, e.g. "Sign out" on their devices page
    OPERATOR = "operator"  # the operator CLI
    CLIENT = "client"  # the client itself, e.g. RFC 7009 revocation
    SERVER = "server"  # the server's own rule, e.g. a redeemed device code replayed


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One append-only audit record. Fields that do not apply are ``None``."""

    event: AuditEventType
    occurred_at: Timestamp
    user_id: str | None = None
    client_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    family_id: str | None = None
    request_id: str | None = None
    grant_type: str | None = None
    actor: AuditActor | None = None
    detail: str | None = None
    """A short, non-secret note: the budgets that throttled, how many tokens were revoked."""


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of a read of the log; every given filter must match. Newest first."""

    user_id: str | None = None
    client_id: str | None = None
    since: Timestamp | None = None
    events: frozenset[AuditEventType] = frozenset()
    limit: int = 1000


__all__ = ["AuditActor", "AuditEvent", "AuditEventType", "AuditQuery"]

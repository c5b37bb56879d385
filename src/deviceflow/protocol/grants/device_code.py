"""The device access token request (RFC 8628 §3.4–§3.5)."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from ..errors import (
    AccessDeniedError,
    AuthorizationPendingError,
    ExpiredTokenError,
    InvalidGrantError,
    OAuthError,
    SlowDownError,
    UnauthorizedClientError,
)
from ..models import (
    DEVICE_CODE_GRANT,
    Client,
    DeviceAuthorization,
    DeviceStatus,
    Timestamp,
    TokenPolicy,
)
from ..params import FormParams

GRANT_TYPE = DEVICE_CODE_GRANT

SLOW_DOWN_STEP = 5
"""RFC 8628 §3.5: "the interval MUST be increased by 5 seconds for this and all subsequent
requests"."""

POLL_TOLERANCE = 0.5
"""Seconds of slack for network jitter: a client that waits its interval may still arrive a little
early because its previous response was slow to reach it."""


@dataclass(frozen=True, slots=True)
class DeviceCodeRequest:
    device_code: str


@dataclass(frozen=True, slots=True)
class Pending:
    """Answer ``authorization_pending`` after recording the poll."""

    record: DeviceAuthorization


@dataclass(frozen=True, slots=True)
class SlowDown:
    """Answer ``slow_down`` after recording the poll and the longer interval."""

    record: DeviceAuthorization


@dataclass(frozen=True, slots=True)
class Redeem:
    """Mark the approved code redeemed (compare-and-set) and, if that wins, issue tokens."""

    record: DeviceAuthorization


@dataclass(frozen=True, slots=True)
class Replayed:
    """A redeemed code came back: revoke the refresh tokens issued from it (``family_id``),
    then answer ``invalid_grant``."""

    family_id: str


PollDecision = Pending | SlowDown | Redeem | Replayed


def family_id(record: DeviceAuthorization) -> str:
    """The refresh-token family a redemption of ``record`` starts, derived from its device code
    HMAC so a replayed code finds its tokens without another column; hashed once more so the
    family id (which may be shown, e.g. to name a signed-in device) does not reveal the code
    HMAC."""
    digest = hashlib.sha256(b"deviceflow-family:" + record.device_code_hash.encode())
    return digest.hexdigest()[:32]


def parse(params: FormParams) -> DeviceCodeRequest:
    return DeviceCodeRequest(device_code=params.require("device_code"))


def poll(record: DeviceAuthorization | None, client: Client, now: Timestamp) -> PollDecision:
    """Decide one poll of the token endpoint with a device code.

    Order matters: an unknown code or another client's code is ``invalid_grant`` before anything
    else; a code past expiry is ``expired_token`` whatever its status, except that a redeemed code
    is a replay, answered ``invalid_grant`` (RFC 8628 §3.5 and RFC 6749 §5.2) after the
    tokens issued from it are revoked.
    """
    if GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClientError(f"client {client.client_id!r} lacks the device grant")
    if record is None:
        raise InvalidGrantError("unknown device code")
    if record.client_id != client.client_id:
        raise InvalidGrantError("device code issued to another client")
    if record.status is DeviceStatus.REDEEMED:
        # RFC 6749 §4.1.2, for the code this grant stands in for: "If an authorization code is
        # used more than once, the authorization server MUST deny the request and SHOULD revoke
        # (when possible) all tokens previously issued based on that authorization code."
        return Replayed(family_id(record))
    if now >= record.expires_at:
        raise ExpiredTokenError("device code expired")
    if record.status is DeviceStatus.DENIED:
        raise AccessDeniedError("user denied")
    if record.status is DeviceStatus.APPROVED:
        return Redeem(dataclasses.replace(record, status=DeviceStatus.REDEEMED, last_polled_at=now))
    last = record.last_polled_at
    if last is not None and now - last + POLL_TOLERANCE < record.interval:
        return SlowDown(
            dataclasses.replace(
                record, interval=record.interval + SLOW_DOWN_STEP, last_polled_at=now
            )
        )
    return Pending(dataclasses.replace(record, last_polled_at=now))


def outcome_error(decision: Pending | SlowDown) -> OAuthError:
    """The RFC 8628 §3.5 error that answers a poll that did not redeem."""
    if isinstance(decision, SlowDown):
        return SlowDownError(f"interval now {decision.record.interval}")
    return AuthorizationPendingError()


def token_policy(client: Client, policy: TokenPolicy) -> TokenPolicy:
    """The token lifetimes of a login begun by the device grant: the client's shorter
    device-grant lifetimes where it has them (RFC 10027 §6.1.10 "Short-Lived Tokens": they
    limit what a phished approval is worth). Access tokens of the login, refreshed or not, live
    at most ``device_access_token_lifetime``; the whole login (its refresh-token family) ends
    at most ``device_refresh_token_lifetime`` after the approval. Never longer than the
    server's."""
    access, refresh = client.device_access_token_lifetime, client.device_refresh_token_lifetime
    if not access and not refresh:
        return policy
    def capped(server: int, own: int | None) -> int:
        return min(server, own) if own else server

    return dataclasses.replace(
        policy,
        access_token_lifetime=capped(policy.access_token_lifetime, access),
        refresh_token_lifetime=capped(policy.refresh_token_lifetime, refresh),
        refresh_token_absolute_lifetime=capped(policy.refresh_token_absolute_lifetime, refresh),
    )

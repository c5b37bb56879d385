"""The device access token request (RFC 8628 §3.4–§3.5): every outcome and its precedence."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deviceflow.protocol.errors import (
    AccessDeniedError,
    AuthorizationPendingError,
    ExpiredTokenError,
    InvalidGrantError,
    InvalidRequestError,
    OAuthError,
    SlowDownError,
    UnauthorizedClientError,
)
from deviceflow.protocol.grants import GRANT_TYPES
from deviceflow.protocol.grants import device_code as grant
from deviceflow.protocol.models import (
    DEVICE_CODE_GRANT,
    REFRESH_TOKEN_GRANT,
    Client,
    ClientType,
    DeviceAuthorization,
    DeviceStatus,
    RequestOrigin,
)
from deviceflow.protocol.params import FormParams

CREATED = 1_800_000_000.0
EXPIRES = CREATED + 600
TV = Client("tv", "TV", ClientType.PUBLIC, frozenset({DEVICE_CODE_GRANT}), frozenset({"openid"}))
OTHER = dataclasses.replace(TV, client_id="other")


def record(
    status: DeviceStatus = DeviceStatus.PENDING, *, last: float | None = None,
    interval: int = 5, client_id: str = "tv",
) -> DeviceAuthorization:
    decided = status in (DeviceStatus.APPROVED, DeviceStatus.DENIED, DeviceStatus.REDEEMED)
    return DeviceAuthorization(
        device_code_hash="dh", user_code_hash="uh", client_id=client_id, scope=("openid",),
        status=status, created_at=CREATED, expires_at=EXPIRES, interval=interval,
        origin=RequestOrigin("203.0.113.5", "ua"), last_polled_at=last,
        user_id="u1" if decided else None, auth_time=CREATED + 10 if decided else None,
        decided_at=CREATED + 10 if decided else None,
    )


def outcome(rec: DeviceAuthorization | None, client: Client, now: float) -> str:
    """The RFC 8628 §3.5 answer for one poll, as the error code or "redeem"."""
    try:
        decision = grant.poll(rec, client, now)
    except OAuthError as exc:
        return exc.error
    if isinstance(decision, grant.Redeem):
        return "redeem"
    if isinstance(decision, grant.Replayed):
        return "replayed"  # answered invalid_grant once its tokens are revoked
    return grant.outcome_error(decision).error


LATE = EXPIRES + 1
EARLY = CREATED + 30
S = DeviceStatus


@pytest.mark.parametrize(
    ("rec", "client", "now", "expected"),
    [
        # unknown or another client's code: invalid_grant before anything else
        (None, TV, EARLY, "invalid_grant"),
        (None, TV, LATE, "invalid_grant"),
        (record(S.APPROVED, client_id="other"), TV, EARLY, "invalid_grant"),
        (record(S.PENDING, client_id="other"), TV, LATE, "invalid_grant"),
        (record(S.DENIED, client_id="other"), TV, EARLY, "invalid_grant"),
        # redeemed: a replay (invalid_grant, tokens revoked), even past expiry
        (record(S.REDEEMED), TV, EARLY, "replayed"),
        (record(S.REDEEMED), TV, LATE, "replayed"),
        # past expiry: expired_token whatever else (pending, denied, approved)
        (record(S.PENDING), TV, LATE, "expired_token"),
        (record(S.PENDING), TV, EXPIRES, "expired_token"),
        (record(S.DENIED), TV, LATE, "expired_token"),
        (record(S.APPROVED), TV, LATE, "expired_token"),
        # the person's decision
        (record(S.DENIED), TV, EARLY, "access_denied"),
        (record(S.APPROVED), TV, EARLY, "redeem"),
        (record(S.APPROVED), TV, EXPIRES - 0.001, "redeem"),
        # an approved code is redeemed even when polled too fast: slow_down is for waiting
        (record(S.APPROVED, last=EARLY - 1), TV, EARLY, "redeem"),
        # still pending
        (record(S.PENDING), TV, EARLY, "authorization_pending"),
        (record(S.PENDING, last=EARLY - 5), TV, EARLY, "authorization_pending"),
        (record(S.PENDING, last=EARLY - 1), TV, EARLY, "slow_down"),
        # a client without the device grant is unauthorized_client, whatever the code
        (record(S.APPROVED), dataclasses.replace(TV, grant_types=frozenset()), EARLY,
         "unauthorized_client"),
        (None, dataclasses.replace(TV, grant_types=frozenset({REFRESH_TOKEN_GRANT})), EARLY,
         "unauthorized_client"),
    ],
    ids=["unknown", "unknown-late", "other-client-approved", "other-client-expired",
         "other-client-denied", "redeemed", "redeemed-late", "expired-pending",
         "expired-at-the-instant", "expired-denied", "expired-approved", "denied", "approved",
         "approved-last-instant", "approved-fast-poll", "pending-first-poll",
         "pending-after-interval", "pending-too-fast", "no-device-grant",
         "no-device-grant-unknown-code"],
)
def test_poll_outcome_and_precedence(
    rec: DeviceAuthorization | None, client: Client, now: float, expected: str
) -> None:
    assert outcome(rec, client, now) == expected


def test_other_clients_code_is_invalid_grant_for_the_other_client_too() -> None:
    assert outcome(record(S.APPROVED), OTHER, EARLY) == "invalid_grant"


def test_redeem_marks_the_record_redeemed() -> None:
    decision = grant.poll(record(S.APPROVED), TV, EARLY)
    assert isinstance(decision, grant.Redeem)
    assert decision.record.status is DeviceStatus.REDEEMED
    assert decision.record.last_polled_at == EARLY
    assert decision.record.user_id == "u1"


def test_a_redeemed_code_names_the_family_its_redemption_started() -> None:
    # RFC 6749 §4.1.2: the tokens issued from a code used twice are revoked.
    decision = grant.poll(record(S.REDEEMED), TV, EARLY)
    assert decision == grant.Replayed(grant.family_id(record(S.REDEEMED)))
    other = dataclasses.replace(record(S.REDEEMED), device_code_hash="dh2")
    assert grant.family_id(other) != decision.family_id  # one family per code
    assert "dh" not in decision.family_id  # the code HMAC is not revealed
    assert len(decision.family_id) == 32


def test_pending_records_the_poll_and_keeps_the_interval() -> None:
    decision = grant.poll(record(last=EARLY - 5), TV, EARLY)
    assert isinstance(decision, grant.Pending)
    assert decision.record.last_polled_at == EARLY
    assert decision.record.interval == 5


def test_slow_down_adds_five_seconds() -> None:
    decision = grant.poll(record(last=EARLY - 1), TV, EARLY)
    assert isinstance(decision, grant.SlowDown)
    assert decision.record.interval == 10
    assert decision.record.last_polled_at == EARLY
    assert grant.SLOW_DOWN_STEP == 5


@pytest.mark.parametrize(
    ("gap", "expected"),
    [(5.0, "authorization_pending"), (4.6, "authorization_pending"), (4.5, "authorization_pending"),
     (4.4, "slow_down"), (0.0, "slow_down")],
    ids=["interval", "within-tolerance", "tolerance-edge", "past-tolerance", "same-instant"],
)
def test_poll_tolerance_for_network_jitter(gap: float, expected: str) -> None:
    assert grant.POLL_TOLERANCE == 0.5
    assert outcome(record(last=EARLY - gap), TV, EARLY) == expected


def test_interval_grows_by_five_for_all_later_polls() -> None:
    """RFC 8628 §3.5: "the interval MUST be increased by 5 seconds for this and all subsequent
    requests". A client that keeps polling every 5 s keeps hearing slow_down; one that waits the
    grown interval is answered authorization_pending, and the interval never shrinks back."""
    rec, now = record(), EARLY
    script = [
        (0, "authorization_pending", 5),
        (5, "authorization_pending", 5),
        (1, "slow_down", 10),
        (5, "slow_down", 15),
        (15, "authorization_pending", 15),
        (10, "slow_down", 20),
        (20, "authorization_pending", 20),
        (20, "authorization_pending", 20),
    ]
    for gap, expected, interval in script:
        now += gap
        decision = grant.poll(rec, TV, now)
        assert not isinstance(decision, grant.Redeem)
        assert grant.outcome_error(decision).error == expected
        rec = decision.record
        assert rec.interval == interval


@given(st.lists(st.floats(min_value=0, max_value=40, allow_nan=False), min_size=1, max_size=30))
def test_slow_down_iff_early_and_interval_only_grows(gaps: list[float]) -> None:
    rec, now = record(), CREATED
    for gap in gaps:
        now += gap
        if now >= EXPIRES:
            break
        before = rec
        decision = grant.poll(rec, TV, now)
        assert not isinstance(decision, grant.Redeem)
        rec = decision.record
        early = before.last_polled_at is not None and (
            now - before.last_polled_at + grant.POLL_TOLERANCE < before.interval
        )
        assert isinstance(decision, grant.SlowDown) is early
        assert rec.interval == before.interval + (5 if early else 0)
        assert rec.last_polled_at == now


@pytest.mark.parametrize(
    ("decision", "error"),
    [(grant.Pending(record()), AuthorizationPendingError),
     (grant.SlowDown(record()), SlowDownError)],
    ids=["pending", "slow_down"],
)
def test_outcome_error(decision: grant.Pending | grant.SlowDown, error: type[OAuthError]) -> None:
    assert type(grant.outcome_error(decision)) is error


@pytest.mark.parametrize(
    ("rec", "error"),
    [(record(S.DENIED), AccessDeniedError), (record(S.PENDING), None)],
    ids=["denied", "pending"],
)
def test_expired_wins_over_everything_but_redeemed(
    rec: DeviceAuthorization, error: type[OAuthError] | None
) -> None:
    with pytest.raises(ExpiredTokenError):
        grant.poll(rec, TV, LATE)
    if error is not None:
        with pytest.raises(error):
            grant.poll(rec, TV, EARLY)


def test_parse_needs_device_code() -> None:
    assert grant.parse(FormParams({"device_code": "abc"})) == grant.DeviceCodeRequest("abc")
    with pytest.raises(InvalidRequestError):
        grant.parse(FormParams({}))


def test_registry_knows_every_grant() -> None:
    assert GRANT_TYPES == ("authorization_code", DEVICE_CODE_GRANT, "client_credentials",
                           REFRESH_TOKEN_GRANT)
    assert grant.GRANT_TYPE == "urn:ietf:params:oauth:grant-type:device_code"


def test_errors_are_the_rfc_ones() -> None:
    with pytest.raises(InvalidGrantError):
        grant.poll(None, TV, EARLY)
    with pytest.raises(UnauthorizedClientError):
        grant.poll(None, dataclasses.replace(TV, grant_types=frozenset()), EARLY)

"""The pure side of notifications: back-off, fan-out, the stored JSON, the webhook body, and
e-mail address syntax."""

from __future__ import annotations

import json

import pytest

from deviceflow.protocol.email_address import EmailAddressRefused, normalized_email
from deviceflow.protocol.notifications import (
    Destinations,
    GiveUp,
    Notification,
    NotificationType,
    OutboxKind,
    Retry,
    RetryPolicy,
    after_failure,
    fan_out,
    from_json,
    to_json,
    webhook_body,
)

T0 = 1_800_000_000.0
APPROVED = Notification("evt_1", NotificationType.APPROVED, T0, client_id="tv",
                        user_id="sub-a", family_id="f1", ip_address="192.0.2.44",
                        user_agent="TV/1")


@pytest.mark.parametrize(("attempts", "expected"), [
    (1, Retry(T0 + 30)),        # base
    (2, Retry(T0 + 60)),        # doubling
    (3, Retry(T0 + 120)),
    (7, Retry(T0 + 1920)),
    (8, GiveUp()),              # max_attempts reached
])
def test_back_off_doubles_and_gives_up(attempts: int, expected: Retry | GiveUp) -> None:
    assert after_failure(attempts, T0, RetryPolicy(base=30, cap=3600, max_attempts=8)) == expected


def test_back_off_is_capped() -> None:
    assert after_failure(20, T0, RetryPolicy(base=30, cap=3600, max_attempts=50)) == Retry(
        T0 + 3600)


def test_fan_out_emails_only_approvals_to_people_with_an_address() -> None:
    both = Destinations(webhooks=("https://a.example/h", "https://b.example/h"), email=True)
    assert fan_out(APPROVED, both, "ann@example.com") == [
        (OutboxKind.WEBHOOK, "https://a.example/h"), (OutboxKind.WEBHOOK, "https://b.example/h"),
        (OutboxKind.EMAIL, "ann@example.com")]
    assert fan_out(APPROVED, both, None) == [(OutboxKind.WEBHOOK, "https://a.example/h"),
                                             (OutboxKind.WEBHOOK, "https://b.example/h")]
    denied = Notification("evt_2", NotificationType.DENIED, T0)
    assert [k for k, _ in fan_out(denied, both, "ann@example.com")] == [OutboxKind.WEBHOOK] * 2
    assert fan_out(APPROVED, Destinations(email=False), "ann@example.com") == []
    assert not Destinations().any


def test_the_stored_json_round_trips_and_tolerates_newer_fields() -> None:
    risky = Notification("evt_3", NotificationType.HIGH_RISK_REQUEST, T0, risk="high",
                         reasons=("a data centre", "another country"), network="AWS")
    for n in (APPROVED, risky):
        assert from_json(to_json(n)) == n
    newer = json.loads(to_json(APPROVED)) | {"added_later": 1}
    assert from_json(json.dumps(newer)) == APPROVED


def test_the_webhook_body_is_the_standard_envelope() -> None:
    body = json.loads(webhook_body(APPROVED))
    assert body["type"] == "approved"
    assert body["timestamp"] == "2027-01-15T08:00:00Z"
    assert body["data"]["device"] == {"ip_address": "192.0.2.44", "user_agent": "TV/1",
                                      "network": None, "place": None}
    assert body["data"]["risk"] is None
    assert body["data"]["schema_version"] == 1
    risky = Notification("evt_3", NotificationType.HIGH_RISK_REQUEST, T0, risk="high",
                         reasons=("a data centre",))
    assert json.loads(webhook_body(risky))["data"]["risk"] == {"level": "high",
                                                               "reasons": ["a data centre"]}


@pytest.mark.parametrize(("address", "normalized"), [
    ("ann@example.com", "ann@example.com"),
    ("Ann@EXAMPLE.com", "Ann@example.com"),
    ("ann@bücher.example", "ann@bücher.example"),
])
def test_addresses_are_normalized(address: str, normalized: str) -> None:
    assert normalized_email(address) == normalized


@pytest.mark.parametrize("address", [
    "ann", "ann@", "@example.com", "Ann <ann@example.com>", "ann@example", "a b@example.com",
    "x" * 250 + "@example.com",
])
def test_bad_addresses_are_refused_in_a_sentence(address: str) -> None:
    with pytest.raises(EmailAddressRefused, match="e-mail address"):
        normalized_email(address)

"""Notifications: the out-of-band warnings that let a person and an operator recover fast after
a device is signed in (RFC 10027 / BCP 247 on cross-device flows: tell the user, out of band,
what was approved, so a phished approval is noticed and undone). Pure values and rules; the
service writes them into an outbox in the transaction of what they report
(``server/service/notify.py``) and a background task delivers them (``server/notifications``).

A notification never holds a secret: no device code, user code, token or password, and no hash
of one. ``family_id`` is the same public id the audit log uses."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from .models import Timestamp

SCHEMA_VERSION = 1
"""Of the webhook payload (docs/operator.md, "Webhooks"): a field is only ever added."""


class NotificationType(StrEnum):
    """What happened; the webhook payload's ``type``."""

    APPROVED = "approved"
    """A person approved a device authorization (RFC 8628 §3.3): a device signs in."""
    DENIED = "denied"
    HIGH_RISK_REQUEST = "high_risk_request"
    """The risk judgement found a device authorization high-risk (emitted by the risk code)."""
    REFRESH_REUSE_DETECTED = "refresh_reuse_detected"
    """A rotated refresh token was replayed: its login was ended (RFC 9700 §4.14.2)."""
    REVOKED = "revoked"
    """A login (refresh-token family) was ended, by whoever ``actor`` names."""


EMAILED = frozenset({NotificationType.APPROVED})
"""The events the person is e-mailed about (the issue's "after every approval"); every event
goes to the operator's webhooks."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One event to deliver. Fields that do not apply are ``None``. The origin fields describe
    the *device* (where the device authorization came from), not whoever approved it."""

    event_id: str
    """Random and unique; the webhook's ``webhook-id``, the same on every retry, so a
    receiver can drop a delivery it has seen."""
    type: NotificationType
    occurred_at: Timestamp
    client_id: str | None = None
    user_id: str | None = None
    family_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    actor: str | None = None
    """Who ended a login: ``person``, ``operator``, ``client`` or ``server``."""
    detail: str | None = None
    network: str | None = None
    """The device's network, e.g. "Amazon AWS (AS16509), a hosting network", when known."""
    place: str | None = None
    """The device's place, e.g. "Frankfurt, Germany", when known."""
    risk: str | None = None
    """The risk level (``low``, ``elevated``, ``high``) when it was judged."""
    reasons: tuple[str, ...] = ()
    """The risk judgement's reasons in plain words."""
    client_name: str | None = None
    """Filled when the event is fanned out to its destinations (the name may change later)."""
    username: str | None = None


def to_json(notification: Notification) -> str:
    """The stored form (the outbox's ``payload``)."""
    data = asdict(notification)
    data["reasons"] = list(notification.reasons)
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def from_json(payload: str) -> Notification:
    data: dict[str, Any] = json.loads(payload)
    known = set(Notification.__dataclass_fields__)
    values = {k: v for k, v in data.items() if k in known}  # a newer writer's extra fields
    values["type"] = NotificationType(values["type"])
    values["reasons"] = tuple(values.get("reasons") or ())
    return Notification(**values)


def with_names(notification: Notification, client_name: str | None,
               username: str | None) -> Notification:
    return replace(notification, client_name=client_name, username=username)


def iso_time(when: Timestamp) -> str:
    """RFC 3339 in UTC, to the second."""
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def webhook_body(notification: Notification) -> bytes:
    """The JSON body of a webhook (the Standard Webhooks envelope: ``type``, ``timestamp``,
    ``data``); keys sorted and compact, so the bytes signed are the bytes sent."""
    n = notification
    data: dict[str, Any] = {
        "event_id": n.event_id,
        "schema_version": SCHEMA_VERSION,
        "occurred_at": iso_time(n.occurred_at),
        "client_id": n.client_id,
        "client_name": n.client_name,
        "user_id": n.user_id,
        "username": n.username,
        "family_id": n.family_id,
        "device": {
            "ip_address": n.ip_address,
            "user_agent": n.user_agent,
            "network": n.network,
            "place": n.place,
        },
        "actor": n.actor,
        "detail": n.detail,
        "risk": None if n.risk is None else {"level": n.risk, "reasons": list(n.reasons)},
    }
    envelope = {"type": n.type.value, "timestamp": iso_time(n.occurred_at), "data": data}
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


# ----------------------------------------------------------------------------- the outbox


class OutboxKind(StrEnum):
    EVENT = "event"
    """An event not yet fanned out to its destinations (written in the request's transaction,
    so the request path needs no configuration and costs one row)."""
    EMAIL = "email"
    WEBHOOK = "webhook"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    """Given up after ``max_attempts``."""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One row of the outbox: an event to fan out, or one delivery to one destination."""

    message_id: str
    kind: OutboxKind
    event_id: str
    payload: str
    """``to_json`` of the notification."""
    created_at: Timestamp
    next_attempt_at: Timestamp
    destination: str | None = None
    """The webhook URL or the e-mail address; ``None`` for an event."""
    attempts: int = 0
    status: OutboxStatus = OutboxStatus.PENDING
    claimed_until: Timestamp | None = None
    last_error: str | None = None
    finished_at: Timestamp | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: float = 30.0
    """Seconds before the first retry; each further retry waits twice as long."""
    cap: float = 3600.0
    max_attempts: int = 8
    lease: float = 300.0
    """How long a claim holds a message: longer than any send may take, so a message is sent
    twice only when a worker died (or hung) holding it."""


@dataclass(frozen=True, slots=True)
class Retry:
    at: Timestamp


@dataclass(frozen=True, slots=True)
class GiveUp:
    pass


def after_failure(attempts: int, now: Timestamp, policy: RetryPolicy) -> Retry | GiveUp:
    """Exponential back-off: the ``attempts``-th failed attempt (≥ 1) waits
    ``base · 2^(attempts-1)`` seconds, at most ``cap``; after ``max_attempts`` it gives up."""
    if attempts >= policy.max_attempts:
        return GiveUp()
    return Retry(now + min(policy.cap, policy.base * 2 ** (attempts - 1)))


@dataclass(frozen=True, slots=True)
class Destinations:
    """Where events go, from the server's settings."""

    webhooks: tuple[str, ...] = ()
    email: bool = False
    """SMTP is configured: e-mail the person, when they have an address."""

    @property
    def any(self) -> bool:
        return bool(self.webhooks) or self.email


def fan_out(notification: Notification, destinations: Destinations,
            email_address: str | None) -> list[tuple[OutboxKind, str]]:
    """The deliveries one event makes: each webhook; and an e-mail when SMTP is configured,
    the event is one the person is told about, and they have an address."""
    out = [(OutboxKind.WEBHOOK, url) for url in destinations.webhooks]
    if destinations.email and email_address and notification.type in EMAILED:
        out.append((OutboxKind.EMAIL, email_address))
    return out


__all__ = [
    "EMAILED",
    "SCHEMA_VERSION",
    "Destinations",
    "GiveUp",
    "Notification",
    "NotificationType",
    "OutboxKind",
    "OutboxMessage",
    "OutboxStatus",
    "Retry",
    "RetryPolicy",
    "after_failure",
    "fan_out",
    "from_json",
    "iso_time",
    "to_json",
    "webhook_body",
    "with_names",
]

"""What the sans-I/O flows (flow.py) and their drivers (sync.py, aio.py) exchange.

- ``SendRequest`` → the driver sends it and replies with an ``HttpResponse`` or a
  ``TransportFailure``;
- ``Sleep`` → the driver waits that long and replies ``None``;
- ``ShowCode`` → the driver shows the code to the person and replies ``None``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeAlias, TypeVar
from urllib.parse import quote

from deviceflow.client.tokens import DeviceCode

__all__ = [
    "Clock",
    "Event",
    "Flow",
    "HttpRequest",
    "HttpResponse",
    "Reply",
    "SendRequest",
    "ShowCode",
    "Sleep",
    "SleepReason",
    "TransportFailure",
]

_SECRET_FIELDS = frozenset(
    {"device_code", "refresh_token", "client_secret", "token", "access_token", "id_token", "code",
     "code_verifier"}
)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    form: tuple[tuple[str, str], ...] | None = None

    def redacted_form(self) -> str:
        """The form for debug output: values of secret fields replaced by ``***``."""
        if self.form is None:
            return ""
        return "&".join(
            f"{k}={'***' if k in _SECRET_FIELDS else quote(v, safe=' :')}" for k, v in self.form
        )

    def __repr__(self) -> str:
        return f"HttpRequest({self.method} {self.url} {self.redacted_form()})"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """The request did not get an HTTP response (refused, reset, DNS, timeout)."""

    reason: str


class SleepReason(StrEnum):
    POLL = "poll"  # waiting the polling interval
    SLOW_DOWN = "slow_down"  # the server asked to slow down; the interval grew
    BACKOFF = "backoff"  # a transient error; retrying later
    EXPIRY = "expiry"  # waiting out the last seconds before the code expires


@dataclass(frozen=True, slots=True)
class SendRequest:
    request: HttpRequest


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float
    reason: SleepReason = SleepReason.POLL
    detail: str = ""
    # BACKOFF: which retry this wait comes before (1-based), and how many there can be
    # (0: no limit, e.g. polling keeps retrying until the code expires).
    retry: int = 0
    retries: int = 0
    # POLL and SLOW_DOWN: the polling interval in force (RFC 8628 §3.5), without the drift margin.
    interval: float = 0.0


@dataclass(frozen=True, slots=True)
class ShowCode:
    device_code: DeviceCode


Event: TypeAlias = SendRequest | Sleep | ShowCode
Reply: TypeAlias = HttpResponse | TransportFailure | None
T = TypeVar("T")
Flow: TypeAlias = Generator[Event, Reply, T]


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...

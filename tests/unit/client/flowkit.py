"""Helpers for driving the sans-I/O flows in tests: a fake clock and scripted replies."""
# imported as tests.unit.client.flowkit

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from deviceflow.client.flow import (
    Event,
    HttpRequest,
    HttpResponse,
    Reply,
    SendRequest,
    ShowCode,
    Sleep,
    TransportFailure,
)


@dataclass
class FakeClock:
    now: float = 1_000.0
    wall_offset: float = 1_700_000_000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now + self.wall_offset


def js(status: int, body: object, **headers: str) -> HttpResponse:
    hdrs = (("Content-Type", "application/json"), *headers.items())
    return HttpResponse(status, tuple(hdrs), json.dumps(body).encode())


@dataclass
class Script:
    """Answers SendRequest events from a list (or a function), advances the clock on Sleep and
    records everything the flow did."""

    clock: FakeClock
    replies: list[HttpResponse | TransportFailure] = field(default_factory=list)
    handler: Callable[[HttpRequest], HttpResponse | TransportFailure] | None = None
    requests: list[HttpRequest] = field(default_factory=list)
    sleeps: list[Sleep] = field(default_factory=list)
    shown: list[ShowCode] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)

    def __call__(self, event: Event) -> Reply:
        if isinstance(event, SendRequest):
            self.requests.append(event.request)
            self.request_times.append(self.clock.now)
            if self.handler is not None:
                return self.handler(event.request)
            return self.replies.pop(0)
        if isinstance(event, Sleep):
            self.sleeps.append(event)
            self.clock.now += event.seconds
            return None
        self.shown.append(event)
        return None

    def poll_gaps(self) -> Sequence[float]:
        times = self.request_times[1:]  # after the device authorization request
        return [b - a for a, b in itertools.pairwise(times)]

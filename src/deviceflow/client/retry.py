"""Sending with retries: transient failures (no response, 429, 5xx), exponential backoff and the
server's ``Retry-After`` (RFC 9110 §10.2.3), sans-I/O like the flows that use it (flow.py)."""

from __future__ import annotations

import email.utils
from collections.abc import Generator

from deviceflow.client.errors import NetworkError, ServerResponseError
from deviceflow.client.messages import (
    Clock,
    Event,
    HttpRequest,
    HttpResponse,
    Reply,
    SendRequest,
    Sleep,
    SleepReason,
    TransportFailure,
)
from deviceflow.client.responses import describe, error_from

__all__ = ["MAX_BACKOFF", "is_transient", "retry_after", "send", "send_with_retry"]

# The longest wait between two tries, whatever the backoff or the server's Retry-After says: a
# longer wait would look like a hang, and one more early 429 costs nothing.
MAX_BACKOFF = 60.0


def send(request: HttpRequest) -> Generator[Event, Reply, HttpResponse | TransportFailure]:
    reply = yield SendRequest(request)
    if not isinstance(reply, HttpResponse | TransportFailure):
        raise TypeError("a driver must answer SendRequest with HttpResponse or TransportFailure")
    return reply


def is_transient(reply: HttpResponse | TransportFailure) -> bool:
    return isinstance(reply, TransportFailure) or reply.status == 429 or reply.status >= 500


def _http_date(value: str) -> float | None:
    """RFC 9110 §5.6.7 HTTP-date (IMF-fixdate, and the obsolete RFC 850 and asctime forms a
    recipient MUST accept) as seconds since the epoch; None when it is not one."""
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    year = parsed[0]
    if year < 100:  # RFC 850's two-digit year (§5.6.7: within 50 years of now)
        parsed = (year + (1900 if year >= 70 else 2000), *parsed[1:])
    try:
        return float(email.utils.mktime_tz(parsed))
    except (OverflowError, ValueError):
        return None


def retry_after(
    reply: HttpResponse | TransportFailure, clock: Clock | None = None
) -> float | None:
    """RFC 9110 §10.2.3 ``Retry-After``: ``delay-seconds`` or an ``HTTP-date``, as the seconds to
    wait (at most ``MAX_BACKOFF``); None when absent or unreadable (the caller's backoff applies).

    A date is measured against the response's own ``Date`` (§6.6.1, the server's clock, so a skewed
    local clock does not matter), else against ``clock``; a date in the past means "now".
    """
    if not isinstance(reply, HttpResponse):
        return None
    value = (reply.header("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), MAX_BACKOFF)
    when = _http_date(value)
    if when is None:
        return None
    sent = _http_date(reply.header("Date") or "")
    if sent is None:
        if clock is None:
            return None
        sent = clock.time()
    return min(max(0.0, when - sent), MAX_BACKOFF)


def send_with_retry(
    request: HttpRequest,
    *,
    attempts: int = 3,
    first_delay: float = 1.0,
    clock: Clock | None = None,
) -> Generator[Event, Reply, HttpResponse]:
    """Send, retrying transient failures (no response, 429, 5xx) with exponential backoff.

    A ``Retry-After`` (RFC 9110 §10.2.3) replaces the backoff for that wait, capped at
    ``MAX_BACKOFF``; each ``Sleep`` says which retry it precedes and how many there can be.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        reply = yield from send(request)
        if not is_transient(reply):
            assert isinstance(reply, HttpResponse)
            return reply
        if attempt == attempts:
            tries = f"; gave up after {attempts} tries" if attempts > 1 else ""
            if isinstance(reply, TransportFailure):
                raise NetworkError(describe(reply, request.url).rstrip(".") + tries + ".")
            error = error_from(reply, {})
            if error is not None:
                raise error
            raise ServerResponseError(describe(reply, request.url).rstrip(".") + tries + ".")
        asked = retry_after(reply, clock)
        wait = delay if asked is None else asked
        yield Sleep(
            min(wait, MAX_BACKOFF),
            SleepReason.BACKOFF,
            describe(reply, request.url),
            retry=attempt,
            retries=attempts - 1,
        )
        delay *= 2
    raise AssertionError("unreachable")

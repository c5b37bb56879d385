"""Retries when the server is down, busy or not speaking TLS (issue 12 §3): what the person is
told, and how long the flows wait (sans-I/O, a fake clock: no real sleeping)."""

from __future__ import annotations

import email.utils
import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest
from tests.unit.client.flowkit import FakeClock, Script, js

from deviceflow.cli.signin import retry_sentence
from deviceflow.client.errors import NetworkError, ServerResponseError
from deviceflow.client.flow import (
    MAX_BACKOFF,
    ClientAuth,
    HttpRequest,
    HttpResponse,
    ServerMetadata,
    Sleep,
    SleepReason,
    TransportFailure,
    device_flow,
    refresh,
    run_to_completion,
    send_with_retry,
)
from deviceflow.client.retry import retry_after
from deviceflow.client.sync import send
from deviceflow.server.embedded import free_port

META = ServerMetadata(
    issuer="https://id.example.com",
    token_endpoint="https://id.example.com/token",
    device_authorization_endpoint="https://id.example.com/device_authorization",
)
AUTH = ClientAuth("my-device")
TOKEN = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}


def code(interval: int) -> dict[str, object]:
    return {
        "device_code": "dc-secret",
        "user_code": "BCDF-GHJK",
        "verification_uri": "https://id.example.com/device",
        "expires_in": 600,
        "interval": interval,
    }


def backoffs(script: Script) -> list[Sleep]:
    return [s for s in script.sleeps if s.reason is SleepReason.BACKOFF]


# --- the real transport: what went wrong, in words -----------------------------------------


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_closed_port_is_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/token"
    with httpx.Client() as http:
        reply = send(http, HttpRequest("GET", url))
    assert reply == TransportFailure("connection refused")


def test_https_to_a_plain_http_server_says_so(plain_http_port: int) -> None:
    url = f"https://127.0.0.1:{plain_http_port}/.well-known/openid-configuration"
    with httpx.Client() as http:
        reply = send(http, HttpRequest("GET", url))
    assert isinstance(reply, TransportFailure)
    assert reply.reason == (
        "the server is not speaking HTTPS on that port; use http:// for a plain-HTTP server"
    )
    assert "SSL" not in reply.reason


def test_server_down_message_names_the_retry_and_the_real_wait() -> None:
    down = TransportFailure("connection refused")
    script = Script(FakeClock(), [down, down])
    flow = send_with_retry(HttpRequest("GET", "http://127.0.0.1:1/x"), attempts=2, first_delay=0.5)
    with pytest.raises(NetworkError) as caught:
        run_to_completion(flow, script)
    (pause,) = script.sleeps
    assert (pause.seconds, pause.retry, pause.retries) == (0.5, 1, 1)
    assert retry_sentence(pause) == (
        "Could not connect to http://127.0.0.1:1/x (connection refused); trying again in "
        "0.5 seconds (retry 1 of 1)."
    )
    assert str(caught.value) == (
        "Could not connect to http://127.0.0.1:1/x (connection refused); gave up after 2 tries."
    )


@pytest.mark.parametrize(
    ("seconds", "retry", "retries", "said"),
    [
        (0.5, 1, 2, "trying again in 0.5 seconds (retry 1 of 2)."),
        (0.0, 2, 2, "trying again now (retry 2 of 2)."),
        (1.0, 1, 3, "trying again in 1 second (retry 1 of 3)."),
        (20.0, 3, 0, "trying again in 20 seconds (retry 3)."),
        (2.2, 1, 0, "trying again in 2.2 seconds (retry 1)."),
    ],
)
def test_retry_sentence_never_says_zero_seconds(
    seconds: float, retry: int, retries: int, said: str
) -> None:
    text = retry_sentence(Sleep(seconds, SleepReason.BACKOFF, "X.", retry, retries))
    assert text == "X; " + said
    assert " in 0 seconds" not in text


# --- Retry-After is the server's word, not a floor for exponential backoff -------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_two_seconds_is_two_seconds_in_send_with_retry(status: int) -> None:
    busy = HttpResponse(status, (("Retry-After", "2"),), b"")
    script = Script(FakeClock(), [busy, busy, js(200, TOKEN)])
    run_to_completion(refresh(META, AUTH, "rt", script.clock), script)
    assert [(s.seconds, s.retry, s.retries) for s in script.sleeps] == [(2.0, 1, 2), (2.0, 2, 2)]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_two_seconds_while_polling_is_not_forty(status: int) -> None:
    busy = HttpResponse(status, (("Retry-After", "2"),), b"")
    script = Script(FakeClock(), [js(200, code(5)), busy, busy, busy, js(200, TOKEN)])
    run_to_completion(device_flow(META, AUTH, ("openid",), script.clock), script)
    # RFC 8628 §3.5: never sooner than the interval (5 s + 10 %); the old code waited 10, 20, 40.
    assert [s.seconds for s in backoffs(script)] == pytest.approx([5.5, 5.5, 5.5])
    assert [s.retry for s in backoffs(script)] == [1, 2, 3]
    assert max(script.poll_gaps()) == pytest.approx(5.5)


def test_retry_after_longer_than_the_interval_wins_while_polling() -> None:
    busy = HttpResponse(429, (("Retry-After", "2"),), b"")
    script = Script(FakeClock(), [js(200, code(1)), busy, busy, busy, js(200, TOKEN)])
    run_to_completion(device_flow(META, AUTH, ("openid",), script.clock), script)
    assert [s.seconds for s in backoffs(script)] == [2.0, 2.0, 2.0]


def test_without_retry_after_polling_still_backs_off_exponentially() -> None:
    busy = HttpResponse(503, (), b"")
    script = Script(FakeClock(), [js(200, code(5)), busy, busy, busy, js(200, TOKEN)])
    run_to_completion(device_flow(META, AUTH, ("openid",), script.clock), script)
    assert [s.seconds for s in backoffs(script)] == [10.0, 20.0, 40.0]


def test_busy_to_the_end_is_a_server_error_with_the_count() -> None:
    busy = HttpResponse(503, (("Retry-After", "2"),), b"")
    script = Script(FakeClock(), [busy, busy, busy])
    with pytest.raises(ServerResponseError, match=r"answered HTTP 503; gave up after 3 tries"):
        run_to_completion(refresh(META, AUTH, "rt", script.clock), script)


# --- Retry-After as an HTTP-date (RFC 9110 §10.2.3), measured against the server's Date -----


@pytest.mark.parametrize(
    "when",
    [
        "Sun, 06 Nov 1994 08:49:40 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:40 GMT",  # obsolete RFC 850 form
        "Sun Nov  6 08:49:40 1994",  # obsolete asctime form
    ],
)
def test_retry_after_http_date_forms_are_measured_from_the_response_date(when: str) -> None:
    busy = HttpResponse(
        503, (("Date", "Sun, 06 Nov 1994 08:49:37 GMT"), ("Retry-After", when)), b""
    )
    assert retry_after(busy) == 3.0


def test_retry_after_http_date_without_date_header_uses_the_clock() -> None:
    clock = FakeClock()
    when = email.utils.formatdate(clock.time() + 4, usegmt=True)
    busy = HttpResponse(429, (("Retry-After", when),), b"")
    assert retry_after(busy, clock) == pytest.approx(4.0)
    # No Date and no clock: unreadable, the caller's own backoff applies.
    assert retry_after(busy) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:30 GMT", 0.0),  # in the past: now
        ("Sun, 06 Nov 1994 09:49:37 GMT", MAX_BACKOFF),  # an hour: capped
        ("3600", MAX_BACKOFF),
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after_is_capped_and_unreadable_values_are_ignored(
    value: str, expected: float | None
) -> None:
    busy = HttpResponse(
        503, (("Date", "Sun, 06 Nov 1994 08:49:37 GMT"), ("Retry-After", value)), b""
    )
    assert retry_after(busy) == expected


def test_retry_after_date_is_honoured_by_refresh_and_polling() -> None:
    clock = FakeClock()
    date = email.utils.formatdate(clock.time(), usegmt=True)
    later = email.utils.formatdate(clock.time() + 2, usegmt=True)
    busy = HttpResponse(503, (("Date", date), ("Retry-After", later)), b"")
    script = Script(clock, [busy, js(200, TOKEN)])
    run_to_completion(refresh(META, AUTH, "rt", script.clock), script)
    assert [s.seconds for s in script.sleeps] == [2.0]

    clock = FakeClock()
    date = email.utils.formatdate(clock.time(), usegmt=True)
    much_later = email.utils.formatdate(clock.time() + 8, usegmt=True)
    busy = HttpResponse(429, (("Date", date), ("Retry-After", much_later)), b"")
    script = Script(clock, [js(200, code(5)), busy, js(200, TOKEN)])
    run_to_completion(device_flow(META, AUTH, ("openid",), script.clock), script)
    # Longer than the 5.5 s interval: the server's 8 s, not the exponential 10 s.
    assert [s.seconds for s in backoffs(script)] == [8.0]

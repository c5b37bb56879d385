"""The sans-I/O device flow, driven by scripted replies and a fake clock (RFC 8628 §3.1-§3.5)."""

from __future__ import annotations

import pytest
from tests.unit.client.flowkit import FakeClock, Script, js

from deviceflow.client.errors import (
    AccessDeniedError,
    ExpiredTokenError,
    InvalidClientError,
    NetworkError,
    OAuthError,
    ServerResponseError,
    TimedOutError,
)
from deviceflow.client.flow import (
    DEVICE_CODE_GRANT_TYPE,
    ClientAuth,
    HttpResponse,
    ServerMetadata,
    SleepReason,
    TransportFailure,
    device_flow,
    obtain_token,
    refresh,
    revoke,
    run_to_completion,
)
from deviceflow.client.providers import ProviderKind, provider_for

META = ServerMetadata(
    issuer="https://id.example.com",
    token_endpoint="https://id.example.com/token",
    device_authorization_endpoint="https://id.example.com/device_authorization",
)
AUTH = ClientAuth("my-device")
CODE = {
    "device_code": "dc-secret",
    "user_code": "BCDF-GHJK",
    "verification_uri": "https://id.example.com/device",
    "verification_uri_complete": "https://id.example.com/device?user_code=BCDF-GHJK",
    "expires_in": 600,
    "interval": 2,
}
TOKEN = {
    "access_token": "at-1",
    "token_type": "Bearer",
    "expires_in": 3600,
    "refresh_token": "rt-1",
}
PENDING = js(400, {"error": "authorization_pending"})


def run(script: Script, **kwargs: object) -> object:
    flow = device_flow(META, AUTH, ("openid", "offline_access"), script.clock, **kwargs)  # type: ignore[arg-type]
    return run_to_completion(flow, script)


def test_happy_path_sends_the_rfc_requests_and_returns_the_tokens() -> None:
    clock = FakeClock()
    script = Script(clock, [js(200, CODE), PENDING, PENDING, js(200, TOKEN)])
    token = run(script)
    assert token.access_token == "at-1"  # type: ignore[attr-defined]
    assert token.refresh_token == "rt-1"  # type: ignore[attr-defined]
    assert token.expires_at == pytest.approx(clock.time() + 3600 - 0, abs=0.01)  # type: ignore[attr-defined]
    first, *polls = script.requests
    assert first.url == META.device_authorization_endpoint
    assert dict(first.form or ()) == {"client_id": "my-device", "scope": "openid offline_access"}
    assert ("Accept", "application/json") in first.headers
    assert len(polls) == 3
    for poll in polls:
        assert dict(poll.form or ()) == {
            "client_id": "my-device",
            "grant_type": DEVICE_CODE_GRANT_TYPE,
            "device_code": "dc-secret",
        }
    assert [s.device_code.user_code for s in script.shown] == ["BCDF-GHJK"]


def test_polls_no_faster_than_the_interval_with_a_drift_margin() -> None:
    script = Script(FakeClock(), [js(200, CODE), PENDING, PENDING, PENDING, js(200, TOKEN)])
    run(script)
    assert all(gap >= 2.0 for gap in script.poll_gaps())
    assert all(gap <= 2.0 * 1.25 for gap in script.poll_gaps())


@pytest.mark.parametrize(
    ("interval", "expected"),
    [(None, 5.0), ("7", 7.0), (0, 5.0), ("", 5.0)],
    ids=["missing-uses-5", "string-number", "zero-uses-5", "empty-string-uses-5"],
)
def test_interval_missing_or_as_string(interval: object, expected: float) -> None:
    body = {k: v for k, v in CODE.items() if k != "interval"}
    if interval is not None:
        body["interval"] = interval
    script = Script(FakeClock(), [js(200, body), PENDING, js(200, TOKEN)])
    run(script)
    assert script.shown[0].device_code.interval == expected
    assert script.sleeps[0].seconds >= expected


def test_numbers_sent_as_strings_are_accepted() -> None:
    body = dict(CODE, expires_in="900", interval="5")
    token = dict(TOKEN, expires_in="3599")
    script = Script(FakeClock(), [js(200, body), js(200, token)])
    result = run(script)
    assert script.shown[0].device_code.expires_in == 900
    assert result.expires_in(script.clock.time()) == 3599  # type: ignore[attr-defined]


def test_slow_down_adds_five_seconds_each_time() -> None:
    slow = js(400, {"error": "slow_down"})
    script = Script(FakeClock(), [js(200, CODE), slow, slow, PENDING, js(200, TOKEN)])
    run(script)
    gaps = script.poll_gaps()
    # interval 2 → 7 → 12 (each with the drift margin)
    assert gaps[0] >= 7
    assert gaps[1] >= 12
    assert gaps[2] >= 12
    assert [s.reason for s in script.sleeps[1:3]] == [SleepReason.SLOW_DOWN, SleepReason.SLOW_DOWN]


def test_slow_down_adopts_a_larger_interval_from_the_server() -> None:
    # GitHub's slow_down carries the interval to use from now on (HTTP 200, JSON body).
    slow = js(200, {"error": "slow_down", "interval": 20})
    script = Script(FakeClock(), [js(200, CODE), slow, js(200, TOKEN)])
    run(script)
    assert script.poll_gaps()[0] >= 20


def test_slow_down_never_shrinks_below_plus_five() -> None:
    slow = js(400, {"error": "slow_down", "interval": 1})
    script = Script(FakeClock(), [js(200, CODE), slow, js(200, TOKEN)])
    run(script)
    assert script.poll_gaps()[0] >= 7


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (js(400, {"error": "access_denied"}), AccessDeniedError),
        (js(400, {"error": "expired_token"}), ExpiredTokenError),
        (js(401, {"error": "invalid_client"}), InvalidClientError),
        (js(400, {"error": "something_new", "error_description": "nope"}), OAuthError),
        (HttpResponse(200, (), b"<html>"), ServerResponseError),
    ],
    ids=["access_denied", "expired_token", "invalid_client", "unknown-error", "not-json"],
)
def test_stops_at_once_on_a_final_answer(reply: HttpResponse, error: type[Exception]) -> None:
    script = Script(FakeClock(), [js(200, CODE), PENDING, reply, js(200, TOKEN)])
    with pytest.raises(error):
        run(script)
    assert len(script.requests) == 3  # no poll after the final answer


def test_denied_is_one_plain_sentence() -> None:
    script = Script(FakeClock(), [js(200, CODE), js(400, {"error": "access_denied"})])
    with pytest.raises(AccessDeniedError) as caught:
        run(script)
    assert str(caught.value) == "The sign-in was declined on the other device."


def test_gives_up_locally_when_the_code_expires() -> None:
    body = dict(CODE, expires_in=11, interval=5)
    clock = FakeClock()
    script = Script(
        clock, handler=lambda r: js(200, body) if "device_authorization" in r.url else PENDING
    )
    start = clock.now
    with pytest.raises(ExpiredTokenError) as caught:
        run(script)
    assert str(caught.value) == "Device code expired. Please try again."
    assert clock.now - start == pytest.approx(11, abs=0.01)  # waited out the code, no longer
    assert script.request_times[-1] < start + 11  # never polled with an expired code


def test_local_timeout_ends_the_wait_earlier() -> None:
    clock = FakeClock()
    script = Script(
        clock, handler=lambda r: js(200, CODE) if "device_authorization" in r.url else PENDING
    )
    with pytest.raises(TimedOutError):
        run(script, timeout=7)
    assert clock.now - 1_000.0 == pytest.approx(7, abs=0.01)


def test_transient_errors_back_off_and_recover() -> None:
    script = Script(
        FakeClock(),
        [
            js(200, CODE),
            TransportFailure("connection refused"),
            HttpResponse(503, (), b"busy"),
            PENDING,
            js(200, TOKEN),
        ],
    )
    token = run(script)
    assert token.access_token == "at-1"  # type: ignore[attr-defined]
    reasons = [s.reason for s in script.sleeps]
    assert reasons[:3] == [SleepReason.POLL, SleepReason.BACKOFF, SleepReason.BACKOFF]
    assert script.sleeps[2].seconds > script.sleeps[1].seconds  # exponential


def test_retry_after_is_honoured_on_429() -> None:
    busy = HttpResponse(429, (("Retry-After", "30"),), b"")
    script = Script(FakeClock(), [js(200, CODE), busy, js(200, TOKEN)])
    run(script)
    assert script.sleeps[1].seconds >= 30


def test_device_authorization_retries_then_reports_the_network() -> None:
    down = TransportFailure("connection refused")
    script = Script(FakeClock(), [down, down, down])
    with pytest.raises(NetworkError, match="connection refused"):
        run(script)


def test_entra_authorization_declined_means_denied() -> None:
    quirks = provider_for(ProviderKind.ENTRA).quirks
    script = Script(FakeClock(), [js(200, CODE), js(400, {"error": "authorization_declined"})])
    with pytest.raises(AccessDeniedError):
        run(script, quirks=quirks)


def test_confidential_client_basic_and_post() -> None:
    basic = ClientAuth("id", "s3cr:t", "client_secret_basic")
    form: list[tuple[str, str]] = []
    headers: list[tuple[str, str]] = []
    basic.apply(form, headers)
    assert headers == [("Authorization", "Basic aWQ6czNjciUzQXQ=")]  # id:s3cr%3At
    post = ClientAuth("id", "secret", "client_secret_post")
    form = []
    post.apply(form, [])
    assert form == [("client_id", "id"), ("client_secret", "secret")]


def test_request_repr_never_shows_secrets() -> None:
    script = Script(FakeClock(), [js(200, CODE), js(200, TOKEN)])
    run(script)
    text = repr(script.requests) + repr(script.shown)
    assert "dc-secret" not in text
    assert "***" in text


def test_refresh_keeps_the_old_refresh_token_when_none_is_returned() -> None:
    clock = FakeClock()
    script = Script(
        clock, [js(200, {"access_token": "at-2", "token_type": "bearer", "expires_in": 60})]
    )
    token = run_to_completion(refresh(META, AUTH, "rt-1", clock), script)
    assert dict(script.requests[0].form or ()) == {
        "client_id": "my-device",
        "grant_type": "refresh_token",
        "refresh_token": "rt-1",
    }
    assert token.token_type == "Bearer"
    assert token.refresh_token is None
    from deviceflow.client.tokens import TokenSet

    merged = token.merged_with(TokenSet(access_token="at-1", refresh_token="rt-1"))
    assert merged.refresh_token == "rt-1"


def test_obtain_token_falls_back_to_the_device_flow_when_refresh_is_refused() -> None:
    clock = FakeClock()
    script = Script(
        clock,
        [js(400, {"error": "invalid_grant"}), js(200, CODE), js(200, TOKEN)],
    )
    token, fresh = run_to_completion(
        obtain_token(META, AUTH, ("openid",), clock, refresh_token="rt-old"), script
    )
    assert fresh is True
    assert token.access_token == "at-1"


def test_obtain_token_refreshes_silently() -> None:
    clock = FakeClock()
    script = Script(clock, [js(200, TOKEN)])
    _token, fresh = run_to_completion(
        obtain_token(META, AUTH, ("openid",), clock, refresh_token="rt-old"), script
    )
    assert fresh is False
    assert script.shown == []


def test_revoke_posts_rfc7009_form() -> None:
    script = Script(FakeClock(), [HttpResponse(200)])
    run_to_completion(revoke("https://id.example.com/revoke", AUTH, "rt", "refresh_token"), script)
    assert dict(script.requests[0].form or ()) == {
        "client_id": "my-device",
        "token": "rt",
        "token_type_hint": "refresh_token",
    }


def test_server_text_has_control_characters_stripped() -> None:
    body = dict(
        CODE, user_code="\x1b[2JBCDF-GHJK\x07", verification_uri="https://x/\x1b]0;pwned\x07d"
    )
    script = Script(FakeClock(), [js(200, body), js(200, TOKEN)])
    run(script)
    code = script.shown[0].device_code
    assert "\x1b" not in code.user_code
    assert "\x07" not in code.user_code
    assert "\x1b" not in code.verification_uri

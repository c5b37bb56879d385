"""``--output events``: every kind of event, its fields and order, driven through the real
sans-I/O device flow with a fake clock (no sleeping); and the troubleshooting sentences."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from tests.unit.cli.clienv import invoke
from tests.unit.client.flowkit import FakeClock, Script, js

from deviceflow.cli.events import EventsView
from deviceflow.cli.exit_codes import ExitCode, exit_code_for
from deviceflow.client.errors import AccessDeniedError, ExpiredTokenError, InvalidScopeError
from deviceflow.client.flow import (
    ClientAuth,
    Event,
    HttpResponse,
    Reply,
    ServerMetadata,
    TransportFailure,
    device_flow,
    run_to_completion,
)

META = ServerMetadata(
    issuer="https://id.example.com",
    token_endpoint="https://id.example.com/token",
    device_authorization_endpoint="https://id.example.com/device_authorization",
)
AUTH = ClientAuth("my-device")
CODE = {
    "device_code": "dc-secret-value",
    "user_code": "BCDF-GHJK",
    "verification_uri": "https://id.example.com/device",
    "verification_uri_complete": "https://id.example.com/device?user_code=BCDF-GHJK",
    "expires_in": 600,
    "interval": 5,
}
TOKEN = {"access_token": "at-secret-value", "token_type": "Bearer", "expires_in": 3600}


def drive(replies: list[HttpResponse | TransportFailure]) -> tuple[list[dict[str, Any]], object]:
    clock = FakeClock()
    script = Script(clock, replies)
    stream = io.StringIO()
    view = EventsView(stream, monotonic=clock.monotonic, wall=clock.time)

    def answer(event: Event) -> Reply:
        view.on_event(event)
        return script(event)

    outcome: object
    try:
        outcome = run_to_completion(device_flow(META, AUTH, ("openid",), clock), answer)
        view.succeeded("myapp")
    except (AccessDeniedError, ExpiredTokenError, InvalidScopeError) as exc:
        view.failed(int(exit_code_for(exc)), str(exc))
        outcome = exc
    text = stream.getvalue()
    assert "secret-value" not in text  # never a device code or token in an event
    lines = [json.loads(line) for line in text.splitlines()]
    assert text.endswith("\n")
    assert len(lines) == text.count("\n")
    return lines, outcome


def test_every_event_in_order_with_its_fields() -> None:
    pending = js(400, {"error": "authorization_pending"})
    slow = js(400, {"error": "slow_down"})
    busy = HttpResponse(503, (("Retry-After", "7"),), b"")
    lines, _ = drive([js(200, CODE), pending, slow, busy, pending, js(200, TOKEN)])
    assert [e["event"] for e in lines] == [
        "code_issued",
        "polling",
        "polling",
        "slow_down",
        "retrying",
        "polling",
        "succeeded",
    ]
    assert lines[0] == {
        "event": "code_issued",
        "user_code": "BCDF-GHJK",
        "verification_uri": "https://id.example.com/device",
        "verification_uri_complete": "https://id.example.com/device?user_code=BCDF-GHJK",
        "expires_in": 600,
        "expires_at": "2023-11-14T22:40:00Z",  # FakeClock: time() 1_700_001_000 + 600 s
        "interval": 5.0,
        "message": None,
    }
    assert lines[1] == {"event": "polling", "interval": 5.0, "next_poll_in": 5.5, "expires_in": 600}
    # RFC 8628 §3.5: slow_down adds 5 s to the interval.
    assert lines[3]["interval"] == 10.0
    assert lines[3]["next_poll_in"] == 12.0
    assert set(lines[3]) == {"event", "interval", "next_poll_in", "expires_in"}
    assert lines[4] == {
        "event": "retrying",
        "reason": "The server at https://id.example.com/token answered HTTP 503.",
        "retry": 1,
        "retries": None,
        "next_try_in": 12.0,  # Retry-After 7, never sooner than the (grown) interval
    }
    assert lines[-1] == {"event": "succeeded", "profile": "myapp", "signed_in": True}


def test_denied_is_a_failed_event_with_exit_4_and_the_sentence() -> None:
    lines, _ = drive([js(200, CODE), js(400, {"error": "access_denied"})])
    assert lines[-1] == {
        "event": "failed",
        "exit_code": 4,
        "reason": "The sign-in was declined on the other device.",
    }


def test_expired_is_a_failed_event_with_exit_5_and_the_pages_sentence() -> None:
    lines, _ = drive([js(200, CODE), js(400, {"error": "expired_token"})])
    assert lines[-1] == {
        "event": "failed",
        "exit_code": 5,
        "reason": "Device code expired. Please try again.",
    }


def test_invalid_scope_names_the_scopes_asked_for() -> None:
    lines, outcome = drive([js(400, {"error": "invalid_scope"})])
    assert isinstance(outcome, InvalidScopeError)
    assert outcome.scopes == ("openid",)
    assert lines == [
        {
            "event": "failed",
            "exit_code": int(ExitCode.SERVER),
            "reason": "The server rejected the requested scope(s): openid (invalid_scope).",
        }
    ]


@pytest.mark.parametrize(
    ("description", "scopes", "said"),
    [
        (
            "unknown scope: admin",
            ("openid", "admin"),
            "The server rejected the requested scope(s): openid admin (invalid_scope: unknown "
            "scope: admin).",
        ),
        (
            None,
            (),
            "The server rejected the requested scope(s): (none: the client's default scopes) "
            "(invalid_scope).",
        ),
    ],
)
def test_invalid_scope_sentence(
    description: str | None, scopes: tuple[str, ...], said: str
) -> None:
    assert str(InvalidScopeError("invalid_scope", description).for_scopes(scopes)) == said


@pytest.mark.parametrize("fd", ["0", "1"])
def test_events_fd_may_not_be_stdin_or_stdout(tmp_path: Path, fd: str) -> None:
    result = invoke(tmp_path, "get-token", "--events-fd", fd)
    assert result.code == 2
    assert "--events-fd cannot be 0 or 1" in result.err
    assert result.out == ""


def test_events_view_of_a_run_without_sign_in_is_only_succeeded() -> None:
    stream = io.StringIO()
    view = EventsView(stream)
    view.succeeded("myapp")
    assert [json.loads(line) for line in stream.getvalue().splitlines()] == [
        {"event": "succeeded", "profile": "myapp", "signed_in": False}
    ]

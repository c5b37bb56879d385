"""The sign-in views: plain lines without a terminal, words for durations, the QR code text."""

from __future__ import annotations

import io

import pytest

from deviceflow.cli.context import Env
from deviceflow.cli.signin import PlainView, RichView, make_view, qr_lines, words_for
from deviceflow.client.flow import ShowCode, Sleep, SleepReason
from deviceflow.client.tokens import DeviceCode

CODE = DeviceCode(
    device_code="secret-device-code",
    user_code="BCDF-GHJK",
    verification_uri="https://id.example.com/device",
    verification_uri_complete="https://id.example.com/device?user_code=BCDF-GHJK",
    expires_in=900,
    interval=5,
    received_at=0.0,
    message="To sign in, use a web browser to open the page https://microsoft.com/devicelogin",
)


def env() -> tuple[Env, io.StringIO]:
    err = io.StringIO()
    return Env(
        stdin=io.StringIO(), stdout=io.StringIO(), stderr=err, environ={}, hostname="raspberrypi"
    ), err


def test_plain_view_lines() -> None:
    e, err = env()
    view = PlainView(e)
    view.on_event(ShowCode(CODE))
    view.on_event(Sleep(5.5, SleepReason.POLL))
    view.on_event(
        Sleep(
            20,
            SleepReason.BACKOFF,
            "Could not connect to https://id.example.com/token (connection refused).",
        )
    )
    view.succeeded("pi")
    assert err.getvalue().splitlines() == [
        "To sign in, use a web browser to open the page:",
        "    https://id.example.com/device",
        "And enter the code: BCDF-GHJK",
        "(Or open https://id.example.com/device?user_code=BCDF-GHJK which has the code filled in.)",
        "Message from the server: To sign in, use a web browser to open the page "
        "https://microsoft.com/devicelogin",
        "The code expires in 15 minutes.",
        "Only enter this code if you started this sign-in on raspberrypi.",
        "Waiting for authentication...",
        "Could not connect to https://id.example.com/token (connection refused); trying again in "
        "20 seconds.",
        "Authentication successful.",
        "Token saved to profile 'pi'.",
    ]
    assert "\x1b" not in err.getvalue()
    assert "secret-device-code" not in err.getvalue()


def test_no_terminal_means_plain_view() -> None:
    e, _err = env()
    assert isinstance(make_view(e, show_qr=True), PlainView)


def test_dumb_terminal_means_plain_view() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    e = Env(stdin=Tty(), stdout=Tty(), stderr=Tty(), environ={"TERM": "dumb"}, hostname="h")
    assert isinstance(make_view(e, show_qr=True), PlainView)
    e = Env(stdin=Tty(), stdout=Tty(), stderr=Tty(), environ={"TERM": "xterm"}, hostname="h")
    assert isinstance(make_view(e, show_qr=True), RichView)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (900, "15 minutes"),
        (600, "10 minutes"),
        (125, "2 minutes"),
        (60, "1 minute"),
        (45, "45 seconds"),
        (1, "1 second"),
        (0, "0 seconds"),
        (-3, "0 seconds"),
    ],
)
def test_words_for(seconds: float, words: str) -> None:
    assert words_for(seconds) == words


def test_qr_code_shape_and_finder_patterns() -> None:
    lines = qr_lines("https://id.example.com/device?user_code=BCDF-GHJK")
    width = len(lines[0])
    assert all(len(line) == width for line in lines)
    assert len(lines) == (width + 1) // 2  # two modules per character row
    # The top-left finder pattern: a 7-module dark border after the 2-module quiet zone.
    assert lines[1][2:9] == "█▀▀▀▀▀█"
    assert set("".join(lines)) <= {"█", "▀", "▄", " "}

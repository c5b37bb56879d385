"""``--output events``: the sign-in as JSON lines, for programs that show the code their own way
(a GUI, a TV screen, an agent). The schema is documented in docs/cli.md ("Sign-in events").

One JSON object per line, flushed at once, each with ``"event"`` naming its kind:
``code_issued``, ``polling``, ``slow_down``, ``retrying``, ``notice``, ``succeeded``, ``failed``.
A token, refresh token or device code never appears in an event.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import TextIO

from deviceflow.cli.exit_codes import CliError, ExitCode
from deviceflow.cli.fastpath import format_expiry
from deviceflow.client.flow import Event, ShowCode, Sleep, SleepReason

__all__ = ["EventsView", "open_events_fd"]


def open_events_fd(fd: int) -> TextIO:
    """A text stream on an inherited descriptor (``--events-fd 3`` with ``3>events.jsonl``)."""
    if fd in (0, 1):
        raise CliError(
            "--events-fd cannot be 0 or 1 (stdin, and stdout which carries the token); "
            "use 2 (stderr) or a descriptor of your own such as 3.",
            ExitCode.USAGE,
        )
    try:
        os.fstat(fd)
        return open(fd, "w", encoding="utf-8", closefd=False)  # the caller's fd: never closed here
    except OSError:
        raise CliError(
            f"--events-fd {fd}: no such open file descriptor (open it in the shell, e.g. "
            f"'{fd}>events.jsonl').",
            ExitCode.USAGE,
        ) from None


class EventsView:
    """Writes each sign-in event as one JSON line on ``stream``."""

    def __init__(
        self,
        stream: TextIO,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.stream = stream
        self.monotonic = monotonic
        self.wall = wall
        self.shown = False
        self._expires_at: float | None = None  # monotonic

    def _emit(self, body: dict[str, object]) -> None:
        self.stream.write(json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.stream.flush()

    def _expires_in(self) -> int | None:
        if self._expires_at is None:
            return None
        return max(0, int(self._expires_at - self.monotonic()))

    def on_event(self, event: Event) -> None:
        if isinstance(event, ShowCode):
            self.shown = True
            code = event.device_code
            self._expires_at = code.expires_at
            left = code.expires_at - self.monotonic()
            self._emit(
                {
                    "event": "code_issued",
                    "user_code": code.user_code,
                    "verification_uri": code.verification_uri,
                    "verification_uri_complete": code.verification_uri_complete,
                    "expires_in": max(0, int(left)),
                    "expires_at": format_expiry(self.wall() + left),
                    "interval": code.interval,
                    "message": code.message,
                }
            )
        elif isinstance(event, Sleep):
            if event.reason is SleepReason.POLL:
                self._emit(
                    {
                        "event": "polling",
                        "interval": event.interval,
                        "next_poll_in": round(event.seconds, 1),
                        "expires_in": self._expires_in(),
                    }
                )
            elif event.reason is SleepReason.SLOW_DOWN:
                self._emit(
                    {
                        "event": "slow_down",
                        "interval": event.interval,
                        "next_poll_in": round(event.seconds, 1),
                        "expires_in": self._expires_in(),
                    }
                )
            elif event.reason is SleepReason.BACKOFF:
                self._emit(
                    {
                        "event": "retrying",
                        "reason": event.detail,
                        "retry": event.retry,
                        "retries": event.retries or None,
                        "next_try_in": round(event.seconds, 1),
                    }
                )

    def notice(self, text: str) -> None:
        self._emit({"event": "notice", "message": text})

    def close(self) -> None:
        return None

    def succeeded(self, profile: str) -> None:
        self._emit({"event": "succeeded", "profile": profile, "signed_in": self.shown})

    def failed(self, exit_code: int, reason: str) -> None:
        self._emit({"event": "failed", "exit_code": exit_code, "reason": reason})

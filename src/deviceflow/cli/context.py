"""The environment a command runs in, injected rather than global: streams, terminal facts,
settings, host name and clock. Tests build one; ``Env.current()`` reads the real process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

from deviceflow.config.client import ClientSettings

__all__ = ["Env", "isatty"]


def isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _hostname() -> str:
    import socket

    return socket.gethostname() or "this computer"


@dataclass
class Env:
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    environ: Mapping[str, str]
    hostname: str = field(default_factory=_hostname)
    debug: bool = False
    # May the sign-in be shown on the controlling terminal (/dev/tty) when stderr is not one?
    # The real process: yes; environments built by tests and helpers: only when they say so.
    use_tty: bool = False
    # The failure was already told on stderr as a ``failed`` event (JSON lines there): main
    # must not add a plain sentence after it.
    failure_reported: bool = False
    _settings: ClientSettings | None = field(default=None, repr=False)

    @classmethod
    def current(cls) -> Env:
        return cls(
            stdin=sys.stdin, stdout=sys.stdout, stderr=sys.stderr, environ=os.environ, use_tty=True
        )

    @property
    def settings(self) -> ClientSettings:
        if self._settings is None:
            self._settings = ClientSettings.from_env(self.environ)
        return self._settings

    @property
    def stderr_is_terminal(self) -> bool:
        """Draw the box, QR and spinner? Only on a real terminal that understands them."""
        return isatty(self.stderr) and self.environ.get("TERM", "") != "dumb"

    @property
    def can_prompt(self) -> bool:
        """Ask questions? Only with a person at a terminal (stdin and stderr both ttys)."""
        return isatty(self.stdin) and isatty(self.stderr)

    def say(self, text: str = "") -> None:
        """A line for the person (stderr, so stdout stays clean for the token)."""
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def out(self, text: str) -> None:
        """The command's result (stdout)."""
        self.stdout.write(text)
        self.stdout.flush()

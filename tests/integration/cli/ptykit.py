"""A pseudo-terminal for the CLI: the person's screen, as a real controlling terminal.

``spawn`` starts a process in a new session whose controlling terminal is the pty's slave
(``setsid`` + ``TIOCSCTTY``), so ``/dev/tty`` in the child is this pty; its stdout and stderr go
wherever the test says (pipes, the pty itself, a file). ``Terminal.text`` is everything the
person saw, with the escape sequences removed.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

ESCAPES = re.compile(
    r"\x1b\[[0-9;?]*[ -/]*[@-~]"  # CSI: colours, cursor movement
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: titles, links
    r"|\x1b[=>()][0-9A-Za-z]?"  # keypad and charset switches
)


@dataclass
class Terminal:
    master: int
    slave: int
    raw: bytearray = field(default_factory=bytearray)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _grew: threading.Condition | None = None

    def __post_init__(self) -> None:
        self._grew = threading.Condition(self._lock)

    def _read(self) -> None:
        assert self._grew is not None
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every process has closed the slave; EBADF: closed by us
                return
            if not chunk:
                return
            with self._grew:
                self.raw.extend(chunk)
                self._grew.notify_all()

    def text(self) -> str:
        with self._lock:
            data = bytes(self.raw)
        return ESCAPES.sub("", data.decode("utf-8", "replace")).replace("\r", "")

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The first match of ``pattern`` in what the person saw, waiting for it to appear."""
        assert self._grew is not None
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.text())
            if match is not None:
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"never shown on the terminal: {pattern}\n{self.text()}")
            with self._grew:
                self._grew.wait(min(left, 0.5))


@contextmanager
def terminal(rows: int = 60, columns: int = 120) -> Iterator[Terminal]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    term = Terminal(master, slave)
    reader = threading.Thread(target=term._read, daemon=True)
    reader.start()
    try:
        yield term
    finally:
        os.close(slave)
        os.close(master)
        reader.join(5)


def _taker(slave: int) -> Callable[[], None]:
    path = os.ttyname(slave)

    def take() -> None:
        # Runs in the child after setsid (start_new_session): a session leader without a
        # controlling terminal that opens a terminal (without O_NOCTTY) acquires it, so /dev/tty
        # is this pty whatever fds 0-2 are.
        fd = os.open(path, os.O_RDWR)
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
        os.close(fd)

    return take


def spawn(
    argv: list[str],
    env: dict[str, str],
    term: Terminal,
    *,
    stdout: int | IO[Any] | None = subprocess.PIPE,
    stderr: int | IO[Any] | None = subprocess.PIPE,
    stdin: int | IO[Any] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen[str]:
    """``argv`` with the pty as its controlling terminal and (by default) stdin; ``stdout`` and
    ``stderr`` default to pipes (pass ``term.slave`` to put them on the terminal)."""
    return subprocess.Popen(
        argv,
        # COLUMNS/LINES inherited from the test runner would override the pty's size.
        env={**{k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")},
             "TERM": "xterm-256color"},
        stdin=term.slave if stdin is None else stdin,
        stdout=stdout,
        stderr=stderr,
        text=True,
        start_new_session=True,
        preexec_fn=_taker(term.slave),  # TIOCSCTTY after setsid
        pass_fds=pass_fds,
    )


def wait_and_read(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out or "", err or ""


def run_in_thread(work: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread

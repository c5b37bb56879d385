"""The controlling terminal (``/dev/tty``): where the person is when stderr is a pipe or a file.

A program that runs ``deviceflow get-token`` with its output captured (``capture_output=True``,
``2>log``) would otherwise hide the code from the person at the keyboard. Opening ``/dev/tty``
fails (ENXIO) when the process has no controlling terminal: CI, daemons, ``setsid``, docker
without ``-t``; then nothing changes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from deviceflow.cli.context import Env

__all__ = ["controlling_terminal", "terminal_size"]


@contextlib.contextmanager
def controlling_terminal(env: Env) -> Iterator[Env | None]:
    """An Env whose stdin, stdout and stderr are the controlling terminal, or None without one."""
    try:
        # O_NOCTTY: never make it the controlling terminal of a process that has none.
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        yield None
        return
    # Two text streams on one terminal: "r+" would ask for a seekable file.
    with (
        open(fd, "w", encoding="utf-8", closefd=True) as out,
        open(os.dup(fd), encoding="utf-8", closefd=True) as inp,
    ):
        yield Env(
            stdin=inp,
            stdout=out,
            stderr=out,
            environ=env.environ,
            hostname=env.hostname,
            debug=env.debug,
        )


def terminal_size(env: Env) -> tuple[int, int] | None:
    """(columns, lines) of the terminal behind ``env.stderr``; ``COLUMNS``/``LINES`` win, as they
    do for rich and shutil. None when it is not a terminal."""
    try:
        size = os.get_terminal_size(env.stderr.fileno())
        columns, lines = size.columns, size.lines
    except (AttributeError, ValueError, OSError):
        return None
    with contextlib.suppress(ValueError):
        columns = int(env.environ.get("COLUMNS", columns))
    with contextlib.suppress(ValueError):
        lines = int(env.environ.get("LINES", lines))
    return columns, lines

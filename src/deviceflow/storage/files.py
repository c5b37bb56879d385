"""Files that hold key material: created private (a 0700 directory, 0600 files) whatever the
umask, and refused at start-up when other local users could read them.

Another user who can read the database or the key file can sign access tokens, forge session
cookies and test user codes offline (docs/security.md, "Secrets at rest")."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Final

PRIVATE_DIR_MODE: Final = 0o700
PRIVATE_FILE_MODE: Final = 0o600
_OTHERS: Final = 0o077
_READ_BY_OTHERS: Final = 0o044

SQLITE_COMPANIONS: Final = ("-wal", "-shm", "-journal")
"""Files SQLite keeps beside a database; they hold recent writes, key material included."""


class ExposedFileError(Exception):
    """A file with key material is open to other users. The message is one sentence naming
    the file and the ``chmod`` that fixes it."""

    def __init__(self, path: Path, mode: int) -> None:
        what = "readable" if mode & _READ_BY_OTHERS else "accessible"
        super().__init__(f"{path} is {what} by other users (mode {mode:04o}); "
                         f"run: chmod 600 {path}")
        self.path = path
        self.mode = mode


def make_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents 0700 (the XDG base directory rule for a
    directory an application creates). Directories that exist are left as they are."""
    missing: list[Path] = []
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            directory.mkdir(mode=PRIVATE_DIR_MODE)
            # mkdir's mode is masked by the umask; chmod is not.
            directory.chmod(PRIVATE_DIR_MODE)


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; True if this call created it.

    O_CREAT|O_EXCL: of two processes creating it at once exactly one succeeds, and no one
    ever sees the file with a wider mode (fchmod undoes a umask that removed our own bits)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0),
                     PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    return True


def refuse_exposed(*paths: Path) -> None:
    """Raise ``ExposedFileError`` for the first existing file that group or others may read,
    write or execute. Missing files pass: they are created private."""
    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & _OTHERS:
            raise ExposedFileError(path, mode)


def sqlite_files(database: Path) -> tuple[Path, ...]:
    """The database file and the companions SQLite keeps beside it."""
    return (database, *(database.with_name(database.name + s) for s in SQLITE_COMPANIONS))


__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "SQLITE_COMPANIONS",
    "ExposedFileError",
    "create_private_file",
    "make_private_dir",
    "refuse_exposed",
    "sqlite_files",
]

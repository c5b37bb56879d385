"""Files with key material: created private whatever the umask, refused when exposed."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from deviceflow.storage.files import (
    ExposedFileError,
    create_private_file,
    make_private_dir,
    refuse_exposed,
    sqlite_files,
)


@pytest.fixture(params=[0o000, 0o022, 0o277], ids=["umask-000", "umask-022", "umask-277"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_dirs_and_files_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    directory = tmp_path / "a" / "b"
    make_private_dir(directory)
    assert mode(tmp_path / "a") == 0o700
    assert mode(directory) == 0o700
    path = directory / "db.sqlite3"
    assert create_private_file(path) is True
    assert mode(path) == 0o600
    assert create_private_file(path) is False  # exists: left alone


def test_existing_directories_are_left_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    make_private_dir(tmp_path)
    assert mode(tmp_path) == 0o755


@pytest.mark.parametrize(
    ("file_mode", "word"),
    [(0o644, "readable"), (0o640, "readable"), (0o604, "readable"), (0o620, "accessible")],
    ids=["0644", "0640", "0604", "0620"],
)
def test_exposed_files_are_refused_in_one_sentence(
    tmp_path: Path, file_mode: int, word: str
) -> None:
    path = tmp_path / "deviceflow.sqlite3"
    path.write_bytes(b"")
    path.chmod(file_mode)
    with pytest.raises(ExposedFileError) as info:
        refuse_exposed(tmp_path / "absent", path)
    assert str(info.value) == (
        f"{path} is {word} by other users (mode {file_mode:04o}); run: chmod 600 {path}"
    )


def test_private_and_missing_files_pass(tmp_path: Path) -> None:
    path = tmp_path / "deviceflow.sqlite3"
    create_private_file(path)
    refuse_exposed(path, *sqlite_files(tmp_path / "absent.sqlite3"))


def test_sqlite_companions() -> None:
    assert [p.name for p in sqlite_files(Path("/d/x.sqlite3"))] == [
        "x.sqlite3", "x.sqlite3-wal", "x.sqlite3-shm", "x.sqlite3-journal"]

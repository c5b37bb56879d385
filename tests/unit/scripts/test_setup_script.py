"""``./scripts/setup`` says what it is installing, one line per step (issue 12 §3), instead of
about 50 seconds of silence; a failing step shows its tool's output and stops."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def setup(*args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(cwd / "scripts" / "setup"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", **env},
    )


def test_dev_setup_names_each_step_in_order() -> None:
    result = setup("--dev", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    steps = [line.split(":", 2)[1].strip() for line in result.stderr.splitlines()]
    assert steps == [
        "virtual environment",
        "pip",
        "pip packages",
        "Debian packages",
        "npm peers",
        "npm peers",
        "done; use it with",
    ]
    assert "pip install -e '.[dev]'" in result.stderr
    assert "setup: npm peers: tests/interop (npm ci)" in result.stderr
    assert all(line.startswith("setup: ") for line in result.stderr.splitlines())


def test_plain_setup_installs_only_the_runtime() -> None:
    result = setup("--dry-run")
    assert result.returncode == 0, result.stderr
    assert "pip install -e .)" in result.stderr
    assert "Debian packages" not in result.stderr
    assert "npm" not in result.stderr


def test_a_failing_step_shows_its_output_and_stops(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup", tmp_path / "scripts" / "setup")
    fake = tmp_path / "fakepython"
    fake.write_text("#!/bin/sh\necho 'Python 3.99.0'\n[ \"$1\" = --version ] || "
                    "{ echo 'ensurepip is not available' >&2; exit 1; }\n")
    fake.chmod(0o755)
    result = setup(cwd=tmp_path, PYTHON=str(fake))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "setup: virtual environment: creating .venv with Python 3.99.0"
    assert "ensurepip is not available" in result.stderr
    assert lines[-1] == f"setup: failed: {fake} -m venv .venv"
    assert "pip" not in lines[-1]


def test_unknown_option_is_refused() -> None:
    result = setup("--fast")
    assert result.returncode == 2
    assert "unknown option --fast" in result.stderr

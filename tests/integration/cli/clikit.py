"""Running the real ``deviceflow`` command in a subprocess with its own config and data dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


def deviceflow_argv() -> list[str]:
    script = Path(sys.executable).parent / "deviceflow"
    if script.exists():
        return [str(script)]
    found = shutil.which("deviceflow")
    return [found] if found else [sys.executable, "-m", "deviceflow"]


@dataclass
class Cli:
    home: Path

    @property
    def config_dir(self) -> Path:
        return self.home / "config"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEVICEFLOW_")}
        env.update(
            DEVICEFLOW_CONFIG_DIR=str(self.config_dir),
            DEVICEFLOW_DATA_DIR=str(self.data_dir),
            DEVICEFLOW_TOKEN_STORE="file",
            PYTHONWARNINGS="error",
        )
        env.update(extra)
        return env

    def run(
        self,
        *args: str,
        timeout: float = 60,
        input: str | None = None,
        **extra: str,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*deviceflow_argv(), *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input if input is not None else "",
            # No controlling terminal: the sign-in is shown on stderr, as in CI, even when the
            # tests run from a terminal (else it would go to /dev/tty, see cli/terminal.py).
            start_new_session=True,
        )

    def popen(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*deviceflow_argv(), *args],
            env=self.env(**extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def token_files(self) -> list[Path]:
        return sorted((self.data_dir / "tokens").glob("*.json"))

"""Running a CLI device login against deviceflow's own server (the ``live_server`` fixture)."""

from __future__ import annotations

import re
import secrets
import subprocess
import threading
from dataclasses import dataclass, field

from tests.integration.cli.clikit import Cli

CODE_LINE = re.compile(r"And enter the code: (\S+)")
COMPLETE_LINE = re.compile(r"\(Or open (\S+) which has the code filled in\.\)")


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass
class Login:
    """A ``deviceflow get-token`` subprocess, with its stderr read as it comes."""

    proc: subprocess.Popen[str]
    stderr_lines: list[str] = field(default_factory=list)
    user_code: str | None = None
    verification_uri_complete: str | None = None
    _seen: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread | None = None

    def start_reading(self) -> None:
        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.stderr_lines.append(line)
                if (match := CODE_LINE.search(line)) is not None:
                    self.user_code = match.group(1)
                if (match := COMPLETE_LINE.search(line)) is not None:
                    self.verification_uri_complete = match.group(1)
                    self._seen.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()

    def wait_for_code(self, timeout: float = 30) -> tuple[str, str]:
        if not self._seen.wait(timeout):
            raise AssertionError("no code shown:\n" + "".join(self.stderr_lines))
        assert self.user_code is not None
        assert self.verification_uri_complete is not None
        return self.user_code, self.verification_uri_complete

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        self.proc.stdout.close()
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return self.proc.returncode, out, "".join(self.stderr_lines)


def start_login(cli: Cli, *args: str) -> Login:
    login = Login(cli.popen("get-token", *args))
    login.start_reading()
    return login

"""In-process CLI runs with an injected environment (no terminal, StringIO streams)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from deviceflow.cli.context import Env
from deviceflow.cli.main import run


@dataclass
class Result:
    code: int
    out: str
    err: str


def invoke(home: Path, *argv: str, stdin: str = "", **environ: str) -> Result:
    env_vars = {
        "DEVICEFLOW_CONFIG_DIR": str(home / "config"),
        "DEVICEFLOW_DATA_DIR": str(home / "data"),
        "DEVICEFLOW_TOKEN_STORE": "file",
        **environ,
    }
    out, err = io.StringIO(), io.StringIO()
    env = Env(
        stdin=io.StringIO(stdin), stdout=out, stderr=err, environ=env_vars, hostname="test-host"
    )
    code = run(list(argv), env=env)
    return Result(code, out.getvalue(), err.getvalue())

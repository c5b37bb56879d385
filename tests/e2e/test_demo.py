"""The README's first command: ``deviceflow demo`` starts the embedded server and runs the real
``get-token`` device login; a person approves in a browser and the token arrives on stdout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Page
from tests.e2e.pages import approve


def _read_stderr(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)


def _wait_for(lines: list[str], pattern: str, timeout: float = 60) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, "".join(lines))
        if match:
            return match
        time.sleep(0.05)
    raise AssertionError(f"demo never printed {pattern!r}; stderr so far:\n{''.join(lines)}")


def test_demo_device_login_in_a_browser(browser_page: Page, tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("DEVICEFLOW_DB", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "deviceflow", "demo", "--no-qr", "--output", "json"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(target=_read_stderr, args=(process, lines), daemon=True)
    reader.start()
    try:
        issuer = _wait_for(lines, r"deviceflow demo server: (http://127\.0\.0\.1:\d+)").group(1)
        password = _wait_for(lines, r"Password: (\S+)").group(1)
        uri = _wait_for(lines, re.escape(issuer) + r"/device\?user_code=[A-Z%0-9-]+").group(0)
        jwks = KeySet.import_key_set(httpx.get(issuer + "/jwks.json").json())

        approve(browser_page, uri, "demo", password)

        stdout, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(5)
    assert process.returncode == 0, "".join(lines)
    token = json.loads(stdout)
    assert token["token_type"] == "Bearer"
    assert token["profile"] == "demo"
    assert "refresh_token" not in token
    claims = jwt.decode(token["access_token"], jwks).claims
    assert claims["iss"] == issuer
    assert claims["client_id"] == "deviceflow-demo"
    # The password is printed once, on stderr only.
    assert password not in stdout
    assert "".join(lines).count(password) == 1

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
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1",
           "TMPDIR": str(tmp_path)}
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

        # communicate() reads what is left of stderr too: keep it with the reader's lines.
        stdout, rest = process.communicate(timeout=60)
        lines.append(rest or "")
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
    # Next steps that still work once the demo is gone (not "get-token --profile demo", whose
    # profile and server it has just removed), and nothing left behind.
    assert "deviceflow demo --keep-serving" in "".join(lines).rsplit("Next steps:", 1)[-1]
    assert not list(tmp_path.glob("deviceflow-demo-*"))


def test_sigterm_cleans_up_like_ctrl_c(tmp_path: Path) -> None:
    """A closed terminal or `kill` used to leave the demo's directory (its database, its token
    cache) in the temporary directory."""
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1",
           "TMPDIR": str(tmp_path)}
    env.pop("DEVICEFLOW_DB", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "deviceflow", "demo", "--no-qr"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(target=_read_stderr, args=(process, lines), daemon=True)
    reader.start()
    try:
        _wait_for(lines, r"/device\?user_code=")  # the server is up and the device is polling
        assert list(tmp_path.glob("deviceflow-demo-*"))
        process.terminate()
        _, rest = process.communicate(timeout=30)  # closes both pipes
        lines.append(rest or "")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(5)
    assert process.returncode == 143, "".join(lines)
    assert "Traceback" not in "".join(lines)
    assert not list(tmp_path.glob("deviceflow-demo-*"))

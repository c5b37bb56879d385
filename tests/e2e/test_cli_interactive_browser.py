"""The interactive-browser flow from the CLI against deviceflow's own server, end to end: the
``deviceflow get-token`` subprocess opens "the browser" through ``$BROWSER``, which here is a
script that hands the URL to this test; the test is that browser (Debian's chromium through
Playwright): it signs in, approves, and follows the redirect to the CLI's loopback listener."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from tests.e2e.pages import sign_in_if_asked
from tests.integration.cli.clikit import Cli
from tests.integration.cli.livekit import unique

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery staple"


def browser_script(tmp_path: Path) -> tuple[Path, Path]:
    """``$BROWSER``: records the URL it is given and exits (webbrowser waits for it)."""
    urls = tmp_path / "opened-urls"
    script = tmp_path / "record-browser"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{urls}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, urls


def opened_url(urls: Path, proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """The URL the CLI opened (wait for the script to have run, or the CLI to have stopped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if urls.exists() and urls.read_text().strip():
            return urls.read_text().splitlines()[0]
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    _, err = proc.communicate(timeout=10)
    raise AssertionError(f"the CLI opened no browser:\n{err}")


def setup(live_server: Any, tmp_path: Path) -> tuple[Cli, str, dict[str, str]]:
    cli = Cli(tmp_path)
    client_id = unique("cli-browser")
    username = unique("browser")
    live_server.add_client(
        client_id, name="deviceflow CLI", grants=("authorization_code", "refresh_token"),
        redirect_uris=("http://127.0.0.1/callback",),
    )
    live_server.add_user(username, PASSWORD, "Alex Example")
    created = cli.run("create-profile", "--name", "desk", "--issuer", live_server.issuer,
                      "--client-id", client_id, "--default-flow", "interactive-browser")
    assert created.returncode == 0, created.stderr
    script, urls = browser_script(tmp_path)
    env = {"BROWSER": str(script), "URLS": str(urls)}
    return cli, username, env


def test_cli_signs_in_through_the_browser(
    live_server: Any, browser_page: Page, tmp_path: Path
) -> None:
    cli, username, env = setup(live_server, tmp_path)
    proc = cli.popen("get-token", "desk", "--output", "json", BROWSER=env["BROWSER"])
    url = opened_url(Path(env["URLS"]), proc)
    assert url.startswith(f"{live_server.issuer}/authorize?")
    browser_page.goto(url)
    sign_in_if_asked(browser_page, username, PASSWORD)
    expect(browser_page.get_by_text("Only approve if you just asked")).to_be_visible()
    with browser_page.expect_navigation():
        browser_page.get_by_role("button", name="Approve", exact=True).click()
    # The CLI's own page on 127.0.0.1: done, and no code on it.
    status = browser_page.get_by_role("status")
    expect(status).to_contain_text("You can close this tab")
    assert browser_page.url.startswith("http://127.0.0.1:")
    assert "code=" in browser_page.url
    code_value = browser_page.url.split("code=")[1].split("&")[0]
    assert code_value not in browser_page.content()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    body = json.loads(out)
    assert body["profile"] == "desk"
    assert url in err  # the URL is printed for when no browser opens
    assert code_value not in err
    claims = json.loads(cli.run("inspect", "-", "-o", "json", input=body["id_token"]).stdout)
    assert claims["claims"]["preferred_username"] == username
    assert claims["claims"]["nonce"]
    # Cached: the browser is not opened again.
    again = cli.run("get-token", "desk", BROWSER=env["BROWSER"])
    assert again.stdout.strip() == body["access_token"]
    assert len(Path(env["URLS"]).read_text().splitlines()) == 1


def test_denied_in_the_browser_exits_4(
    live_server: Any, browser_page: Page, tmp_path: Path
) -> None:
    cli, username, env = setup(live_server, tmp_path)
    proc = cli.popen("get-token", "desk", BROWSER=env["BROWSER"])
    browser_page.goto(opened_url(Path(env["URLS"]), proc))
    sign_in_if_asked(browser_page, username, PASSWORD)
    with browser_page.expect_navigation():
        browser_page.get_by_role("button", name="Deny", exact=True).click()
    expect(browser_page.get_by_role("status")).to_contain_text("denied")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4
    assert out == ""
    assert err.strip().splitlines()[-1] == "The sign-in was denied in the browser."


def test_ctrl_c_while_waiting_exits_130(live_server: Any, tmp_path: Path) -> None:
    cli, _username, env = setup(live_server, tmp_path)
    proc = cli.popen("get-token", "desk", BROWSER=env["BROWSER"])
    opened_url(Path(env["URLS"]), proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert out == ""
    assert err.strip().splitlines()[-1] == "Authentication cancelled by user"

"""The whole device login through the CLI, a real browser approving: deviceflow's own server,
Debian's chromium driven by Playwright, the CLI in a subprocess with no terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from tests.e2e.pages import approve, deny, submit_code
from tests.integration.cli.clikit import Cli
from tests.integration.cli.livekit import start_login, unique

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery staple"


def profile(live_server: Any, tmp_path: Path, **client: Any) -> tuple[Cli, str]:
    cli = Cli(tmp_path)
    client_id = unique("cli-e2e")
    username = unique("e2e")
    live_server.add_client(client_id, name="Raspberry Pi sensor", **client)
    live_server.add_user(username, PASSWORD)
    created = cli.run(
        "create-profile", "--name", "pi", "--issuer", live_server.issuer, "--client-id", client_id
    )
    assert created.returncode == 0, created.stderr
    return cli, username


def test_cli_login_approved_in_the_browser(
    live_server: Any, browser_page: Page, tmp_path: Path
) -> None:
    cli, username = profile(live_server, tmp_path)
    login = start_login(cli, "--flow", "device-code", "--profile", "pi", "--output", "json")
    user_code, complete = login.wait_for_code()
    assert user_code in complete
    approve(browser_page, complete, username, PASSWORD, screenshot_dir=tmp_path / "shots")
    code, out, err = login.finish()
    assert code == 0, err
    body = json.loads(out)
    assert body["profile"] == "pi"
    assert body["token_type"] == "Bearer"
    inspected = json.loads(cli.run("inspect", "-", "-o", "json", input=body["id_token"]).stdout)
    assert inspected["claims"]["preferred_username"] == username
    # A second get-token is served from the cache: same token, nothing asked.
    again = cli.run("get-token", "--profile", "pi")
    assert again.stdout.strip() == body["access_token"]
    assert again.stderr == ""


def test_cli_login_denied_in_the_browser(
    live_server: Any, browser_page: Page, tmp_path: Path
) -> None:
    cli, username = profile(live_server, tmp_path)
    login = start_login(cli, "--profile", "pi")
    _user_code, complete = login.wait_for_code()
    deny(browser_page, complete, username, PASSWORD)
    code, out, err = login.finish()
    assert code == 4
    assert out == ""
    assert err.strip().splitlines()[-1] == "The sign-in was declined on the other device."


def test_cli_code_expires_and_the_page_refuses_it(
    live_server: Any, browser_page: Page, tmp_path: Path
) -> None:
    cli, _username = profile(live_server, tmp_path, expires_in=3)
    login = start_login(cli, "--profile", "pi")
    user_code, complete = login.wait_for_code()
    code, out, err = login.finish()
    assert code == 5
    assert err.strip().splitlines()[-1] == "Device code expired. Please try again."
    assert out == ""
    # The person arrives too late: the page refuses the code and keeps the input.
    browser_page.goto(complete)
    submit_code(browser_page)
    expect(browser_page.get_by_role("alert")).to_be_visible()
    expect(browser_page.get_by_label("Code", exact=True)).to_be_visible()
    assert user_code in complete

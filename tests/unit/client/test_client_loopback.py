"""The loopback listener and the browser opening (loopback.py), on a real loopback socket: a
thread plays the browser that follows the redirect."""

from __future__ import annotations

import threading
from urllib.parse import urlencode

import httpx
import pytest

from deviceflow.client.browser_flow import AwaitRedirect, Listen, new_authorization
from deviceflow.client.errors import AccessDeniedError, TimedOutError
from deviceflow.client.flow import ServerMetadata
from deviceflow.client.loopback import LoopbackBrowser

META = ServerMetadata(
    issuer="https://id.example.com",
    token_endpoint="https://id.example.com/token",
    device_authorization_endpoint="",
    authorization_endpoint="https://id.example.com/authorize",
)


def start(browser: LoopbackBrowser) -> AwaitRedirect:
    port = browser(Listen()).port  # type: ignore[union-attr]
    authz = new_authorization(META, "cli", f"http://127.0.0.1:{port}/callback", ("openid",))
    return AwaitRedirect(authz, timeout=60)


def test_the_redirect_gives_the_code_and_a_page_without_it() -> None:
    pages: list[httpx.Response] = []
    opened: list[str] = []
    event_box: list[AwaitRedirect] = []
    followed = threading.Event()

    def browser_follows(url: str) -> bool:
        opened.append(url)
        authz = event_box[0].authorization
        base = authz.redirect_uri
        with httpx.Client() as http:
            pages.append(http.get(base.replace("/callback", "/favicon.ico")))
            pages.append(http.get(base + "?" + urlencode({"state": "forged", "code": "evil"})))
            pages.append(http.get(base + "?" + urlencode({"state": authz.state, "code": "c0de"})))
        followed.set()
        return True

    browser = LoopbackBrowser(open_browser=browser_follows)
    event = start(browser)
    event_box.append(event)
    redirected = browser(event)
    assert redirected.code == "c0de"  # type: ignore[union-attr]
    assert opened == [event.authorization.url]
    assert followed.wait(30)
    assert [p.status_code for p in pages] == [404, 400, 200]
    done = pages[2]
    assert "You can close this tab" in done.text
    assert "c0de" not in done.text
    assert done.headers["cache-control"] == "no-store"
    assert done.headers["referrer-policy"] == "no-referrer"
    assert "not belong" in pages[1].text


def test_an_error_redirect_ends_the_wait_with_the_servers_error() -> None:
    box: list[AwaitRedirect] = []

    def deny(url: str) -> bool:
        authz = box[0].authorization
        query = urlencode({"state": authz.state, "error": "access_denied"})
        page = httpx.get(f"{authz.redirect_uri}?{query}")
        assert page.status_code == 400
        assert "denied" in page.text
        return True

    browser = LoopbackBrowser(open_browser=deny)
    box.append(start(browser))
    with pytest.raises(AccessDeniedError):
        browser(box[0])


def test_no_browser_is_said_and_the_wait_times_out() -> None:
    notices: list[str] = []
    noticed = threading.Event()
    ticks = iter([0.0, 0.0, 1000.0, 1000.0])

    def notice(text: str) -> None:
        notices.append(text)
        noticed.set()

    def monotonic() -> float:
        value = next(ticks)
        if value:
            noticed.wait(30)  # the clock runs out only after the notice was said
        return value

    browser = LoopbackBrowser(open_browser=lambda url: False, on_notice=notice,
                              monotonic=monotonic)
    event = start(browser)
    with pytest.raises(TimedOutError):
        browser(event)
    assert notices == ["No browser could be opened here; open the address above yourself."]


def test_an_idle_connection_does_not_hold_up_the_redirect() -> None:
    """Browsers open speculative connections and send nothing on them."""
    import socket

    box: list[AwaitRedirect] = []
    idle: list[socket.socket] = []

    def browser(url: str) -> bool:
        authz = box[0].authorization
        port = int(authz.redirect_uri.split(":")[2].split("/")[0])
        idle.append(socket.create_connection(("127.0.0.1", port)))
        query = urlencode({"state": authz.state, "code": "c0de"})
        httpx.get(f"{authz.redirect_uri}?{query}", timeout=30)
        return True

    browser_driver = LoopbackBrowser(open_browser=browser)
    box.append(start(browser_driver))
    try:
        assert browser_driver(box[0]).code == "c0de"  # type: ignore[union-attr]
    finally:
        for sock in idle:
            sock.close()


def test_an_ipv6_loopback_listener() -> None:
    box: list[AwaitRedirect] = []

    def browser(url: str) -> bool:
        authz = box[0].authorization
        httpx.get(f"{authz.redirect_uri}?" + urlencode({"state": authz.state, "code": "v6"}))
        return True

    driver = LoopbackBrowser(open_browser=browser)
    port = driver(Listen("::1")).port  # type: ignore[union-attr]
    authz = new_authorization(META, "cli", f"http://[::1]:{port}/callback", ())
    box.append(AwaitRedirect(authz, timeout=60))
    assert driver(box[0]).code == "v6"  # type: ignore[union-attr]


def test_no_console_browser_without_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    from deviceflow.client import loopback

    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    monkeypatch.setattr("sys.platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(name, raising=False)
    assert loopback.open_system_browser("https://id.example.com/a") is False
    monkeypatch.setenv("BROWSER", "/usr/bin/true")
    assert loopback.open_system_browser("https://id.example.com/b") is True
    monkeypatch.delenv("BROWSER")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert loopback.open_system_browser("https://id.example.com/c") is True
    assert opened == ["https://id.example.com/b", "https://id.example.com/c"]

"""The browser flow's I/O: a loopback listener for the redirect and the system browser.

RFC 8252 §7.3: the listener binds the loopback IP literal on a port the system picks, and §4.1
opens the authorization request in the person's own browser (``webbrowser``, which honours
``$BROWSER``). The listener answers one small page per request, never showing the code; what a
redirect means is decided by ``AuthorizationRequest.check`` (browser_flow.py).
"""

from __future__ import annotations

import html
import os
import socket
import socketserver
import sys
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from deviceflow.client.browser_flow import (
    AuthorizationRequest,
    AwaitRedirect,
    ForeignRedirectError,
    Listen,
    Listening,
    Redirected,
)
from deviceflow.client.errors import DeviceFlowError, TimedOutError

__all__ = ["LoopbackBrowser", "open_system_browser"]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
</style></head>
<body><main><h1>{title}</h1><p role="status">{message}</p></main></body></html>
"""
_HEADERS = (
    ("Content-Type", "text/html; charset=utf-8"),
    # The page follows a URL holding the code: keep it out of caches and of any Referer.
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
    ("X-Content-Type-Options", "nosniff"),
)


def open_system_browser(url: str) -> bool:
    """The person's browser (``$BROWSER`` first, then the platform's); False when none opened.

    On Linux and the BSDs without a display and without ``$BROWSER``, ``webbrowser`` would fall
    back to a console browser (lynx, w3m) in this very terminal: the URL printed on stderr is
    the better offer there."""
    unix = sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd"))
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if unix and not display and not os.environ.get("BROWSER"):
        return False
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


@dataclass
class _Outcome:
    code: str | None = None
    error: DeviceFlowError | None = None


class _Server(ThreadingHTTPServer):
    """One thread per connection: a browser's idle speculative connection must not hold up the
    one that brings the redirect."""

    daemon_threads = True
    authorization: AuthorizationRequest | None = None

    def start(self) -> None:
        self.outcome = _Outcome()
        self.claimed = False
        self.lock = threading.Lock()
        self.done = threading.Event()

    def finish(self, outcome: _Outcome) -> None:
        """Published after the page is written: the process may end right after."""
        self.outcome = outcome
        self.done.set()

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall for seconds on a
        # machine with slow DNS; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "deviceflow"
    sys_version = ""
    timeout = 10  # seconds a connection may stay silent (socket timeout per request)

    def log_message(self, format: str, *args: object) -> None:
        return None  # the request line holds the code: never log it

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        authorization = self.server.authorization
        if authorization is None or (parts.path or "/") != authorization.callback_path:
            self._page(404, "Not found", "This is deviceflow's sign-in listener.")
            return
        try:
            code = authorization.check(parts.query)
        except ForeignRedirectError:
            self._page(
                400,
                "Not this sign-in",
                "This answer does not belong to the sign-in deviceflow is waiting for. "
                "Start again from the terminal if needed.",
            )
            return
        except DeviceFlowError as exc:
            if self._claim():
                self._page(400, "Sign-in failed", f"{exc} You can close this tab.")
                self.server.finish(_Outcome(error=exc))
            return
        if self._claim():
            self._page(
                200,
                "Signed in",
                "deviceflow received the sign-in. You can close this tab and return to the "
                "terminal.",
            )
            self.server.finish(_Outcome(code=code))

    def _claim(self) -> bool:
        """The first answer counts; a replayed or second redirect gets "Already answered"."""
        with self.server.lock:
            if not self.server.claimed:
                self.server.claimed = True
                return True
        self._page(409, "Already answered", "This sign-in is already complete.")
        return False

    def _page(self, status: int, title: str, message: str) -> None:
        body = _PAGE.format(title=html.escape(title), message=html.escape(message)).encode()
        self.send_response(status)
        for name, value in _HEADERS:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class LoopbackBrowser:
    """Answers the browser flow's ``Listen`` and ``AwaitRedirect`` events (one sign-in)."""

    def __init__(
        self,
        *,
        open_browser: Callable[[str], bool] = open_system_browser,
        on_notice: Callable[[str], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.open_browser = open_browser
        self.on_notice = on_notice
        self.monotonic = monotonic
        self._server: _Server | None = None

    def __call__(self, event: object) -> Listening | Redirected:
        if isinstance(event, Listen):
            return self.listen(event)
        if isinstance(event, AwaitRedirect):
            return self.await_redirect(event)
        raise TypeError(f"LoopbackBrowser cannot answer {type(event).__name__}")

    def listen(self, event: Listen) -> Listening:
        self.close()
        server_class = _Server6 if ":" in event.host else _Server
        self._server = server_class((event.host, 0), _Handler)
        self._server.start()
        return Listening(int(self._server.server_address[1]))

    def await_redirect(self, event: AwaitRedirect) -> Redirected:
        server = self._server
        if server is None:
            raise RuntimeError("AwaitRedirect before Listen")
        server.authorization = event.authorization
        # In a thread: webbrowser runs a $BROWSER command to its end, and a browser started
        # that way may live until it is closed; the listener must answer meanwhile (its socket
        # already listens, so an early redirect waits in the backlog).
        threading.Thread(
            target=self._open, args=(event.authorization.url,), name="deviceflow-browser",
            daemon=True,
        ).start()
        deadline = self.monotonic() + event.timeout
        try:
            while not server.done.is_set():
                left = deadline - self.monotonic()
                if left <= 0:
                    raise TimedOutError(event.timeout)
                server.timeout = min(left, 1.0)
                server.handle_request()
        finally:
            self.close()
        if server.outcome.error is not None:
            raise server.outcome.error
        assert server.outcome.code is not None
        return Redirected(server.outcome.code)

    def _open(self, url: str) -> None:
        if not self.open_browser(url) and self.on_notice is not None:
            self.on_notice("No browser could be opened here; open the address above yourself.")

    def close(self) -> None:
        if self._server is not None:
            self._server.server_close()
            self._server = None

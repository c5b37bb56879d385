"""A browser without JavaScript that follows the pages by their own links and forms: it starts
at the URL a client library handed out (``verification_uri_complete``, an authorization URL),
submits each form to the ``action`` the page names, and so never assumes where a route lives
(a path issuer serves every page under its prefix).

``approve_device_login`` signs in and approves on the verification pages;
``approve_authorization`` does the same for an authorization request and follows the redirect
back to the client's ``redirect_uri``: the loopback address a native app listens on
(``LoopbackRedirect``, RFC 8252 §7.3), which receives the ``code``, ``state`` and ``iss``.
"""

from __future__ import annotations

import queue
import ssl
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urljoin

import httpx

DEVICE_CONNECTED = "Device connected"
_MAX_STEPS = 8


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    """Named inputs with their values as served (hidden, text, password...)."""
    buttons: list[tuple[str, str]] = field(default_factory=list)
    """Named submit buttons: (name, value)."""


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form":
            self._current = Form(attr.get("action", ""), attr.get("method", "get").lower())
            self.forms.append(self._current)
        elif self._current is None or "name" not in attr:
            return
        elif tag == "input" and attr.get("type", "text") not in ("submit", "button"):
            self._current.fields[attr["name"]] = attr.get("value", "")
        elif tag in ("button", "input"):
            self._current.buttons.append((attr["name"], attr.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def forms_of(html: str, base_url: str) -> list[Form]:
    """The page's forms, their actions made absolute against the page's URL."""
    parser = _FormParser()
    parser.feed(html)
    for form in parser.forms:
        form.action = urljoin(base_url, form.action)
    return parser.forms


class PageBrowser:
    """One browser session (its own cookie jar) trusting ``verify``."""

    def __init__(self, verify: ssl.SSLContext | bool = True, *, timeout: float = 30.0) -> None:
        self.http = httpx.Client(verify=verify, timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PageBrowser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _follow(self, response: httpx.Response, stop_at: str | None) -> httpx.Response | str:
        """Follow redirects like a browser (303 → GET); a Location under ``stop_at`` is returned
        as a string, not fetched."""
        for _ in range(_MAX_STEPS):
            if not response.is_redirect:
                return response
            location = urljoin(str(response.url), response.headers["location"])
            if stop_at is not None and location.startswith(stop_at):
                return location
            response = self.http.get(location)
        raise AssertionError(f"too many redirects from {response.url}")

    def open(self, url: str, *, stop_at: str | None = None) -> httpx.Response | str:
        return self._follow(self.http.get(url), stop_at)

    def submit(
        self, form: Form, values: dict[str, str], *, stop_at: str | None = None
    ) -> httpx.Response | str:
        data = {**form.fields, **values}
        if form.method == "post":
            response = self.http.post(form.action, data=data)
        else:
            response = self.http.get(form.action, params=data)
        return self._follow(response, stop_at)

    def walk(
        self, start: httpx.Response | str, username: str, password: str, *,
        stop_at: str | None = None, done_text: str | None = None, done_url: str | None = None,
    ) -> httpx.Response | str:
        """From ``start``, fill and submit the page's form until the page says ``done_text``,
        comes from under ``done_url``, or a redirect reaches ``stop_at``: the code form
        (pre-filled), the sign-in form, and the consent form (Approve). Anything else is an
        error with the page in the message."""
        page = start
        for _ in range(_MAX_STEPS):
            if isinstance(page, str):
                return page
            if done_url is not None and str(page.url).startswith(done_url):
                return page
            if page.status_code != 200:
                raise AssertionError(f"HTTP {page.status_code} at {page.url}:\n{page.text[:2000]}")
            if done_text is not None and done_text in page.text:
                return page
            form, values = self._next_step(page, username, password)
            page = self.submit(form, values, stop_at=stop_at)
        raise AssertionError(f"no end to the pages at {page!r}")

    @staticmethod
    def _next_step(
        page: httpx.Response, username: str, password: str
    ) -> tuple[Form, dict[str, str]]:
        for form in forms_of(page.text, str(page.url)):
            names = {name for name, _ in form.buttons}
            if "password" in form.fields:
                return form, {"username": username, "password": password}
            if "decision" in names:
                return form, {"decision": "approve"}
            if "user_code" in form.fields:
                return form, {}
        raise AssertionError(f"no form to go on with at {page.url}:\n{page.text[:2000]}")


def approve_device_login(
    verification_uri_complete: str, username: str, password: str,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """What a person does with the link a device shows: open it, confirm the code, sign in and
    approve, until the page says the device is connected (RFC 8628 §3.3)."""
    with PageBrowser(verify) as browser:
        browser.walk(browser.open(verification_uri_complete), username, password,
                     done_text=DEVICE_CONNECTED)


def approve_authorization(
    authorization_url: str, redirect_uri: str, username: str, password: str,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Open an authorization request (RFC 6749 §4.1.1), sign in, approve, and follow the
    redirect to ``redirect_uri`` (RFC 6749 §4.1.2), where the client takes the code."""
    with PageBrowser(verify) as browser:
        browser.walk(browser.open(authorization_url), username, password, done_url=redirect_uri)


class LoopbackRedirect:
    """A native app's redirect listener (RFC 8252 §7.3): ``http://127.0.0.1:{free port}/callback``,
    answering "you can close this tab" and keeping the first URL it was sent to."""

    def __init__(self, path: str = "/callback") -> None:
        received: queue.Queue[str] = queue.Queue()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                received.put(self.path)
                body = b"Signed in: you can close this tab."
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the test's output is not the place for a code

        self._received = received
        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.redirect_uri = f"http://127.0.0.1:{self._server.server_address[1]}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackRedirect:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def callback_url(self, timeout: float = 30.0) -> str:
        """The full URL the browser was redirected to (with ``code``, ``state``, ``iss``)."""
        path = self._received.get(timeout=timeout)
        return urljoin(self.redirect_uri, path)


__all__ = ["DEVICE_CONNECTED", "Form", "LoopbackRedirect", "PageBrowser",
           "approve_authorization", "approve_device_login", "forms_of"]

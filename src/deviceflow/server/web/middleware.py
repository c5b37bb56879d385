"""ASGI middleware: request ids with access logs, baseline security headers, and the session
cookie whose key is only known once the server secret is loaded."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any, Literal

from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...protocol.models import RequestOrigin
from ..logs import request_id, request_origin
from .requests import MAX_USER_AGENT

if TYPE_CHECKING:
    from .metrics import RequestMetrics

access_log = logging.getLogger("deviceflow.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


HSTS = "max-age=63072000"
"""RFC 6797 §6.1: browsers that once reached the server over HTTPS refuse plain HTTP to it for two
years, so a network attacker cannot strip TLS from a later visit to the verification page (and
read the session cookie or the code typed there). No ``includeSubDomains``: sibling hosts of the
issuer are not ours to promise."""

QUIET_PATHS = frozenset({"/healthz", "/readyz"})
"""Probed every few seconds by load balancers and orchestrators: logged at DEBUG, not INFO, so
the access log keeps to real traffic."""

_ids = itertools.count(1)
_ID_PREFIX = secrets.token_hex(4)  # per process, so ids from many workers do not collide


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """A well-formed incoming ``X-Request-ID`` (for tracing across a proxy), else a new one:
    this process's random prefix and a counter, which costs no system call per request."""
    for name, value in headers:
        if name == b"x-request-id":
            incoming = value.decode("latin-1")
            if _REQUEST_ID.match(incoming):
                return incoming
            break
    return f"{_ID_PREFIX}{next(_ids):08x}"


def _origin(scope: Scope) -> RequestOrigin:
    """The same values as ``requests.origin``, read straight from the ASGI scope (the client
    address there is already the forwarded one when the peer is a trusted proxy)."""
    client = scope.get("client")
    user_agent = ""
    for name, value in scope["headers"]:
        if name == b"user-agent":
            user_agent = value.decode("latin-1")[:MAX_USER_AGENT]
            break
    return RequestOrigin(ip_address=client[0] if client else "unknown", user_agent=user_agent)


class RequestContextMiddleware:
    """Gives every request an id (a well-formed incoming ``X-Request-ID`` is kept, for tracing
    across a proxy) and its origin (for the audit log), logs one access line, and sets
    ``nosniff`` on every response, and ``Strict-Transport-Security`` on every response when
    the server is served or advertised over HTTPS (behind a TLS-terminating proxy the header
    still reaches browsers over HTTPS).

    With ``metrics``, it also counts every response and its latency, at the one place that
    already times the request."""

    def __init__(
        self, app: ASGIApp, *, hsts: bool = False, metrics: RequestMetrics | None = None,
        quiet_paths: frozenset[str] = QUIET_PATHS,
    ) -> None:
        self.app = app
        self.hsts = hsts
        self.metrics = metrics
        self.quiet_paths = quiet_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope["headers"])
        token = request_id.set(rid)
        origin_token = request_origin.set(_origin(scope))
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = rid
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if self.hsts:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if self.metrics is not None:
                self.metrics.record(scope, status, time.perf_counter() - start)
            level = logging.DEBUG if scope["path"] in self.quiet_paths else logging.INFO
            if access_log.isEnabledFor(level):
                self._log(level, scope, status, start)
            request_id.reset(token)
            request_origin.reset(origin_token)

    @staticmethod
    def _log(level: int, scope: Scope, status: int, start: float) -> None:
        client = scope.get("client")
        access_log.log(
            level,
            "%s %s %d", scope["method"], scope["path"], status,
            extra={
                "method": scope["method"],
                "path": scope["path"],  # never the query string: it may hold a user code
                "status": status,
                "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                "client": client[0] if client else None,
            },
        )


SESSION_PREFIXES = ("/device", "/account", "/authorize")
"""The pages that use the session: the verification pages, "Your devices" and the browser
authorization (RFC 6749 §4.1). Other routes (the token endpoint above all) neither read nor set
the cookie. Below the issuer's path when it has one."""


def _has_session(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


class IssuerPathMiddleware:
    """For a reverse proxy that removes the issuer's path before passing a request on
    (``proxy_strips_issuer_path``): puts the path back in front, so routing, links, redirects
    and the cookie path are the same whether the proxy strips it or keeps it. Outermost, so the
    access log and every other layer see the public path."""

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self._raw = prefix.encode("ascii")  # validated as unreserved characters (config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            scope["path"] = self.prefix + scope["path"]
            raw = scope.get("raw_path")
            if isinstance(raw, bytes):
                scope["raw_path"] = self._raw + raw
        await self.app(scope, receive, send)


class DeferredSessionMiddleware:
    """Starlette's signed-cookie session, built on first use with the secret loaded at start-up
    (the secret lives in the database, so it is not known when the app object is made).

    The cookie holds page state and the random id of a sign-in; who signed in, and when, is kept
    on the server (``service.sessions``) and read back on every request that relies on it."""

    def __init__(
        self, app: ASGIApp, *, session_cookie: str, max_age: int, path: str,
        same_site: Literal["lax", "strict", "none"], https_only: bool,
        prefixes: tuple[str, ...] = SESSION_PREFIXES,
    ) -> None:
        self.app = app
        self.prefixes = prefixes
        self.options: dict[str, Any] = {
            "session_cookie": session_cookie, "max_age": max_age, "path": path,
            "same_site": same_site, "https_only": https_only,
        }
        self._inner: SessionMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_session(scope.get("path", ""), self.prefixes):
            await self.app(scope, receive, send)
            return
        if self._inner is None:
            secret = scope["app"].state.service.keyring.session_secret
            self._inner = SessionMiddleware(self.app, secret_key=secret.hex(), **self.options)
        await self._inner(scope, receive, send)

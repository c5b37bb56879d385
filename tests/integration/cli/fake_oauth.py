"""A small, scriptable OAuth 2.0 device-flow server for client tests (stdlib only, loopback).

It speaks just enough of RFC 8628 / RFC 6749 / RFC 7009 for the CLI: discovery, device
authorization, the device_code and refresh_token grants, and optional revocation. Tests approve
or deny codes directly, choose the interval and lifetimes, and count refresh calls, which the
real server does not expose.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def fake_jwt(claims: dict[str, object]) -> str:
    def b64(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{b64(claims)}.c2lnbmF0dXJl"


@dataclass
class FakeOAuthServer:
    interval: float | None = 0.2
    expires_in: int = 600
    access_token_lifetime: int = 3600
    refresh_delay: float = 0.0
    with_revocation: bool = False
    username: str = "alice"
    issuer: str = ""
    codes: dict[str, str] = field(default_factory=dict)  # device_code -> state
    user_codes: dict[str, str] = field(default_factory=dict)  # user_code -> device_code
    refresh_calls: int = 0
    revoked: list[str] = field(default_factory=list)
    refresh_tokens: set[str] = field(default_factory=set)
    access_tokens: set[str] = field(default_factory=set)
    api_calls: list[tuple[str, str, object]] = field(default_factory=list)  # (method, path, json)
    lock: threading.Lock = field(default_factory=threading.Lock)
    code_issued: threading.Event = field(default_factory=threading.Event)

    # --- test controls ---------------------------------------------------------------------

    def approve(self, user_code: str) -> None:
        with self.lock:
            self.codes[self.user_codes[user_code]] = "approved"

    def deny(self, user_code: str) -> None:
        with self.lock:
            self.codes[self.user_codes[user_code]] = "denied"

    def last_user_code(self, timeout: float = 30) -> str:
        if not self.code_issued.wait(timeout):
            raise TimeoutError("no device code was requested")
        with self.lock:
            return list(self.user_codes)[-1]

    # --- protocol -------------------------------------------------------------------------

    def tokens(self, scope: str) -> dict[str, object]:
        now = int(time.time())
        rt = "rt-" + secrets.token_urlsafe(8)
        self.refresh_tokens.add(rt)
        claims = {
            "iss": self.issuer,
            "sub": "user-1",
            "preferred_username": self.username,
            "iat": now,
            "exp": now + self.access_token_lifetime,
            "aud": "cli",
        }
        access_token = fake_jwt(dict(claims, jti=secrets.token_hex(4)))
        self.access_tokens.add(access_token)
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.access_token_lifetime,
            "scope": scope,
            "refresh_token": rt,
            "id_token": fake_jwt(claims),
        }

    def metadata(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "issuer": self.issuer,
            "token_endpoint": f"{self.issuer}/token",
            "device_authorization_endpoint": f"{self.issuer}/device_authorization",
        }
        if self.with_revocation:
            doc["revocation_endpoint"] = f"{self.issuer}/revoke"
        return doc

    def handle_api(
        self, method: str, path: str, authorization: str, body: object
    ) -> tuple[int, dict[str, object]]:
        """A protected API for examples: /api/* needs a Bearer token this server issued."""
        scheme, _, token = authorization.partition(" ")
        with self.lock:
            if scheme != "Bearer" or token not in self.access_tokens:
                return 401, {"error": "invalid_token"}
            self.api_calls.append((method, path, body))
        return 200, {"ok": True, "displayName": self.username, "path": path}

    def handle(self, method: str, path: str, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        if method == "GET" and path == "/.well-known/openid-configuration":
            return 200, self.metadata()
        if method == "POST" and path == "/device_authorization":
            device_code = secrets.token_urlsafe(16)
            user_code = "".join(secrets.choice("BCDFGHJKLMNPQRSTVWXZ") for _ in range(8))
            user_code = f"{user_code[:4]}-{user_code[4:]}"
            with self.lock:
                self.codes[device_code] = "pending"
                self.user_codes[user_code] = device_code
                self.scope = form.get("scope", "")
            self.code_issued.set()
            body: dict[str, object] = {
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": f"{self.issuer}/device",
                "verification_uri_complete": f"{self.issuer}/device?user_code={user_code}",
                "expires_in": self.expires_in,
            }
            if self.interval is not None:
                body["interval"] = self.interval
            return 200, body
        if method == "POST" and path == "/token":
            grant = form.get("grant_type")
            if grant == "urn:ietf:params:oauth:grant-type:device_code":
                with self.lock:
                    state = self.codes.get(form.get("device_code", ""))
                if state is None:
                    return 400, {"error": "invalid_grant"}
                if state == "pending":
                    return 400, {"error": "authorization_pending"}
                if state == "denied":
                    return 400, {"error": "access_denied"}
                with self.lock:
                    self.codes[form["device_code"]] = "used"
                    return 200, self.tokens(self.scope)
            if grant == "refresh_token":
                with self.lock:
                    self.refresh_calls += 1
                time.sleep(self.refresh_delay)
                with self.lock:
                    token = form.get("refresh_token", "")
                    if token not in self.refresh_tokens:
                        return 400, {"error": "invalid_grant"}
                    self.refresh_tokens.discard(token)  # rotation
                    return 200, self.tokens(form.get("scope", ""))
            return 400, {"error": "unsupported_grant_type"}
        if method == "POST" and path == "/revoke" and self.with_revocation:
            with self.lock:
                self.revoked.append(form.get("token", ""))
            return 200, {}
        return 404, {"error": "not_found"}


@contextmanager
def running(server: FakeOAuthServer) -> Iterator[FakeOAuthServer]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            path = urlsplit(self.path).path
            if path.startswith("/api/"):
                payload = (
                    json.loads(raw)
                    if raw and "json" in (self.headers.get("Content-Type") or "")
                    else raw
                )
                status, body = server.handle_api(
                    method, path, self.headers.get("Authorization") or "", payload
                )
            else:
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                status, body = server.handle(method, path, form)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, format: str, *args: object) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server.issuer = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()

"""The server's HTTP connections over a real socket: a polling device keeps its connection, and a
client that goes away mid-request is not an error."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import pytest

from deviceflow.config.server import ServerSettings
from deviceflow.server.embedded import uvicorn_options


def _connect(issuer: str) -> socket.socket:
    host, port = issuer.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _request(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_the_keep_alive_outlasts_the_polling_interval() -> None:
    """uvicorn's default (5 s) equals RFC 8628's default interval (§3.2), so a device polling
    every 5 s would race the server closing its idle connection."""
    settings = ServerSettings()
    assert uvicorn_options(settings)["timeout_keep_alive"] >= 6 * settings.interval


@pytest.mark.slow  # one idle pause longer than uvicorn's default keep-alive
def test_an_idle_connection_is_still_open_after_a_polling_interval(live_server: Any) -> None:
    with _connect(live_server.issuer) as sock:
        assert _request(sock, "/healthz").startswith(b"HTTP/1.1 200")
        time.sleep(6)  # a 5 s interval plus the client's margin
        assert _request(sock, "/healthz").startswith(b"HTTP/1.1 200")


def test_a_client_leaving_mid_request_is_no_error(
    live_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with _connect(live_server.issuer) as sock:
        sock.sendall(b"POST /token HTTP/1.1\r\nHost: test\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 100\r\n\r\ngrant_type=")
        time.sleep(0.2)  # the handler is now waiting for the rest of the body
    deadline = time.monotonic() + 10
    while not any("client disconnected" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the server never noticed the client leaving"
        time.sleep(0.05)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], \
        "a client going away is logged as a server error"
    with _connect(live_server.issuer) as sock:
        assert _request(sock, "/healthz").startswith(b"HTTP/1.1 200")

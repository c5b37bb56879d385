"""The embedded server: deviceflow under uvicorn in a background thread of this process. Used by
``deviceflow demo`` and by the test suite's live server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..config.server import ServerSettings


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Whether another process listens on ``host:port``, asked the way uvicorn will bind it
    (``SO_REUSEADDR``, so a port in TIME_WAIT counts as free). Only for a clear sentence before
    starting: a process taking the port in between still makes uvicorn fail as before."""
    if port == 0:
        return False
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False  # uvicorn will say what is wrong with the host
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return True
    return False


def uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    """The uvicorn settings shared by ``deviceflow serve`` and the embedded server."""
    return {
        "host": settings.host, "port": settings.port,
        "ssl_certfile": settings.certfile, "ssl_keyfile": settings.keyfile,
        # Behind a trusted proxy the client address and scheme come from X-Forwarded-*.
        "proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips,
        # uvicorn's 5 s default equals RFC 8628's default interval: a device polling every 5 s
        # would race the server closing its idle connection and see the poll fail.
        "timeout_keep_alive": settings.keep_alive_timeout,
        "access_log": False, "server_header": False, "log_config": None,
    }


@contextlib.contextmanager
def serve_in_thread(settings: ServerSettings, *, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``create_app(settings)`` until the block ends; yields the issuer URL once the server
    accepts connections. A start-up refusal (``bootstrap.STARTUP_REFUSALS``) is raised as
    itself; any other failure to start is a ``RuntimeError``."""
    import uvicorn

    from .web.app import create_app

    app = create_app(settings)
    config = uvicorn.Config(app, lifespan="on", **uvicorn_options(settings))
    server = uvicorn.Server(config)

    def run() -> None:
        # uvicorn calls sys.exit(3) when the app's start-up fails; the caller hears why below.
        with contextlib.suppress(SystemExit):
            server.run()

    thread = threading.Thread(target=run, name="deviceflow-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            refused = getattr(app.state, "startup_error", None)
            if refused is not None:  # one sentence for the operator (bootstrap.py)
                raise refused
            raise RuntimeError("the embedded server did not start")
        time.sleep(0.02)
    try:
        yield settings.effective_issuer
    finally:
        server.should_exit = True
        thread.join(timeout=15)

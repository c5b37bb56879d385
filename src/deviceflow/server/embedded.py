"""The embedded server: deviceflow under uvicorn in a background thread of this process. Used by
``deviceflow demo`` and by the test suite's live server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from ..config.server import ServerSettings


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(settings: ServerSettings, *, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``create_app(settings)`` until the block ends; yields the issuer URL once the server
    accepts connections."""
    import uvicorn

    from .web.app import create_app

    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_config=None,
        access_log=False, lifespan="on", proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips, server_header=False,
        ssl_certfile=settings.certfile, ssl_keyfile=settings.keyfile,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="deviceflow-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the embedded server did not start")
        time.sleep(0.02)
    try:
        yield settings.effective_issuer
    finally:
        server.should_exit = True
        thread.join(timeout=15)

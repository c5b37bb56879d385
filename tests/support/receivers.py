"""Real receivers for the notification tests: an SMTP server (aiosmtpd) and an HTTP webhook
receiver that verifies Standard Webhooks signatures, both on loopback in a thread of their own.
Either can be told to fail (SMTP 554 / HTTP 500) and to recover."""

from __future__ import annotations

import contextlib
import email
import email.policy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from deviceflow.server.embedded import free_port


@dataclass
class Mailbox:
    """What the SMTP server received, and whether it refuses mail now."""

    refuse: bool = False
    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    refused: int = 0
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.arrived:
            if self.refuse:
                self.refused += 1
                return "554 5.7.1 Refused by the test"
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            self.messages.append(parsed)
            self.recipients.append(list(envelope.rcpt_tos))
            self.arrived.notify_all()
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@dataclass
class Deliveries:
    """Webhook requests that arrived, verified with the shared secret."""

    secret: str
    fail: bool = False
    verified: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    raw: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    rejected: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def webhook_receiver(secret: str, port: int = 0) -> Iterator[tuple[Deliveries, str]]:
    deliveries = Deliveries(secret)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with deliveries.lock:
                deliveries.raw.append((headers, body))
                if deliveries.fail:
                    deliveries.failed += 1
                    status = 500
                else:
                    try:
                        payload = Webhook(secret).verify(body, headers)
                    except WebhookVerificationError:
                        deliveries.rejected += 1
                        status = 400
                    else:
                        deliveries.verified.append(payload)
                        deliveries.ids.append(headers["webhook-id"])
                        status = 204
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield deliveries, f"http://127.0.0.1:{server.server_address[1]}/hooks/deviceflow"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

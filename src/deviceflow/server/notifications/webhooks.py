"""Operator webhooks, signed the Standard Webhooks way (``standardwebhooks``): the headers
``webhook-id`` (the event id, the same on every retry), ``webhook-timestamp`` (Unix seconds of
this attempt) and ``webhook-signature`` (``v1,`` and base64 of HMAC-SHA-256 over
``id.timestamp.body`` under the shared secret). A receiver checks the signature, refuses a
timestamp far from its clock, and drops an id it has seen: a replayed delivery is refused.

The secret comes from ``DEVICEFLOW_WEBHOOK_SECRET`` or a 0600 file, and is never logged."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook

from ...protocol.notifications import Notification, webhook_body
from ...storage.files import refuse_exposed
from .worker import DeliveryError

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


class WebhookSecretError(Exception):
    """The secret is missing, malformed or exposed; one sentence that never holds it."""


def parse_secret(text: str, where: str) -> str:
    """``whsec_`` and base64 of 24 to 64 bytes (Standard Webhooks' symmetric secret)."""
    value = text.strip()
    if not value.startswith(SECRET_PREFIX):
        raise WebhookSecretError(f"the webhook secret in {where} must start with whsec_")
    try:
        raw = base64.b64decode(value[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise WebhookSecretError(f"the webhook secret in {where} is not base64") from None
    if not MIN_SECRET_BYTES <= len(raw) <= MAX_SECRET_BYTES:
        raise WebhookSecretError(f"the webhook secret in {where} must be {MIN_SECRET_BYTES} "
                                 f"to {MAX_SECRET_BYTES} bytes, base64-encoded")
    return value


def load_secret(env_value: str | None, file: str) -> str:
    """The environment's secret, else the file's, which must be private (mode 0600)."""
    if env_value is not None:
        return parse_secret(env_value, "DEVICEFLOW_WEBHOOK_SECRET")
    path = Path(file).expanduser()
    try:
        refuse_exposed(path)
        text = path.read_text(encoding="ascii")
    except OSError as exc:
        raise WebhookSecretError(
            f"cannot read the webhook secret file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise WebhookSecretError(f"the webhook secret file {path} is not ASCII") from None
    return parse_secret(text, str(path))


def generate_secret() -> str:
    import secrets

    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def redacted(url: str) -> str:
    """The URL as logs show it: no user info, query or fragment (they may hold a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class WebhookSender:
    def __init__(self, secret: str, *, timeout: float = 10.0,
                 client: httpx.AsyncClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._signer = Webhook(secret)
        self._client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._own_client = client is None
        self._clock = clock  # the real time: receivers refuse a timestamp far from theirs

    def headers(self, notification: Notification, body: bytes) -> dict[str, str]:
        sent_at = dt.datetime.fromtimestamp(int(self._clock()), dt.UTC)
        signature = self._signer.sign(notification.event_id, sent_at, body.decode())
        return {
            "content-type": "application/json",
            "user-agent": "deviceflow-webhooks/1",
            "webhook-id": notification.event_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature,
        }

    async def send(self, destination: str, notification: Notification) -> None:
        body = webhook_body(notification)
        try:
            response = await self._client.post(destination, content=body,
                                               headers=self.headers(notification, body))
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {redacted(destination)} unreachable "
                                f"({type(exc).__name__})") from None
        if not response.is_success:
            raise DeliveryError(f"webhook {redacted(destination)} answered HTTP "
                                f"{response.status_code}")

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()


__all__ = ["SECRET_PREFIX", "WebhookSecretError", "WebhookSender", "generate_secret",
           "load_secret", "parse_secret", "redacted"]

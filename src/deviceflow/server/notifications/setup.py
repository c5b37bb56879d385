"""The delivery side as the settings describe it: which destinations exist, the senders, the
retry policy. Built at start-up (a bad webhook secret refuses the start), used by the app's
background task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ...config.server import ServerSettings
from ...protocol.notifications import Destinations, RetryPolicy
from ...storage.interface import Store
from .email import SmtpConfig, SmtpSender
from .webhooks import WebhookSender, load_secret
from .worker import OutboxWorker, Sender


@dataclass
class Delivery:
    destinations: Destinations
    email: Sender | None = None
    webhook: Sender | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def worker(self, store: Store, clock: Callable[[], float]) -> OutboxWorker:
        return OutboxWorker(store, self.destinations, email=self.email, webhook=self.webhook,
                            policy=self.policy, clock=clock)

    async def close(self) -> None:
        if isinstance(self.webhook, WebhookSender):
            await self.webhook.close()


def webhook_secret(settings: ServerSettings) -> str | None:
    """The signing secret when webhooks are configured; ``WebhookSecretError`` (or
    ``ExposedFileError`` for a file others may read) refuses the start."""
    if not settings.webhook_urls:
        return None
    return load_secret(
        settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
        settings.webhook_secret_file)


def delivery_from_settings(settings: ServerSettings) -> Delivery:
    email: SmtpSender | None = None
    if settings.smtp_host:
        email = SmtpSender(
            SmtpConfig(
                host=settings.smtp_host, port=settings.smtp_port,
                security=settings.smtp_security, sender=settings.smtp_from,
                username=settings.smtp_username,
                password=(settings.smtp_password.get_secret_value()
                          if settings.smtp_password else None),
                timeout=settings.smtp_timeout,
            ),
            issuer=settings.effective_issuer, zone=settings.display_time_zone,
        )
    webhook: WebhookSender | None = None
    secret = webhook_secret(settings)
    if secret is not None:
        webhook = WebhookSender(secret, timeout=settings.webhook_timeout)
    policy = RetryPolicy(base=settings.notification_retry_base,
                         max_attempts=settings.notification_max_attempts,
                         lease=max(300.0, 2 * max(settings.smtp_timeout,
                                                  settings.webhook_timeout)))
    return Delivery(Destinations(webhooks=settings.webhook_urls, email=email is not None),
                    email=email, webhook=webhook, policy=policy)


__all__ = ["Delivery", "delivery_from_settings", "webhook_secret"]

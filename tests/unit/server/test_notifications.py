"""The server side of notifications without sockets: the e-mail's content (text and HTML), the
webhook's headers as a Standard Webhooks receiver verifies them, the signing secret's rules,
the settings' refusals, and a disabled notifier writing nothing."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from deviceflow.config.server import ServerSettings, env_only
from deviceflow.protocol.notifications import Notification, NotificationType, webhook_body
from deviceflow.server.notifications.email import SmtpConfig, message
from deviceflow.server.notifications.webhooks import (
    WebhookSecretError,
    WebhookSender,
    generate_secret,
    load_secret,
    parse_secret,
    redacted,
)
from deviceflow.server.service.notify import Notifier
from deviceflow.storage.files import ExposedFileError
from deviceflow.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
EVENT = Notification("evt_1", NotificationType.APPROVED, T0, client_id="tv",
                     client_name="Living-room TV", username="ann", user_id="sub-a",
                     ip_address="192.0.2.44", user_agent="TV/1 <script>alert(1)</script>")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def parts(n: Notification, zone: str = "UTC") -> tuple[str, str]:
    msg = message(n, to="ann@example.com", sender="auth@example.com",
                  issuer="https://auth.example.com/", zone=zone)
    assert msg["Subject"] == "A device signed in to your account"
    assert msg["Auto-Submitted"] == "auto-generated"
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()


def test_the_email_says_what_where_when_and_links_to_your_devices() -> None:
    text, html = parts(EVENT, "Europe/Berlin")
    assert "15 January 2027, 09:00 CET" in text  # the operator's zone, named
    assert "https://auth.example.com/account/devices" in text
    assert 'href="https://auth.example.com/account/devices"' in html
    assert "Living-room TV" in html
    assert "<script>" not in html  # the User-Agent is the device's to choose: escaped
    assert "&lt;script&gt;" in html
    assert "Network" not in text  # unknown network and place are left out, not "None"
    assert "None" not in text


def test_the_email_shows_network_and_place_when_known() -> None:
    located = Notification(**{**{f: getattr(EVENT, f) for f in EVENT.__dataclass_fields__},
                              "network": "Amazon AWS (AS16509), a hosting network",
                              "place": "Ashburn, United States"})
    text, html = parts(located)
    for part in (text, html):
        assert "Amazon AWS (AS16509), a hosting network" in part
        assert "Ashburn, United States" in part


def test_disguising_characters_are_replaced() -> None:
    tricky = Notification("evt_2", NotificationType.APPROVED, T0, client_name="Evil\u202eVT.exe")
    text, _ = parts(tricky)
    assert "\u202e" not in text
    assert "Evil\ufffdVT.exe" in text


def test_webhook_headers_verify_with_standard_webhooks_and_tampering_fails() -> None:
    secret = generate_secret()
    sender = WebhookSender(secret, client=None)
    body = webhook_body(EVENT)
    headers = sender.headers(EVENT, body)
    assert headers["webhook-id"] == "evt_1"
    assert Webhook(secret).verify(body, headers)["type"] == "approved"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"approved", b"denied"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)


def test_webhook_secret_rules(tmp_path: Path) -> None:
    good = generate_secret()
    assert parse_secret(good + "\n", "x") == good
    for bad in ("secret", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(WebhookSecretError) as refused:
            parse_secret(bad, "DEVICEFLOW_WEBHOOK_SECRET")
        assert bad not in str(refused.value) or bad == "secret"
    path = tmp_path / "webhook.secret"
    path.write_text(good)
    os.chmod(path, 0o644)
    with pytest.raises(ExposedFileError, match="chmod 600"):
        load_secret(None, str(path))
    os.chmod(path, 0o600)
    assert load_secret(None, str(path)) == good
    with pytest.raises(WebhookSecretError, match="cannot read"):
        load_secret(None, str(tmp_path / "missing"))


def test_logs_show_webhook_urls_without_credentials() -> None:
    assert redacted("https://u:p@hooks.example.com:8443/in?token=abc#x") == (
        "https://hooks.example.com:8443/in")
    assert "pw" not in repr(SmtpConfig("smtp.example.com", 587, "starttls", "a@example.com",
                                       "user", "pw"))


@pytest.mark.parametrize(("settings", "words"), [
    ({"smtp_host": "smtp.example.com"}, "smtp_from"),
    ({"smtp_host": "smtp.example.com", "smtp_from": "nope"}, "not a valid e-mail address"),
    ({"smtp_host": "smtp.example.com", "smtp_from": "a@example.com",
      "smtp_security": "none"}, "loopback"),
    ({"webhook_urls": ("https://hooks.example.com/x",)}, "DEVICEFLOW_WEBHOOK_SECRET"),
    ({"webhook_urls": ("http://hooks.example.com/x",), "webhook_secret_file": "/x"}, "HTTPS"),
    ({"display_time_zone": "Mars/Olympus"}, "not an IANA time zone name"),
])
def test_notification_settings_are_refused_in_plain_words(settings: dict[str, object],
                                                          words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        ServerSettings(**settings)  # type: ignore[arg-type]


def test_smtp_and_webhook_secrets_are_environment_only() -> None:
    fields = ServerSettings.model_fields
    assert env_only(fields["smtp_password"])
    assert env_only(fields["webhook_secret"])
    ok = ServerSettings(smtp_host="127.0.0.1", smtp_from="a@example.com", smtp_security="none",
                        webhook_urls=("http://127.0.0.1:9/x",), webhook_secret=generate_secret())
    assert ok.webhook_urls == ("http://127.0.0.1:9/x",)


async def test_a_disabled_notifier_writes_nothing() -> None:
    store = MemoryStore()
    notifier = Notifier(lambda: T0, enabled=False)
    async with store.unit_of_work() as uow:
        assert not await notifier.add_in(uow, notifier.notification(NotificationType.APPROVED))
        assert await uow.outbox.list() == []
    enabled = Notifier(lambda: T0, enabled=True)
    async with store.unit_of_work() as uow:
        assert await enabled.add_in(uow, enabled.notification(NotificationType.APPROVED))
        [row] = await uow.outbox.list()
    assert row.kind.value == "event"

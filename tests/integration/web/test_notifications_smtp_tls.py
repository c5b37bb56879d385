"""The approval e-mail over an encrypted SMTP conversation (issue 10 §4: "SMTP … STARTTLS,
credentials from env"): STARTTLS on the submission port and implicit TLS (RFC 8314 §3.3), each
against a real aiosmtpd server with a certificate from a test CA, which requires TLS before it
accepts a login. The sender verifies the server's certificate against the CA it is given through
``SSL_CERT_FILE`` (the system's trust store otherwise): a server whose certificate it cannot
verify gets nothing, the password least of all."""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from tests.support.receivers import Mailbox

from deviceflow.protocol.models import RequestOrigin
from deviceflow.protocol.notifications import NotificationType
from deviceflow.server.embedded import free_port
from deviceflow.server.notifications.email import SmtpConfig, SmtpSender
from deviceflow.server.notifications.worker import DeliveryError
from deviceflow.server.service.notify import Notifier

pytestmark = pytest.mark.anyio

USERNAME = "deviceflow"
PASSWORD = "smtp password from the environment"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Logins:
    """aiosmtpd's authenticator: remembers each login and whether it came over TLS."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []
        self.lock = threading.Lock()

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        with self.lock:
            self.seen.append((auth_data.login.decode(), session.ssl is not None))
        ok = (auth_data.login.decode(), auth_data.password.decode()) == (USERNAME, PASSWORD)
        return AuthResult(success=ok)


@contextlib.contextmanager
def tls_smtp(ca: trustme.CA, *, implicit: bool) -> Iterator[tuple[Mailbox, Logins, int]]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    mailbox, logins, port = Mailbox(), Logins(), free_port()
    # aiosmtpd's auth_require_tls looks at STARTTLS only: on an implicit-TLS port every byte is
    # inside TLS already (a plain-text client fails the handshake).
    tls: dict[str, Any] = ({"ssl_context": context, "auth_require_tls": False} if implicit
                           else {"tls_context": context, "require_starttls": True,
                                 "auth_require_tls": True})
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, authenticator=logins,
                            **tls)
    controller.start()
    try:
        yield mailbox, logins, port
    finally:
        controller.stop()


def approval() -> Any:
    return Notifier(lambda: 1_800_000_000.0, enabled=True).notification(
        NotificationType.APPROVED, client_id="tv", user_id="u-1", family_id="f-1",
        origin=RequestOrigin("203.0.113.9", "SmartTV/1.0"))


def sender(port: int, security: str, password: str = PASSWORD) -> SmtpSender:
    return SmtpSender(SmtpConfig("127.0.0.1", port, security, "auth@example.com",
                                 username=USERNAME, password=password, timeout=10),
                      issuer="https://auth.example.test")


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    authority = trustme.CA()
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return authority


@pytest.mark.parametrize(("security", "implicit"), [("starttls", False), ("tls", True)])
async def test_the_email_goes_over_tls_with_the_login_after_the_handshake(
        ca: trustme.CA, security: str, implicit: bool) -> None:
    with tls_smtp(ca, implicit=implicit) as (mailbox, logins, port):
        await sender(port, security).send("alice@example.com", approval())
    [message] = mailbox.messages
    assert message["Subject"] == "A device signed in to your account"
    assert mailbox.recipients == [["alice@example.com"]]
    # One login, inside TLS: after STARTTLS (session.ssl), or on a port that speaks only TLS
    # (aiosmtpd records session.ssl for STARTTLS alone).
    assert logins.seen == [(USERNAME, not implicit)]


async def test_a_wrong_password_is_a_delivery_failure_that_names_no_secret(
        ca: trustme.CA) -> None:
    with tls_smtp(ca, implicit=False) as (mailbox, logins, port), \
            pytest.raises(DeliveryError) as failed:
        await sender(port, "starttls", password="wrong").send("alice@example.com", approval())
    assert logins.seen == [(USERNAME, True)]
    assert mailbox.messages == []
    assert "wrong" not in str(failed.value)
    assert USERNAME not in str(failed.value)


async def test_a_server_the_ca_does_not_vouch_for_gets_no_login(
        ca: trustme.CA, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stranger = trustme.CA()  # the sender trusts only this other CA now
    bundle = tmp_path / "other.pem"
    stranger.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    with tls_smtp(ca, implicit=False) as (mailbox, logins, port), pytest.raises(DeliveryError):
        await sender(port, "starttls").send("alice@example.com", approval())
    assert logins.seen == []
    assert mailbox.messages == []

"""E-mail to the person after an approval: "A device signed in to your account", in plain text
and HTML (Jinja2 templates beside this module), sent with ``aiosmtplib``.

The message names the client, the time in the configured zone, the device's IP address and user
agent (and its network and place when known) and links to "Your devices" (the page alone:
following it revokes nothing and signs no one in; the page asks for a sign-in and each device has
its own Sign out button). It holds no token, code or session id."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib
import jinja2

from ...protocol.display import display_safe
from ...protocol.notifications import Notification
from .worker import DeliveryError

SUBJECT = "A device signed in to your account"
DEVICES_PATH = "/account/devices"
"""The "Your devices" page (``server/web/endpoints/devices.py``)."""


def _finalize(value: object) -> object:
    # Client names and User-Agents are chosen by others: no bidi overrides or invisible
    # characters in what the message says (``protocol.display``), as on the pages.
    return display_safe(value) if isinstance(value, str) else value


_text = jinja2.Environment(
    loader=jinja2.PackageLoader("deviceflow.server.notifications", "templates"),
    autoescape=False,  # noqa: S701 - text/plain, never rendered as HTML
    finalize=_finalize, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
)
_html = jinja2.Environment(
    loader=jinja2.PackageLoader("deviceflow.server.notifications", "templates"),
    autoescape=True, finalize=_finalize, undefined=jinja2.StrictUndefined,
    trim_blocks=True, lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    security: str
    """``starttls``, ``tls`` or ``none``."""
    sender: str
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0

    def __repr__(self) -> str:  # never the password, in a traceback or a log line
        return f"SmtpConfig(host={self.host!r}, port={self.port}, security={self.security!r})"


def when(notification: Notification, zone: str) -> str:
    """"2 December 2026, 15:25 CET": the time in the operator's zone, with the zone."""
    local = dt.datetime.fromtimestamp(notification.occurred_at, zoneinfo.ZoneInfo(zone))
    return f"{local.day} {local:%B %Y, %H:%M} {local.tzname()}"


def devices_url(issuer: str) -> str:
    return issuer.rstrip("/") + DEVICES_PATH


def message(notification: Notification, *, to: str, sender: str, issuer: str,
            zone: str = "UTC") -> EmailMessage:
    """The e-mail for an ``approved`` notification."""
    n = notification
    context = {
        "name": n.username or "there",
        "client_name": n.client_name or n.client_id or "an app",
        "when": when(n, zone),
        "ip_address": n.ip_address,
        "user_agent": n.user_agent,
        "network": n.network,
        "place": n.place,
        "devices_url": devices_url(issuer),
        "issuer": issuer,
    }
    msg = EmailMessage()
    msg["Subject"] = SUBJECT
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = format_datetime(dt.datetime.fromtimestamp(n.occurred_at, dt.UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
    msg.set_content(_text.get_template("device_signed_in.txt").render(context))
    msg.add_alternative(_html.get_template("device_signed_in.html").render(context),
                        subtype="html")
    return msg


class SmtpSender:
    """Sends one e-mail per call (a new SMTP conversation: they are rare, one per approval)."""

    def __init__(self, config: SmtpConfig, *, issuer: str, zone: str = "UTC") -> None:
        self.config = config
        self.issuer = issuer
        self.zone = zone

    async def send(self, destination: str, notification: Notification) -> None:
        c = self.config
        msg = message(notification, to=destination, sender=c.sender, issuer=self.issuer,
                      zone=self.zone)
        try:
            await aiosmtplib.send(
                msg, hostname=c.host, port=c.port, username=c.username, password=c.password,
                use_tls=c.security == "tls", start_tls=c.security == "starttls",
                timeout=c.timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            # The server's code only: its message may echo the address or our login name.
            raise DeliveryError(f"SMTP server refused ({exc.code})") from None
        except aiosmtplib.SMTPException as exc:
            raise DeliveryError(f"SMTP failed ({type(exc).__name__})") from None
        except OSError as exc:
            raise DeliveryError(f"SMTP server unreachable ({type(exc).__name__})") from None


__all__ = ["DEVICES_PATH", "SUBJECT", "SmtpConfig", "SmtpSender", "devices_url", "message",
           "when"]

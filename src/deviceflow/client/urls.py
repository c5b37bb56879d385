"""Is a server address usable: a scheme, a host, and TLS unless it is loopback (RFC 8414 §2,
RFC 6749 §3.1)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from deviceflow.client.errors import InsecureIssuerError

__all__ = ["check_secure_url"]


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_secure_url(url: str, *, what: str = "server address") -> str:
    """RFC 8414 §2 / RFC 6749 §3.1: endpoints use TLS; plain http only on loopback.

    A URL with no scheme or an unknown one (``127.0.0.1:8765``, ``htp://host``) is named as
    such, with the URL it probably meant, rather than refused as "not https".
    """
    parts = urlsplit(url)
    if "://" not in url and parts.scheme not in ("https", "http"):
        raise InsecureIssuerError(url, _scheme_hint(f"The {what} {url} has no scheme", url))
    if parts.scheme not in ("https", "http"):
        rest = url.split("://", 1)[1]
        raise InsecureIssuerError(
            url, _scheme_hint(f"The {what} {url} has an unknown scheme '{parts.scheme}'", rest)
        )
    if not parts.hostname:
        raise InsecureIssuerError(url, f"The {what} {url} has no host name.")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise InsecureIssuerError(url, f"The {what} {url} has an invalid port.") from None
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise InsecureIssuerError(url)
    return url


def _scheme_hint(problem: str, rest: str) -> str:
    """``problem``, then the URL(s) ``rest`` most likely meant: http only for loopback."""
    host = urlsplit("//" + rest).hostname or ""
    if _is_loopback(host):
        return f"{problem}: use http://{rest} (loopback) or https://{rest}."
    return f"{problem}: use https://{rest}."

"""Redirect URIs (RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §2.1): which may be registered, and
whether a requested one matches a registered one.

Registered: an absolute URI without a fragment (RFC 6749 §3.1.2), and one of
- ``https://…`` (a web application, RFC 9700 §2.1: exact match);
- ``http://127.0.0.1…`` or ``http://[::1]…`` (a native app's loopback listener, RFC 8252 §7.3;
  ``localhost`` is refused, as §8.3 advises: it may resolve elsewhere);
- a private-use scheme with a period in it, ``com.example.app:/callback`` (RFC 8252 §7.1).

Matching is exact string comparison (RFC 9700 §4.1.3), except that a loopback URI's port may
differ (RFC 8252 §7.3: "MUST allow any port to be specified at the time of the request").
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "[::1]"})
MAX_REDIRECT_URI = 512
"""Characters: a pending request (with its redirect URI) waits in the 4 KB session cookie."""

_PRIVATE_SCHEME = re.compile(r"^[a-z][a-z0-9+\-]*(\.[a-z0-9+\-]+)+$")
"""RFC 8252 §7.1: a reverse domain name (``com.example.app``), lower case as RFC 3986 §3.1
makes schemes canonical."""


class RedirectUriRefused(ValueError):
    """Why a redirect URI cannot be registered: one sentence for the operator."""


def _netloc_host(netloc: str) -> str:
    """The host part of ``netloc`` as written (``[::1]`` keeps its brackets)."""
    host = netloc.rpartition("@")[2]
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.partition(":")[0]


def is_loopback(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and _netloc_host(parts.netloc) in LOOPBACK_HOSTS


def check_redirect_uri(uri: str) -> str:
    """``uri`` if it may be registered; else ``RedirectUriRefused`` saying why."""
    if not uri or len(uri) > MAX_REDIRECT_URI or any(c.isspace() for c in uri):
        raise RedirectUriRefused(f"{uri!r} is not a redirect URI (empty, too long or has spaces)")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        raise RedirectUriRefused(f"{uri!r} is not a valid URI") from None
    if "#" in uri:
        raise RedirectUriRefused(f"{uri!r} has a fragment, which RFC 6749 §3.1.2 forbids")
    if parts.scheme == "https":
        if not parts.hostname:
            raise RedirectUriRefused(f"{uri!r} has no host")
        return uri
    if parts.scheme == "http":
        if _netloc_host(parts.netloc) in LOOPBACK_HOSTS and "@" not in parts.netloc:
            return uri
        raise RedirectUriRefused(
            f"{uri!r} uses http: only https, or a loopback http://127.0.0.1 or http://[::1] "
            "for a native app (RFC 8252 §7.3; not localhost, §8.3), is accepted")
    if _PRIVATE_SCHEME.match(parts.scheme) and not parts.netloc and parts.path.startswith("/"):
        return uri  # RFC 8252 §7.1: com.example.app:/oauth2redirect
    raise RedirectUriRefused(
        f"{uri!r} is not https, loopback http, or a private-use scheme such as "
        "com.example.app:/callback (RFC 8252 §7.1)")


def _without_port(uri: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(netloc=_netloc_host(parts.netloc)))


def matches(requested: str, registered: frozenset[str]) -> bool:
    """RFC 9700 §4.1.3 exact match, with RFC 8252 §7.3's loopback port exception: a requested
    ``http://127.0.0.1:51234/cb`` matches a registered ``http://127.0.0.1/cb`` (or any port),
    everything else about it (scheme, host, path, query) equal."""
    if requested in registered:
        return True
    if not is_loopback(requested) or "@" in urlsplit(requested).netloc:
        return False
    try:
        urlsplit(requested).port  # noqa: B018 - a malformed port matches nothing
    except ValueError:
        return False
    bare = _without_port(requested)
    return any(is_loopback(uri) and _without_port(uri) == bare for uri in registered)

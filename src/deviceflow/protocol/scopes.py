"""Scopes (RFC 6749 §3.3) and their plain-language descriptions for the consent page."""

from __future__ import annotations

import re

from .errors import InvalidRequestError, InvalidScopeError

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")

OPENID = "openid"
PROFILE = "profile"
OFFLINE_ACCESS = "offline_access"

STANDARD_SCOPES: tuple[str, ...] = (OPENID, PROFILE, OFFLINE_ACCESS)

SCOPE_DESCRIPTIONS: dict[str, str] = {
    OPENID: "Confirm who you are (your account identifier)",
    PROFILE: "See your name and username",
    # Shown only when approving really issues a refresh token (refresh_token.issues_refresh_token):
    # the consent page says it on its own line, never as a bare scope.
    OFFLINE_ACCESS: "Stay signed in on this device (until you sign it out)",
}


def parse_scope(raw: str | None) -> tuple[str, ...] | None:
    """Split a space-delimited scope string into unique tokens in order; None when absent."""
    if raw is None:
        return None
    tokens = raw.split(" ")
    out: list[str] = []
    for token in tokens:
        if not token:
            continue
        if not _SCOPE_TOKEN.match(token):
            raise InvalidScopeError(f"malformed scope token {token!r}")
        if token not in out:
            out.append(token)
    if not out:
        raise InvalidRequestError("empty scope")
    return tuple(out)


def resolve_scope(requested: tuple[str, ...] | None, allowed: frozenset[str]) -> tuple[str, ...]:
    """The scope to grant. RFC 6749 §3.3: when the client omits ``scope`` the server "MUST either
    process the request using a pre-defined default value or fail"; our default is everything the
    client is registered for."""
    if requested is None:
        return tuple(sorted(allowed))
    not_allowed = [s for s in requested if s not in allowed]
    if not_allowed:
        raise InvalidScopeError(f"scope not allowed for client: {not_allowed}")
    return requested


def narrow_scope(requested: tuple[str, ...] | None, original: tuple[str, ...]) -> tuple[str, ...]:
    """RFC 6749 §6: the refreshed scope "MUST NOT include any scope not originally granted by the
    resource owner, and if omitted is treated as equal to the scope originally granted"."""
    if requested is None:
        return original
    extra = [s for s in requested if s not in original]
    if extra:
        raise InvalidScopeError(f"scope exceeds the original grant: {extra}")
    return requested


def describe_scope(scope: str) -> str:
    return SCOPE_DESCRIPTIONS.get(scope, f"Access “{scope}”")

"""Token values the client receives: RFC 6749 §5.1 token responses, RFC 8628 §3.2 device
authorization responses, and an unverified JWT decoder (RFC 7519 §7.2 steps 1-6, without the
signature check) for showing what a token says.

Token values never appear in ``repr()``: ``field(repr=False)`` keeps them out of logs and
tracebacks.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from deviceflow.client.errors import ServerResponseError

__all__ = [
    "DeviceCode",
    "JwtParts",
    "TokenSet",
    "decode_jwt_unverified",
    "parse_device_code",
    "parse_number",
    "parse_token_response",
    "strip_control",
]

DEFAULT_INTERVAL = 5  # RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default."


# Bidirectional overrides and line separators can reorder or split what a person reads
# ("Trojan Source", CVE-2021-42574), so they go too.
_INVISIBLE_FORMATTING = frozenset(
    "\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def strip_control(text: str) -> str:
    """Remove C0/C1 control characters (and DEL) from server-supplied text.

    A malicious server could otherwise move the cursor, recolour or retitle the terminal, or hide
    text (terminal escape injection). Newlines become spaces: server text is one line.
    """
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\n\t":
            out.append(" ")
        elif code < 0x20 or 0x7F <= code < 0xA0 or ch in _INVISIBLE_FORMATTING:
            continue
        else:
            out.append(ch)
    return "".join(out)


def parse_number(value: object, name: str) -> float | None:
    """A JSON number, tolerating numbers sent as strings.

    Evidence: Azure AD's v1.0 endpoint answers ``"expires_in":"900","interval":"5"`` (strings),
    which MSAL and ADAL parse leniently; RFC 8628 §3.2 says they are numbers.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ServerResponseError(f"The server sent an invalid '{name}' value.")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ServerResponseError(f"The server sent an invalid '{name}' value.") from None
    else:
        raise ServerResponseError(f"The server sent an invalid '{name}' value.")
    if not math.isfinite(number) or number < 0:
        raise ServerResponseError(f"The server sent an invalid '{name}' value.")
    return number


def _required(data: Mapping[str, object], name: str) -> str:
    value = _string(data, name, required=True)
    if value is None:
        raise ServerResponseError(f"The server's response has no '{name}'.")
    return value


def _string(data: Mapping[str, object], name: str, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise ServerResponseError(f"The server's response has no '{name}'.")
        return None
    if not isinstance(value, str):
        raise ServerResponseError(f"The server sent an invalid '{name}' value.")
    return value


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """RFC 8628 §3.2 device authorization response, plus when it was received."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float
    received_at: float  # monotonic clock reading when the response arrived
    message: str | None = None  # Entra's human-readable instructions

    @property
    def expires_at(self) -> float:
        """Monotonic deadline after which the code is no longer valid."""
        return self.received_at + self.expires_in

    @property
    def qr_target(self) -> str:
        return self.verification_uri_complete or self.verification_uri


def parse_device_code(data: Mapping[str, object], *, received_at: float) -> DeviceCode:
    device_code = _required(data, "device_code")
    user_code = _required(data, "user_code")
    # Google's device flow names the field "verification_url" ("OAuth 2.0 for TV and Limited-Input
    # Device Applications", step 2 response); cli/oauth's device_flow.go reads it the same way.
    verification_uri = _string(data, "verification_uri", required=False) or _string(
        data, "verification_url", required=False
    )
    if verification_uri is None:
        raise ServerResponseError("The server's response has no 'verification_uri'.")
    expires_in = parse_number(data.get("expires_in"), "expires_in")
    if expires_in is None or expires_in <= 0:
        raise ServerResponseError("The server's response has no valid 'expires_in'.")
    interval = parse_number(data.get("interval"), "interval")
    if interval is None or interval <= 0:
        interval = float(DEFAULT_INTERVAL)
    return DeviceCode(
        device_code=device_code,
        user_code=strip_control(user_code),
        verification_uri=strip_control(verification_uri),
        verification_uri_complete=_optional_clean(data, "verification_uri_complete"),
        expires_in=expires_in,
        interval=interval,
        received_at=received_at,
        message=_optional_clean(data, "message"),
    )


def _optional_clean(data: Mapping[str, object], name: str) -> str | None:
    value = data.get(name)
    return strip_control(value) if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class TokenSet:
    """RFC 6749 §5.1 access token response, with absolute expiry (wall clock, epoch seconds)."""

    access_token: str = field(repr=False)
    token_type: str = "Bearer"
    expires_at: float | None = None  # None: the server gave no lifetime
    scope: tuple[str, ...] | None = None  # None: the server did not say (so: as requested)
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    issued_at: float = 0.0

    def expires_in(self, now: float) -> int | None:
        if self.expires_at is None:
            return None
        return max(0, int(self.expires_at - now))

    def is_fresh(self, now: float, *, margin: float = 60.0) -> bool:
        """Still valid for more than ``margin`` seconds (unknown lifetime counts as valid)."""
        return self.expires_at is None or self.expires_at - now > margin

    def merged_with(self, previous: TokenSet | None) -> TokenSet:
        """RFC 6749 §6: a refresh response MAY omit a new refresh token (keep the old one) and
        OIDC Core §12.2 lets it omit the ID token."""
        if previous is None:
            return self
        return replace(
            self,
            refresh_token=self.refresh_token or previous.refresh_token,
            id_token=self.id_token or previous.id_token,
        )


def parse_token_response(
    data: Mapping[str, object],
    *,
    now: float,
    requested_scopes: tuple[str, ...],
    comma_separated_scope: bool = False,
) -> TokenSet:
    access_token = _required(data, "access_token")
    token_type = _string(data, "token_type", required=False) or "Bearer"
    # GitHub answers "token_type":"bearer"; RFC 6749 §5.1 says the value is case insensitive.
    if token_type.lower() == "bearer":
        token_type = "Bearer"
    expires_in = parse_number(data.get("expires_in"), "expires_in")
    raw_scope = _string(data, "scope", required=False)
    scope: tuple[str, ...] | None
    if raw_scope is None:
        # RFC 6749 §5.1: scope is OPTIONAL "if identical to the scope requested by the client".
        scope = requested_scopes or None
    else:
        separator = "," if comma_separated_scope and " " not in raw_scope else None
        scope = tuple(s for s in (p.strip() for p in raw_scope.split(separator)) if s)
    return TokenSet(
        access_token=access_token,
        token_type=strip_control(token_type),
        expires_at=None if expires_in is None else now + expires_in,
        scope=scope,
        refresh_token=_string(data, "refresh_token", required=False),
        id_token=_string(data, "id_token", required=False),
        issued_at=now,
    )


@dataclass(frozen=True, slots=True)
class JwtParts:
    header: Mapping[str, object]
    claims: Mapping[str, object]

    def expires_at(self) -> float | None:
        exp = self.claims.get("exp")
        return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _b64url_json(segment: str, what: str) -> Mapping[str, object]:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeError):
        raise ValueError(f"its {what} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"its {what} is not a JSON object")
    return value


def decode_jwt_unverified(token: str) -> JwtParts:
    """Decode a JWS compact serialization WITHOUT verifying its signature.

    Raises ValueError with a short reason when the token is not a JWT (e.g. an opaque token).
    """
    token = token.strip()
    parts = token.split(".")
    if len(parts) == 5:
        raise ValueError("it is an encrypted JWT (JWE), which only its recipient can read")
    if len(parts) != 3:
        raise ValueError("it is not a JWT (a JWT has three dot-separated parts)")
    header = _b64url_json(parts[0], "header")
    claims = _b64url_json(parts[1], "payload")
    return JwtParts(header=header, claims=claims)

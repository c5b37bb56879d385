"""Token revocation (RFC 7009 §2): the request, and what a presented token ends.

The service looks the token up as each kind in turn (``lookup_order``) and hands what it found
here; these functions decide, and the service persists the decision in one transaction:

- a refresh token ends its whole login (its family): every refresh token of it, and every access
  token issued from it, through a denylist entry for the family (RFC 7009 §2.1: "If the
  particular token is a refresh token and the authorization server supports the revocation of
  access tokens, then the authorization server SHOULD also invalidate all access tokens based on
  the same authorization grant");
- an access token is denied by its ``jti`` until it expires; when the client is public, its login
  ends too (§2.1: the server "MAY revoke the respective refresh token as well"). A public client
  has no secret, so the access token is all it may hold when it signs out, and nobody but the
  holder of a token can present it; a confidential client revokes its refresh token itself;
- an ID token issued to the client cannot be revoked: ``unsupported_token_type`` (§2.2.1);
- anything else (unknown, malformed, another issuer's, another client's) changes nothing and is
  answered 200 (§2.2: "invalid tokens do not cause an error response"; §2.1: the server
  "verifies whether the token was issued to the client making the revocation request. If this
  validation fails, the request is refused" — silently, so a client learns nothing of the
  tokens of others).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from .errors import InvalidRequestError, UnsupportedTokenTypeError
from .models import Client, DeniedToken, DenyKind, RefreshToken, Timestamp
from .params import FormParams
from .tokens import AccessToken

CLOCK_MARGIN = 60
"""Seconds a family entry outlives the last access token the login can have: a refresh that
committed just before the revocation signs its token a moment later, maybe on a host whose
clock runs ahead."""


class TokenKind(StrEnum):
    """The ``token_type_hint`` values of RFC 7009 §2.1 (and RFC 7662 §2.1)."""

    ACCESS_TOKEN = "access_token"
    REFRESH_TOKEN = "refresh_token"


_HINTS = {kind.value: kind for kind in TokenKind}


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A revocation (RFC 7009 §2.1) or introspection (RFC 7662 §2.1) request: the same two
    parameters."""

    token: str
    hint: TokenKind | None


def parse_token_request(params: FormParams) -> TokenRequest:
    """``token`` is REQUIRED; ``token_type_hint`` OPTIONAL. An unknown hint is ignored (RFC 7009
    §2.1: the server "MAY ignore this parameter", and it "MUST extend its search across all of
    its supported token types" when the hint does not find the token)."""
    token = params.require("token")
    if not token.strip():
        raise InvalidRequestError("empty parameter 'token'")
    hint = params.get("token_type_hint")
    return TokenRequest(token, None if hint is None else _HINTS.get(hint))


def lookup_order(hint: TokenKind | None) -> tuple[TokenKind, TokenKind]:
    """The hinted kind first, then the other: a hint saves a lookup, never decides."""
    if hint is TokenKind.REFRESH_TOKEN:
        return (TokenKind.REFRESH_TOKEN, TokenKind.ACCESS_TOKEN)
    return (TokenKind.ACCESS_TOKEN, TokenKind.REFRESH_TOKEN)


@dataclass(frozen=True, slots=True)
class EndLogin:
    """Revoke the family's refresh tokens and deny its access tokens."""

    family_id: str


@dataclass(frozen=True, slots=True)
class DenyAccessToken:
    """Deny one access token (``entry``), and end its login too when ``family_id`` is set."""

    entry: DeniedToken | None
    family_id: str | None


@dataclass(frozen=True, slots=True)
class NothingToRevoke:
    """Answer 200 and change nothing (unknown, or another client's token)."""

    reason: str


RevocationDecision = EndLogin | DenyAccessToken | NothingToRevoke


def revoke_refresh_token(token: RefreshToken, client: Client) -> EndLogin | NothingToRevoke:
    """RFC 7009 §2.1. A rotated or expired token still names its login, which ends: the client
    asked for the grant to end, and ending it twice is harmless (idempotent)."""
    if token.client_id != client.client_id:
        return NothingToRevoke("refresh token of another client")
    return EndLogin(token.family_id)


def revoke_access_token(
    token: AccessToken, client: Client, now: Timestamp
) -> DenyAccessToken | NothingToRevoke:
    """RFC 7009 §2.1. An expired token needs no entry (it is refused anyway), but for a public
    client it still ends the login it names."""
    if token.client_id != client.client_id:
        return NothingToRevoke("access token of another client")
    entry = None
    if token.active(now):
        entry = DeniedToken(DenyKind.JTI, token.jti, expires_at=float(token.exp), created_at=now)
    family = token.family_id if client.is_public else None
    if entry is None and family is None:
        return NothingToRevoke("access token already expired")
    return DenyAccessToken(entry, family)


def refuse_id_token(claims: Mapping[str, object], client: Client, issuer: str) -> None:
    """RFC 7009 §2.2.1 ``unsupported_token_type``: our ID token, issued to this client, is a
    token we recognise but do not revoke (it is a statement about a sign-in, not a credential:
    nothing accepts it in place of an access token). Another client's is answered as unknown."""
    if claims.get("iss") == issuer and claims.get("aud") == client.client_id:
        raise UnsupportedTokenTypeError("ID tokens cannot be revoked")


def family_entry(family_id: str, now: Timestamp, access_token_lifetime: int) -> DeniedToken:
    """The denylist entry that refuses every access token of a login. Once its refresh tokens
    are revoked no new access token can be issued, so it is needed only until the last one
    already issued expires."""
    return DeniedToken(DenyKind.FAMILY, family_id,
                       expires_at=now + access_token_lifetime + CLOCK_MARGIN, created_at=now)


__all__ = [
    "CLOCK_MARGIN",
    "DenyAccessToken",
    "EndLogin",
    "NothingToRevoke",
    "RevocationDecision",
    "TokenKind",
    "TokenRequest",
    "family_entry",
    "lookup_order",
    "parse_token_request",
    "refuse_id_token",
    "revoke_access_token",
    "revoke_refresh_token",
]

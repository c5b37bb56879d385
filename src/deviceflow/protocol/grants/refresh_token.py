"""The refresh token grant (RFC 6749 §6) with rotation (RFC 9700 §4.14.2).

Each use rotates the refresh token. Presenting a token that was already rotated means it leaked
or was replayed, so the whole family from that login is revoked.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import InvalidGrantError, UnauthorizedClientError
from ..models import REFRESH_TOKEN_GRANT, Client, RefreshStatus, RefreshToken, Timestamp
from ..params import FormParams
from ..scopes import narrow_scope, parse_scope

GRANT_TYPE = REFRESH_TOKEN_GRANT


@dataclass(frozen=True, slots=True)
class RefreshRequest:
    refresh_token: str
    scope: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class Rotate:
    """Mark ``old`` rotated (compare-and-set on its status) and, if that wins, issue tokens for
    ``scope`` with a new refresh token in the same family."""

    old: RefreshToken
    scope: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RevokeFamily:
    """A rotated token came back: revoke the family, then answer ``invalid_grant``."""

    family_id: str


RefreshDecision = Rotate | RevokeFamily


def parse(params: FormParams) -> RefreshRequest:
    return RefreshRequest(
        refresh_token=params.require("refresh_token"), scope=parse_scope(params.get("scope"))
    )


def refresh(
    request: RefreshRequest, token: RefreshToken | None, client: Client, now: Timestamp
) -> RefreshDecision:
    """RFC 6749 §6: the server MUST "validate the refresh token" and "ensure that the refresh
    token was issued to the authenticated client"."""
    if GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClientError(f"client {client.client_id!r} lacks the refresh grant")
    if token is None or token.client_id != client.client_id:
        raise InvalidGrantError("unknown refresh token or issued to another client")
    if token.status is RefreshStatus.ROTATED:
        return RevokeFamily(token.family_id)
    if token.status is not RefreshStatus.ACTIVE:
        raise InvalidGrantError("refresh token revoked")
    if now >= token.expires_at:
        raise InvalidGrantError("refresh token expired")
    return Rotate(token, narrow_scope(request.scope, token.scope))


def successor(
    decision: Rotate, new_hash: str, now: Timestamp, lifetime: int
) -> RefreshToken:
    """The refresh token that replaces ``decision.old``: same family, user, auth_time and scope.

    RFC 6749 §6: a new refresh token's scope "MUST be identical to that of the refresh token
    included by the client"; only the access token is narrowed."""
    return dataclasses.replace(
        decision.old,
        token_hash=new_hash,
        issued_at=now,
        expires_at=now + lifetime,
        status=RefreshStatus.ACTIVE,
    )

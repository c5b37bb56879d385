"""The refresh token grant (RFC 6749 §6) with rotation (RFC 9700 §4.14.2).

Each use rotates the refresh token. Presenting a token that was already rotated means it leaked
or was replayed, so the whole family from that login is revoked, with one exception: the
immediately previous token presented again within a short grace window, while its successor was
never used, is a client retrying after a response it never received (or two requests racing). It
is answered with fresh tokens, and the unused successor is invalidated. A thief who replays within
that window gets tokens too, but invalidates the legitimate client's token, whose next refresh
then fails and surfaces the theft; once the successor has been used, or the window has passed,
any reuse revokes the family.

A family also has an absolute end, fixed at the login, that no rotation extends.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ..errors import InvalidGrantError, UnauthorizedClientError
from ..models import (
    REFRESH_TOKEN_GRANT,
    Client,
    RefreshStatus,
    RefreshToken,
    Timestamp,
    TokenPolicy,
)
from ..params import FormParams
from ..scopes import OFFLINE_ACCESS, narrow_scope, parse_scope
from ..tokens import Grant

GRANT_TYPE = REFRESH_TOKEN_GRANT


@dataclass(frozen=True, slots=True)
class RefreshRequest:
    refresh_token: str
    scope: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class Rotate:
    """Mark ``old`` rotated, naming its successor (compare-and-set on its status), and, if that
    wins, issue tokens for ``scope`` with the successor in the same family."""

    old: RefreshToken
    scope: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReissueWithinGrace:
    """``old`` was rotated moments ago and its successor ``replaced`` was never used: revoke
    ``replaced`` (compare-and-set on its status and on ``old``'s pointer to it), point ``old`` at
    a new successor, and issue tokens for ``scope``."""

    old: RefreshToken
    replaced: str
    scope: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RevokeFamily:
    """A rotated token came back: revoke the family, then answer ``invalid_grant``."""

    family_id: str


RefreshDecision = Rotate | ReissueWithinGrace | RevokeFamily


def issues_refresh_token(
    client: Client, scope: tuple[str, ...], server_grants: Collection[str]
) -> bool:
    """Whether a login for ``scope`` gets a refresh token: the one rule the consent page ("Stay
    signed in on this device") and the token endpoint both follow.

    OIDC Core §11: offline access is requested with the ``offline_access`` scope, and the
    refresh token it yields is what keeps access while the person is away; the consent page must
    say so. So a refresh token is issued exactly when the client may use the grant (RFC 6749 §6),
    the server offers it, and ``offline_access`` was granted."""
    return (
        GRANT_TYPE in client.grant_types
        and GRANT_TYPE in server_grants
        and OFFLINE_ACCESS in scope
    )


def parse(params: FormParams) -> RefreshRequest:
    return RefreshRequest(
        refresh_token=params.require("refresh_token"), scope=parse_scope(params.get("scope"))
    )


def within_grace(
    token: RefreshToken, successor: RefreshToken | None, now: Timestamp, grace: int
) -> bool:
    """A rotated ``token`` may be presented again: the window since its rotation is open, the
    token itself has not expired, and its successor exists and was never used."""
    return (
        token.rotated_at is not None
        and now < token.rotated_at + grace
        and now < token.expires_at
        and successor is not None
        and successor.token_hash == token.successor_hash
        and successor.status is RefreshStatus.ACTIVE
    )


def refresh(
    request: RefreshRequest,
    token: RefreshToken | None,
    successor: RefreshToken | None,
    client: Client,
    now: Timestamp,
    grace: int,
) -> RefreshDecision:
    """RFC 6749 §6: the server MUST "validate the refresh token" and "ensure that the refresh
    token was issued to the authenticated client". ``successor`` is the token ``token`` was
    rotated to, when it was (``token.successor_hash``); ``grace`` the reuse window in seconds."""
    if GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClientError(f"client {client.client_id!r} lacks the refresh grant")
    if token is None or token.client_id != client.client_id:
        raise InvalidGrantError("unknown refresh token or issued to another client")
    if now >= token.family_expires_at:
        raise InvalidGrantError("refresh token family past its absolute lifetime")
    if token.status is RefreshStatus.ROTATED:
        if successor is not None and within_grace(token, successor, now, grace):
            return ReissueWithinGrace(
                token, successor.token_hash, narrow_scope(request.scope, token.scope)
            )
        return RevokeFamily(token.family_id)
    if token.status is not RefreshStatus.ACTIVE:
        raise InvalidGrantError("refresh token revoked")
    if now >= token.expires_at:
        raise InvalidGrantError("refresh token expired")
    return Rotate(token, narrow_scope(request.scope, token.scope))


def start_family(
    grant: Grant, token_hash: str, family_id: str, now: Timestamp, policy: TokenPolicy
) -> RefreshToken:
    """The first refresh token of a login; its family ends ``refresh_token_absolute_lifetime``
    from now, whatever later rotations do."""
    family_end = now + policy.refresh_token_absolute_lifetime
    return RefreshToken(
        token_hash=token_hash,
        family_id=family_id,
        client_id=grant.client_id,
        user_id=grant.user.user_id,
        scope=grant.scope,
        issued_at=now,
        expires_at=min(now + policy.refresh_token_lifetime, family_end),
        auth_time=grant.auth_time,
        family_expires_at=family_end,
        grant_type=grant.grant_type,
        amr=grant.amr,
    )


def successor(
    decision: Rotate | ReissueWithinGrace, new_hash: str, now: Timestamp, lifetime: int
) -> RefreshToken:
    """The refresh token that replaces ``decision.old``: same family, user, auth_time, grant
    and scope, and never past the family's absolute end.

    RFC 6749 §6: a new refresh token's scope "MUST be identical to that of the refresh token
    included by the client"; only the access token is narrowed."""
    old = decision.old
    return RefreshToken(
        token_hash=new_hash,
        family_id=old.family_id,
        client_id=old.client_id,
        user_id=old.user_id,
        scope=old.scope,
        issued_at=now,
        expires_at=min(now + lifetime, old.family_expires_at),
        auth_time=old.auth_time,
        family_expires_at=old.family_expires_at,
        grant_type=old.grant_type,
        amr=old.amr,
    )

"""Token introspection (RFC 7662 §2): the response for a token the service looked up.

Who may ask: an authenticated confidential client (a resource server registers as one), and any
such client may introspect any token of ours. RFC 7662 §4 lets the server limit a protected
resource to the tokens meant for it; every access token here carries the one audience the
server is configured with, so there is nothing finer to limit by.

The answer for any token that is not active is ``{"active": false}`` and nothing else (§2.2:
"the authorization server MUST NOT include any additional information about an inactive
token"), so a caller cannot tell unknown from expired from revoked.
"""

from __future__ import annotations

from .models import RefreshStatus, RefreshToken, Timestamp, User
from .tokens import AccessToken

ACCESS_TOKEN_TYPE = "Bearer"
"""RFC 7662 §2.2 ``token_type``: "Type of the token as defined in Section 5.1 of OAuth 2.0",
the ``token_type`` the token response carried."""


def inactive() -> dict[str, object]:
    """RFC 7662 §2.2: ``active`` false, and nothing else."""
    return {"active": False}


def access_token_response(token: AccessToken, user: User | None) -> dict[str, object]:
    """RFC 7662 §2.2 for an active access token: the token's own claims, plus ``username``
    (the person's current username; none for a client's own token) and ``token_type``; ``fam``
    stays inside the token."""
    body: dict[str, object] = {
        "active": True,
        "scope": " ".join(token.scope),
        "client_id": token.client_id,
        "token_type": ACCESS_TOKEN_TYPE,
        "exp": token.exp,
        "iat": token.iat,
        "sub": token.sub,
        "iss": token.iss,
        "jti": token.jti,
    }
    if user is not None:
        body["username"] = user.username
    if token.aud is not None:
        body["aud"] = token.aud
    if token.gty is not None:
        body["gty"] = token.gty
    return body


def refresh_token_active(token: RefreshToken, now: Timestamp) -> bool:
    """Active iff never used, revoked or rotated away, and before both its own expiry and the
    absolute end of its login."""
    return (
        token.status is RefreshStatus.ACTIVE
        and now < token.expires_at
        and now < token.family_expires_at
    )


def refresh_token_response(token: RefreshToken, user: User, issuer: str) -> dict[str, object]:
    """RFC 7662 §2.2 for an active refresh token. ``token_type`` is left out: it is OPTIONAL and
    names an access token type of RFC 6749 §5.1, which a refresh token does not have
    ("refresh_token" is a ``token_type_hint`` value, not a token type)."""
    return {
        "active": True,
        "scope": " ".join(token.scope),
        "client_id": token.client_id,
        "username": user.username,
        "exp": int(token.expires_at),
        "iat": int(token.issued_at),
        "sub": token.user_id,
        "iss": issuer,
        "gty": token.grant_type,
    }


__all__ = [
    "ACCESS_TOKEN_TYPE",
    "access_token_response",
    "inactive",
    "refresh_token_active",
    "refresh_token_response",
]

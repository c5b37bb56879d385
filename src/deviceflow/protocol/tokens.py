"""Access tokens (RFC 9068 JWT profile) and ID tokens (OIDC Core §2), signed through an injected
``Signer`` so the core never touches key material."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .models import IssuedTokens, TokenPolicy, User
from .scopes import OPENID, PROFILE

ACCESS_TOKEN_TYP = "at+jwt"
"""RFC 9068 §2.1: "Resource servers MUST verify that the typ header value is at+jwt"."""


class Signer(Protocol):
    """Signs a JWS over JSON claims with the server's current key."""

    @property
    def alg(self) -> str: ...

    def sign(self, claims: dict[str, object], typ: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Grant:
    """What a successful grant authorizes: who, for which client, which scope, since when, and
    through which grant the login began (``gty``: the device grant's URI, kept on refresh)."""

    user: User
    client_id: str
    scope: tuple[str, ...]
    auth_time: float
    grant_type: str


def access_token_claims(
    grant: Grant, policy: TokenPolicy, now: int, jti: str
) -> dict[str, object]:
    """RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti are REQUIRED; scope SHOULD be
    present when the request carried one; auth_time when known.

    ``gty`` (a private claim, named as Auth0 names it) is the ``grant_type`` value of the grant
    that began the login, e.g. ``urn:ietf:params:oauth:grant-type:device_code``; a refresh keeps
    it, so a resource server can hold tokens from a device login to its own policy however
    often they were refreshed."""
    return {
        "iss": policy.issuer,
        "sub": grant.user.user_id,
        "aud": policy.access_token_audience or policy.issuer,
        "client_id": grant.client_id,
        "scope": " ".join(grant.scope),
        "iat": now,
        "exp": now + policy.access_token_lifetime,
        "auth_time": int(grant.auth_time),
        "jti": jti,
        "gty": grant.grant_type,
    }


def id_token_claims(grant: Grant, policy: TokenPolicy, now: int) -> dict[str, object]:
    """OIDC Core §2: iss, sub, aud, exp, iat REQUIRED; auth_time since the person signed in
    interactively. Profile claims are added when ``profile`` was granted (§5.4)."""
    claims: dict[str, object] = {
        "iss": policy.issuer,
        "sub": grant.user.user_id,
        "aud": grant.client_id,
        "iat": now,
        "exp": now + policy.id_token_lifetime,
        "auth_time": int(grant.auth_time),
    }
    if PROFILE in grant.scope:
        claims.update(profile_claims(grant.user))
    return claims


def profile_claims(user: User) -> dict[str, str]:
    return {"preferred_username": user.username, "name": user.name or user.username}


def issue(
    grant: Grant,
    policy: TokenPolicy,
    signer: Signer,
    now: float,
    jti: str,
    refresh_token: str | None,
) -> IssuedTokens:
    """The RFC 6749 §5.1 success response for ``grant``; an ID token when ``openid`` was granted
    (OIDC Core §3.1.3.3)."""
    issued_at = int(now)
    access_token = signer.sign(
        access_token_claims(grant, policy, issued_at, jti), ACCESS_TOKEN_TYP
    )
    id_token = (
        signer.sign(id_token_claims(grant, policy, issued_at), "JWT")
        if OPENID in grant.scope
        else None
    )
    return IssuedTokens(
        access_token=access_token,
        expires_in=policy.access_token_lifetime,
        scope=grant.scope,
        refresh_token=refresh_token,
        id_token=id_token,
    )

"""Access tokens (RFC 9068 JWT profile) and ID tokens (OIDC Core §2), signed through an injected
``Signer`` so the core never touches key material."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .models import PASSWORD_AMR, IssuedTokens, TokenPolicy, User
from .scopes import OPENID, PROFILE

ACCESS_TOKEN_TYP = "at+jwt"
"""RFC 9068 §2.1: "Resource servers MUST verify that the typ header value is at+jwt"."""

ID_TOKEN_TYP = "JWT"

FAMILY_CLAIM = "fam"
"""The private claim naming the login (refresh-token family) an access token came from, so that
revoking the login denies its access tokens too (``server/denylist.py``). Its value is a hash
derived from the device code, random to anyone else: it names a login, never a person."""


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
    family_id: str | None = None
    """The login this grant belongs to (``RefreshToken.family_id``), sent as ``fam``."""
    amr: tuple[str, ...] = PASSWORD_AMR
    """How the person signed in (RFC 8176 §2), sent as ``amr`` in both tokens."""


def access_token_claims(
    grant: Grant, policy: TokenPolicy, now: int, jti: str
) -> dict[str, object]:
    """RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti are REQUIRED; scope SHOULD be
    present when the request carried one; auth_time when known.

    ``gty`` (a private claim, named as Auth0 names it) is the ``grant_type`` value of the grant
    that began the login, e.g. ``urn:ietf:params:oauth:grant-type:device_code``; a refresh keeps
    it, so a resource server can hold tokens from a device login to its own policy however
    often they were refreshed. ``fam`` (``FAMILY_CLAIM``) names the login for revocation."""
    claims: dict[str, object] = {
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
        # RFC 9068 §2.2.1 lists ``amr`` among the authentication claims an access token MAY
        # carry, with OIDC Core §2's meaning; the values are RFC 8176's.
        "amr": list(grant.amr),
    }
    if grant.family_id is not None:
        claims[FAMILY_CLAIM] = grant.family_id
    return claims


@dataclass(frozen=True, slots=True)
class AccessToken:
    """The claims of an access token whose signature and ``typ`` were verified, typed."""

    jti: str
    client_id: str
    sub: str
    iss: str
    iat: int
    exp: int
    scope: tuple[str, ...]
    aud: str | None
    gty: str | None
    family_id: str | None

    def active(self, now: float) -> bool:
        """RFC 9068 §4: the resource server MUST reject a token whose ``exp`` has passed."""
        return now < self.exp


def read_access_token(claims: Mapping[str, object], issuer: str) -> AccessToken | None:
    """Verified ``claims`` as an ``AccessToken``; None when they are not one of ours (RFC 9068
    §4: the ``iss`` MUST match the issuer) or lack a REQUIRED claim (§2.2)."""
    jti, client_id, sub = claims.get("jti"), claims.get("client_id"), claims.get("sub")
    iat, exp, scope = claims.get("iat"), claims.get("exp"), claims.get("scope", "")
    aud, gty, fam = claims.get("aud"), claims.get("gty"), claims.get(FAMILY_CLAIM)
    if (
        claims.get("iss") != issuer
        or not isinstance(jti, str) or not isinstance(client_id, str)
        or not isinstance(sub, str) or not isinstance(scope, str)
        or not isinstance(iat, int) or not isinstance(exp, int)
    ):
        return None
    return AccessToken(
        jti=jti, client_id=client_id, sub=sub, iss=issuer, iat=iat, exp=exp,
        scope=tuple(scope.split()),
        aud=aud if isinstance(aud, str) else None,
        gty=gty if isinstance(gty, str) else None,
        family_id=fam if isinstance(fam, str) else None,
    )


def at_hash(access_token: str, alg: str) -> str:
    """OIDC Core §3.1.3.6: base64url of the left-most half of the hash of the access token's
    ASCII octets, with the hash of the ID token's ``alg`` (SHA-256 for RS256 and ES256)."""
    digest = hashlib.new(f"sha{alg[-3:]}", access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def id_token_claims(
    grant: Grant, policy: TokenPolicy, now: int, *, nonce: str | None = None,
    access_token_hash: str | None = None,
) -> dict[str, object]:
    """OIDC Core §2: iss, sub, aud, exp, iat REQUIRED; auth_time since the person signed in
    interactively; ``nonce`` when the authentication request had one (§3.1.3.6: "MUST be
    present"), ``at_hash`` with a code flow's access token. Profile claims are added when
    ``profile`` was granted (§5.4)."""
    claims: dict[str, object] = {
        "iss": policy.issuer,
        "sub": grant.user.user_id,
        "aud": grant.client_id,
        "iat": now,
        "exp": now + policy.id_token_lifetime,
        "auth_time": int(grant.auth_time),
        "amr": list(grant.amr),  # OIDC Core §2, RFC 8176 values
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token_hash is not None:
        claims["at_hash"] = access_token_hash
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
    *,
    nonce: str | None = None,
    with_at_hash: bool = False,
) -> IssuedTokens:
    """The RFC 6749 §5.1 success response for ``grant``; an ID token when ``openid`` was granted
    (OIDC Core §3.1.3.3), with ``nonce`` and (``with_at_hash``) ``at_hash`` for the
    authorization code flow."""
    issued_at = int(now)
    access_token = signer.sign(
        access_token_claims(grant, policy, issued_at, jti), ACCESS_TOKEN_TYP
    )
    id_token = (
        signer.sign(id_token_claims(
            grant, policy, issued_at, nonce=nonce,
            access_token_hash=at_hash(access_token, signer.alg) if with_at_hash else None,
        ), ID_TOKEN_TYP)
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

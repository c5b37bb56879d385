"""The client credentials grant (RFC 6749 §4.4): a confidential client asks for an access token
on its own behalf, with no person involved.

RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential clients",
and §4.4.3: "A refresh token SHOULD NOT be included". No person signed in, so no ID token
either (OIDC Core §2 describes an authentication event; there was none).

The token's ``sub`` is the client, in a namespace no person's ``sub`` can enter
(``CLIENT_SUBJECT_PREFIX``): RFC 9700 §4.15 warns that a resource server must not mistake a
client's token for a person's with the same identifier. People's ids are 32 hex digits
(``server.identity.new_user_id``), and ``models.User`` refuses an id in the namespace, so no
path that makes a person can make one there.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidScopeError, UnauthorizedClientError
from ..models import (
    CLIENT_CREDENTIALS_GRANT,
    CLIENT_SUBJECT_PREFIX,
    Client,
    IssuedTokens,
    TokenPolicy,
)
from ..params import FormParams
from ..scopes import OFFLINE_ACCESS, OPENID, PROFILE, parse_scope
from ..tokens import ACCESS_TOKEN_TYP, Signer

GRANT_TYPE = CLIENT_CREDENTIALS_GRANT

PERSON_SCOPES = frozenset({OPENID, PROFILE, OFFLINE_ACCESS})
"""Scopes about a person (OIDC Core §5.4, §11): meaningless without one, so never granted here."""


__all__ = ["CLIENT_SUBJECT_PREFIX", "GRANT_TYPE", "ClientCredentialsRequest", "client_id_of",
           "client_subject", "grant_scope", "is_client_subject", "issue", "parse"]


@dataclass(frozen=True, slots=True)
class ClientCredentialsRequest:
    scope: tuple[str, ...] | None


def client_subject(client_id: str) -> str:
    """The ``sub`` of a token a client holds on its own behalf."""
    return CLIENT_SUBJECT_PREFIX + client_id


def is_client_subject(sub: str) -> bool:
    return sub.startswith(CLIENT_SUBJECT_PREFIX)


def client_id_of(sub: str) -> str | None:
    """The client a client subject names; None for a person's ``sub``."""
    return sub[len(CLIENT_SUBJECT_PREFIX):] if is_client_subject(sub) else None


def parse(params: FormParams) -> ClientCredentialsRequest:
    """RFC 6749 §4.4.2: ``grant_type`` and an optional ``scope``."""
    return ClientCredentialsRequest(scope=parse_scope(params.get("scope")))


def grant_scope(request: ClientCredentialsRequest, client: Client) -> tuple[str, ...]:
    """Check the client may use the grant and decide the scope.

    Only confidential clients, and only when registered for this grant (RFC 6749 §4.4, §5.2
    ``unauthorized_client``). The scope must be within the client's registered scopes and name
    no person's scope (``invalid_scope``); omitted, it is every registered scope that is not a
    person's (RFC 6749 §3.3: "a pre-defined default value")."""
    if client.is_public:
        raise UnauthorizedClientError("a public client may not use client_credentials")
    if GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClientError(f"client {client.client_id!r} lacks client_credentials")
    allowed = client.scopes - PERSON_SCOPES
    if request.scope is None:
        return tuple(sorted(allowed))
    refused = [s for s in request.scope if s not in allowed]
    if refused:
        raise InvalidScopeError(f"scope not allowed for client credentials: {refused}")
    return request.scope


def access_token_claims(
    client: Client, scope: tuple[str, ...], policy: TokenPolicy, now: int, jti: str
) -> dict[str, object]:
    """RFC 9068 §2.2 for a client acting for itself: ``sub`` is the client's subject (§2.2:
    "In cases of access tokens obtained through grants where no resource owner is involved,
    such as the client credentials grant, the value of sub SHOULD correspond to an identifier
    the authorization server uses to indicate the client application"); no ``auth_time``, as
    no one authenticated; no ``fam``, as there is no login to end."""
    return {
        "iss": policy.issuer,
        "sub": client_subject(client.client_id),
        "aud": policy.access_token_audience or policy.issuer,
        "client_id": client.client_id,
        "scope": " ".join(scope),
        "iat": now,
        "exp": now + policy.access_token_lifetime,
        "jti": jti,
        "gty": GRANT_TYPE,
    }


def issue(
    client: Client, scope: tuple[str, ...], policy: TokenPolicy, signer: Signer, now: float,
    jti: str,
) -> IssuedTokens:
    """RFC 6749 §4.4.3: an access token only."""
    token = signer.sign(access_token_claims(client, scope, policy, int(now), jti),
                        ACCESS_TOKEN_TYP)
    return IssuedTokens(access_token=token, expires_in=policy.access_token_lifetime, scope=scope)

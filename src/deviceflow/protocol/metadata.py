"""Authorization server metadata (RFC 8414 §2, OpenID Connect Discovery 1.0 §3).

What is advertised is derived from the same feature flags that decide which routes exist."""

from __future__ import annotations

from dataclasses import dataclass

from .client_auth import AUTH_METHODS_SUPPORTED
from .models import AUTHORIZATION_CODE_GRANT
from .pkce import CODE_CHALLENGE_METHODS

INTROSPECTION_AUTH_METHODS: tuple[str, ...] = tuple(
    m for m in AUTH_METHODS_SUPPORTED if m != "none")


@dataclass(frozen=True, slots=True)
class Endpoints:
    device_authorization: str = "/device_authorization"
    token: str = "/token"
    jwks: str = "/jwks.json"
    userinfo: str = "/userinfo"
    revocation: str = "/revoke"
    introspection: str = "/introspect"
    verification: str = "/device"
    authorization: str = "/authorize"


@dataclass(frozen=True, slots=True)
class Features:
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    signing_algs: tuple[str, ...]
    userinfo: bool = True
    revocation: bool = True
    introspection: bool = True


def server_metadata(issuer: str, endpoints: Endpoints, features: Features) -> dict[str, object]:
    """RFC 8414 §3.2: ``issuer`` MUST be identical to the issuer identifier the client used;
    we send it byte-for-byte as configured."""

    def url(path: str) -> str:
        return issuer.rstrip("/") + path

    meta: dict[str, object] = {
        "issuer": issuer,
        "device_authorization_endpoint": url(endpoints.device_authorization),
        "token_endpoint": url(endpoints.token),
        "jwks_uri": url(endpoints.jwks),
        "grant_types_supported": list(features.grant_types),
        "scopes_supported": list(features.scopes),
        # RFC 8414 §2 makes response_types_supported REQUIRED even for servers without /authorize;
        # OIDC Discovery requires it too. An empty list says "no authorization endpoint flows".
        "response_types_supported": [],
        "response_modes_supported": [],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS_SUPPORTED),
        "id_token_signing_alg_values_supported": list(features.signing_algs),
        "subject_types_supported": ["public"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "amr", "name",
                             "preferred_username"],
    }
    if AUTHORIZATION_CODE_GRANT in features.grant_types:
        # RFC 6749 §4.1 with PKCE (RFC 7636 §4.3: S256 only) and the authorization response's
        # ``iss`` (RFC 9207 §3); the response comes back in the redirect URI's query (§4.1.2).
        meta["authorization_endpoint"] = url(endpoints.authorization)
        meta["response_types_supported"] = ["code"]
        meta["response_modes_supported"] = ["query"]
        meta["code_challenge_methods_supported"] = list(CODE_CHALLENGE_METHODS)
        meta["authorization_response_iss_parameter_supported"] = True
    if features.userinfo:
        meta["userinfo_endpoint"] = url(endpoints.userinfo)
    if features.revocation:
        # RFC 8414 §2 / RFC 7009: clients authenticate at /revoke exactly as at /token.
        meta["revocation_endpoint"] = url(endpoints.revocation)
        meta["revocation_endpoint_auth_methods_supported"] = list(AUTH_METHODS_SUPPORTED)
    if features.introspection:
        # RFC 7662 §2.1: only confidential clients (a resource server registers as one), so
        # "none" is not offered.
        meta["introspection_endpoint"] = url(endpoints.introspection)
        meta["introspection_endpoint_auth_methods_supported"] = list(
            INTROSPECTION_AUTH_METHODS)
    return meta
